"""Image input and output at the edges: reading any common format into float32 RGB, resizing,
writing atomically, and colour utilities (luminance transfer, histogram matching).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as float32 RGB in [0, 1], shape [H, W, 3].

    Grayscale is replicated to RGB, alpha is composited over white, 16-bit images keep their
    precision. Any failure is a one-line :class:`UserError`.
    """
    import imageio.v3 as iio

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    if not path.is_file():
        raise UserError(f"{path} is not a file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path} is not readable")
    try:
        data = iio.imread(path)
    except Exception as exc:  # imageio raises many exception types for unknown or corrupt files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read {path} as an image (unsupported or corrupt file: {first})") from None
    return to_rgb_float(np.asarray(data), str(path))


def to_rgb_float(data: np.ndarray, what: str = "image") -> np.ndarray:
    if data.ndim == 4:  # animated: first frame
        data = data[0]
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3 or data.shape[-1] not in (1, 2, 3, 4) or min(data.shape[:2]) < 1:
        raise UserError(f"{what} has an unsupported shape {data.shape}")
    if data.dtype == np.uint8:
        img = data.astype(np.float32) / 255.0
    elif data.dtype == np.uint16:
        img = data.astype(np.float32) / 65535.0
    elif data.dtype == bool:
        img = data.astype(np.float32)
    elif np.issubdtype(data.dtype, np.floating):
        img = np.clip(data.astype(np.float32), 0.0, 1.0)
    elif np.issubdtype(data.dtype, np.integer):
        img = data.astype(np.float32) / float(np.iinfo(data.dtype).max)
    else:
        raise UserError(f"{what} has an unsupported pixel type {data.dtype}")
    channels = img.shape[-1]
    if channels in (2, 4):  # composite alpha over white
        alpha = img[..., -1:]
        img = img[..., :-1] * alpha + (1.0 - alpha)
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    if not np.isfinite(img).all():
        raise UserError(f"{what} contains NaN or infinite pixels")
    return np.ascontiguousarray(img, dtype=np.float32)


def check_output_path(output: str | os.PathLike, inputs: list[str | os.PathLike],
                      extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> Path:
    """Refuse an output that would overwrite an input, has an unknown format, or no directory."""
    output = Path(output)
    for item in inputs:
        if item is not None and Path(item).exists() and output.exists() and os.path.samefile(output, item):
            raise UserError(f"output {output} is the same file as the input {item}; choose another output path")
        if item is not None and Path(os.path.abspath(item)) == Path(os.path.abspath(output)):
            raise UserError(f"output {output} is the same file as the input {item}; choose another output path")
    if output.suffix.lower() not in extensions:
        raise UserError(f"unsupported output format {output.suffix or '(none)'!r} for {output}; use one of {', '.join(extensions)}")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"output directory {parent} does not exist")
    if output.is_dir():
        raise UserError(f"output {output} is a directory")
    return output


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write float RGB [0, 1] atomically: a temporary file in the same folder, then a rename."""
    import imageio.v3 as iio

    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        extra = {"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}
        iio.imwrite(tmp, to_uint8(image), extension=path.suffix.lower(), **extra)
        os.replace(tmp, path)
    except Exception as exc:
        raise UserError(f"cannot write {path}: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Antialiased resize of [H, W, C] or [N, H, W, C] float images."""
    import jax
    import jax.numpy as jnp

    image = np.asarray(image, np.float32)
    if image.shape[-3:-1] == (height, width):
        return image
    shape = image.shape[:-3] + (height, width, image.shape[-1])
    return np.asarray(jax.image.resize(jnp.asarray(image), shape, "linear", antialias=True))


# ----------------------------------------------------------------------------------------------
# Colour preservation (Gatys, Bethge, Hertzmann, Shechtman 2016)

_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)


def rgb_to_yiq(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, np.float32) @ _RGB_TO_YIQ.T


def yiq_to_rgb(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, np.float32) @ _YIQ_TO_RGB.T


def luminance_image(image: np.ndarray) -> np.ndarray:
    """The luminance channel replicated to RGB (what luminance-only transfer optimizes)."""
    y = rgb_to_yiq(image)[..., :1]
    return np.repeat(y, 3, axis=-1)


def match_luminance(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Style luminance image with mean and std matched to the content's luminance."""
    ys, yc = rgb_to_yiq(style)[..., 0], rgb_to_yiq(content)[..., 0]
    y = (ys - ys.mean()) * (yc.std() / (ys.std() + 1e-6)) + yc.mean()
    return np.repeat(np.clip(y, 0, 1)[..., None], 3, axis=-1)


def combine_luminance(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The stylized luminance with the content's chrominance (I and Q)."""
    out = rgb_to_yiq(content)
    out[..., 0] = rgb_to_yiq(stylized)[..., 0]
    return np.clip(yiq_to_rgb(out), 0.0, 1.0)


def match_histogram(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Recolour ``style`` so its colour mean and covariance match the content's (linear map)."""
    s = style.reshape(-1, 3).astype(np.float64)
    c = content.reshape(-1, 3).astype(np.float64)
    mu_s, mu_c = s.mean(0), c.mean(0)
    cov_s = np.cov(s, rowvar=False) + 1e-5 * np.eye(3)
    cov_c = np.cov(c, rowvar=False) + 1e-5 * np.eye(3)

    def sqrtm(m, inverse=False):
        vals, vecs = np.linalg.eigh(m)
        vals = np.maximum(vals, 1e-10)
        return (vecs * (vals ** (-0.5 if inverse else 0.5))) @ vecs.T

    transform = sqrtm(cov_c) @ sqrtm(cov_s, inverse=True)
    out = (s - mu_s) @ transform.T + mu_c
    return np.clip(out.reshape(style.shape), 0.0, 1.0).astype(np.float32)
