"""Image files: reading any common format into float32 RGB (16-bit, CMYK and EXIF-rotated photos
included), checking output paths, and writing atomically.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageCms, ImageOps

from ..errors import UserError, first_line
from ..imaging import to_uint8
from .files import check_name_length, replace_into, temp_path, write_failure, write_target

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


# A video's frames as PNGs (--frames-dir): frame_000000.png, frame_000001.png, ...
FRAME_PNG = re.compile(r"^frame_(\d{6,})\.png$")


def frame_png(directory: str | os.PathLike, index: int) -> Path:
    """Where frame ``index`` of a video goes in a --frames-dir."""
    return Path(directory) / f"frame_{index:06d}.png"


def remove_frames_from(directory: str | os.PathLike, count: int) -> int:
    """Delete the frame PNGs numbered ``count`` and up that an earlier, longer run left in a
    --frames-dir, so the folder holds exactly this run's frames; returns how many went. Nothing
    else in the folder is touched."""
    removed = 0
    for entry in os.scandir(directory):
        match = FRAME_PNG.match(entry.name)
        if match and int(match.group(1)) >= count and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)
            removed += 1
    return removed


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as float32 RGB in [0, 1], shape [H, W, 3].

    Grayscale is replicated to RGB, alpha is composited over white, 16-bit images keep their
    precision (RGB too), CMYK and YCCK JPEGs are converted to RGB (through their ICC profile where
    they carry one), and a photo's EXIF orientation is applied. Any failure is a one-line
    :class:`UserError`.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    if not path.is_file():
        raise UserError(f"{path} is not a file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path} is not readable")
    try:
        data = _decode(path)
    except UserError:
        raise
    except Exception as exc:  # the decoders raise many exception types for unknown or corrupt files
        first = first_line(exc)
        raise UserError(f"cannot read {path} as an image (unsupported or corrupt file: {first})") from None
    return to_rgb_float(np.asarray(data), str(path))


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image as :func:`read_image` would return it (EXIF orientation
    applied), from its header alone; any failure is a one-line :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        with Image.open(path) as image:
            width, height = image.size
            # orientations 5-8 turn the picture by 90 degrees
            if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                width, height = height, width
    except Exception as exc:  # the decoders raise many exception types for unknown or corrupt files
        first = first_line(exc)
        raise UserError(f"cannot read {path} as an image (unsupported or corrupt file: {first})") from None
    return height, width


def _decode(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        if image.mode in ("RGB", "RGBA") and any(";16" in str(tile[3]) for tile in image.tile):
            return _read_16bit(path)  # Pillow would truncate 16-bit colour to 8 bits
        image = ImageOps.exif_transpose(image)  # phone photos store their orientation in EXIF
        if image.mode == "CMYK":
            return np.asarray(_cmyk_to_rgb(image))
        if image.mode in ("P", "PA"):
            return np.asarray(image.convert("RGBA"))
        if image.mode in ("1", "YCbCr", "LAB", "HSV"):
            return np.asarray(image.convert("L" if image.mode == "1" else "RGB"))
        if image.mode == "I":  # 16-bit grey in some Pillow versions, 32-bit integers otherwise
            data = np.asarray(image)
            return data.astype(np.uint16) if data.min() >= 0 and data.max() <= 65535 else data
        return np.asarray(image)


def _read_16bit(path: Path) -> np.ndarray:
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise UserError(f"cannot read {path} as an image (a corrupt 16-bit file)")
    if data.ndim == 3:  # OpenCV's channel order is BGR(A)
        data = data[..., [2, 1, 0, 3][: data.shape[-1]]]
    return data


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    """CMYK (and YCCK, which the JPEG decoder gives as CMYK) to sRGB: through the file's ICC
    profile when it has one, else the naive (1 - C)(1 - K) conversion."""
    profile = image.info.get("icc_profile")
    if profile:
        try:
            return ImageCms.profileToProfile(image, io.BytesIO(profile), ImageCms.createProfile("sRGB"),
                                             outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass
    return image.convert("RGB")


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
                      extensions: tuple[str, ...] = IMAGE_EXTENSIONS, temp_depth: int = 1) -> Path:
    """Refuse an output that would overwrite an input, has an unknown format, no directory, or a
    name too long for its temporary names (``temp_depth``: see :func:`check_name_length`)."""
    output = Path(output)
    for item in inputs:
        if item is not None and Path(item).exists() and output.exists() and os.path.samefile(output, item):
            raise UserError(f"output {output} is the same file as the input {item}; choose another output path")
        if item is not None and os.path.realpath(item) == os.path.realpath(output):
            raise UserError(f"output {output} is the same file as the input {item}; choose another output path")
    if output.is_dir():
        raise UserError(f"output {output} is a directory; give a file name in it")
    if output.suffix.lower() not in extensions:
        raise UserError(f"unsupported output format {output.suffix or '(none)'!r} for {output}; use one of {', '.join(extensions)}")
    parent = write_target(output).parent  # a link's target's folder, where the write goes
    if not parent.is_dir():
        raise UserError(f"output directory {parent} does not exist")
    check_name_length(output, temp_depth)
    return output


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write float RGB [0, 1] atomically (a temporary file in the same folder, then a rename), with
    the permissions an ordinary write gives."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        extra = {"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}
        iio.imwrite(tmp, to_uint8(image), extension=path.suffix.lower(), **extra)
        replace_into(tmp, path)
    except OSError as exc:
        raise write_failure(path, exc) from None
    except Exception as exc:  # the encoders raise many exception types
        raise UserError(f"cannot write {path}: {exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
