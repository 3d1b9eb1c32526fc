"""Image files: reading any common format into float32 RGB, checking output paths, and writing
atomically (a temporary file in the same folder, then a rename).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from ..errors import UserError
from ..imaging import to_uint8

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as float32 RGB in [0, 1], shape [H, W, 3].

    Grayscale is replicated to RGB, alpha is composited over white, 16-bit images keep their
    precision. Any failure is a one-line :class:`UserError`.
    """
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


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write float RGB [0, 1] atomically: a temporary file in the same folder, then a rename."""
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


