"""Label images of semantic masks: every distinct colour is one region.

A label image is read as integer colour codes (RGB packed as ``R<<16 | G<<8 | B`` of the 8-bit
colours). Style masks must be flat colours (PNG); content masks (images or video frames) are
snapped to the style masks' colours, so JPEG or H.264 masks work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UserError
from ..imaging import resize_labels
from .images import read_image

MAX_REGIONS = 32
OTHER = -1           # content pixels whose colour is in no style mask: no style loss there
SNAP_DISTANCE = 48   # max RGB distance (0-255 scale) from a style mask colour (JPEG / H.264 masks)


def encode_labels(image: np.ndarray) -> np.ndarray:
    """Colour codes of a float RGB image [..., H, W, 3] in [0, 1] (or an integer label array as is)."""
    image = np.asarray(image)
    if image.ndim >= 2 and image.shape[-1] != 3 or np.issubdtype(image.dtype, np.integer):
        return image.astype(np.int64)
    q = np.clip(np.rint(image * 255.0), 0, 255).astype(np.int64)
    return (q[..., 0] << 16) | (q[..., 1] << 8) | q[..., 2]


def read_labels(path: str | Path) -> np.ndarray:
    """A label image as int64 colour codes [H, W]."""
    image = read_image(path)  # float RGB in [0, 1]; grey and alpha handled there
    labels = encode_labels(image)
    count = len(np.unique(labels))
    if count > MAX_REGIONS:
        raise UserError(f"mask {path} has {count} colours; a mask is a label image with at most {MAX_REGIONS} flat "
                        "colours (save it as PNG, not JPEG)")
    return labels


def palette(style_labels: Sequence[np.ndarray]) -> np.ndarray:
    """The colour codes used by the style masks."""
    return np.unique(np.concatenate([np.unique(np.asarray(lab)) for lab in style_labels]))


def snap_labels(image: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Colour codes of a float RGB mask [..., H, W, 3] snapped to the nearest of ``codes`` (so lossy
    JPEG or H.264 masks work); pixels farther than SNAP_DISTANCE from every code become OTHER."""
    codes = np.asarray(codes, np.int64)
    rgb = np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], -1).astype(np.float32)   # [K, 3]
    q = np.asarray(image, np.float32) * 255.0
    d2 = ((q[..., None, :] - rgb) ** 2).sum(-1)                                                     # [..., K]
    nearest = d2.argmin(-1)
    out = codes[nearest]
    out[np.take_along_axis(d2, nearest[..., None], -1)[..., 0] > SNAP_DISTANCE ** 2] = OTHER
    return out


def read_style_masks(paths: Sequence[str | Path], styles: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Label arrays of the style masks (one per style image, each at its style image's size)."""
    if len(paths) != len(styles):
        raise UserError(f"{len(paths)} --style-mask files given for {len(styles)} --style images")
    out = []
    for path, style in zip(paths, styles):
        labels = read_labels(path)
        if labels.shape != style.shape[:2]:
            raise UserError(f"--style-mask {path} is {labels.shape[1]}x{labels.shape[0]} px but its style image is "
                            f"{style.shape[1]}x{style.shape[0]}")
        out.append(labels)
    return out


def content_labels(mask: np.ndarray, style_labels: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """A content mask frame (float RGB) as colour codes snapped to the style masks' colours, at a size."""
    return resize_labels(snap_labels(mask, palette(style_labels))[None], height, width)[0]
