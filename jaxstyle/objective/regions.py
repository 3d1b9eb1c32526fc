"""Semantic masks: restrict style matching to corresponding regions (Gatys et al. 2017, "guided" transfer).

A mask is a label image: every distinct colour is one region. The content mask labels the output's
pixels, each style mask labels its style image; regions correspond by colour. Region k of the output
is matched to the Gram statistics of region k of the style image(s) only; a content region whose
colour appears in no style mask gets no style loss (it keeps the content, held by the content loss).
Colours that appear only in a style mask are ignored.

Masks are resized to every scale and, inside the loss, to every style layer's resolution with an
antialiased (area-like) filter, so region borders become soft weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import imaging
from .errors import UserError

MAX_REGIONS = 32


def read_labels(path: str | Path) -> np.ndarray:
    """A label image as int64 colour codes [H, W] (RGB packed as R<<16 | G<<8 | B of the 8-bit colours)."""
    image = imaging.read_image(path)  # float RGB in [0, 1]; grey and alpha handled there
    labels = encode_labels(image)
    count = len(np.unique(labels))
    if count > MAX_REGIONS:
        raise UserError(f"mask {path} has {count} colours; a mask is a label image with at most {MAX_REGIONS} flat "
                        "colours (save it as PNG, not JPEG)")
    return labels


def encode_labels(image: np.ndarray) -> np.ndarray:
    """Colour codes of a float RGB image [..., H, W, 3] in [0, 1] (or an integer label array as is)."""
    image = np.asarray(image)
    if image.ndim >= 2 and image.shape[-1] != 3 or np.issubdtype(image.dtype, np.integer):
        return image.astype(np.int64)
    q = np.clip(np.rint(image * 255.0), 0, 255).astype(np.int64)
    return (q[..., 0] << 16) | (q[..., 1] << 8) | q[..., 2]


OTHER = -1           # content pixels whose colour is in no style mask: no style loss there
SNAP_DISTANCE = 48   # max RGB distance (0-255 scale) from a style mask colour (JPEG / H.264 masks)


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


@dataclass
class Regions:
    """One-hot region masks of the content frames and of every style image (float32)."""

    content: np.ndarray               # [N, H, W, K]
    styles: list[np.ndarray]          # per style image [h, w, K]
    codes: tuple[int, ...]            # the K label colours

    @property
    def count(self) -> int:
        return len(self.codes)

    def style_presence(self) -> np.ndarray:
        """[S, K]: 1 where style image s has any pixel of region k."""
        return np.stack([(s.reshape(-1, self.count).sum(0) > 0).astype(np.float32) for s in self.styles])


def one_hot(labels: np.ndarray, codes: Sequence[int]) -> np.ndarray:
    return np.stack([(labels == c) for c in codes], axis=-1).astype(np.float32)


def build_regions(content_labels: np.ndarray, style_labels: Sequence[np.ndarray], frame_shape: tuple[int, int],
                  style_shapes: Sequence[tuple[int, int]]) -> Regions:
    """Regions from label arrays: ``content_labels`` [H, W] (one for all frames) or [N, H, W]; one
    [h, w] label array per style image. Each is resized (nearest) to the frames' / style image's size."""
    content_labels = np.asarray(content_labels)
    if content_labels.ndim == 2:
        content_labels = content_labels[None]
    codes = tuple(int(c) for c in np.unique(content_labels))
    if len(style_labels) != len(style_shapes):
        raise UserError(f"{len(style_labels)} style masks given for {len(style_shapes)} style images")
    content = one_hot(_nearest(content_labels, *frame_shape), codes)
    styles = [one_hot(_nearest(np.asarray(lab)[None], *shape)[0], codes) for lab, shape in zip(style_labels, style_shapes)]
    regions = Regions(content, styles, codes)
    if not regions.style_presence().any():
        raise UserError("no colour of the content mask appears in a style mask: the masks' labels must match by colour")
    return regions


def _nearest(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of integer label arrays [N, h, w] (labels are never blended)."""
    n, h, w = labels.shape
    if (h, w) == (height, width):
        return labels
    rows = np.minimum((np.arange(height) + 0.5) * h / height, h - 1).astype(int)
    cols = np.minimum((np.arange(width) + 0.5) * w / width, w - 1).astype(int)
    return labels[:, rows][:, :, cols]


def resize_masks(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Soft masks [..., h, w, K] at another size (antialiased, so a pixel's weights stay a partition)."""
    return np.clip(imaging.resize(masks, height, width), 0.0, 1.0)


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
    return _nearest(snap_labels(mask, palette(style_labels))[None], height, width)[0]
