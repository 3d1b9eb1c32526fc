"""Pixel operations shared by every layer: resizing (images, soft masks, label maps), 8-bit
conversion, and the colour utilities of colour preservation (luminance transfer, histogram
matching), and contact sheets. No file I/O here (that is :mod:`jaxstyle.io`).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def scaled_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(height, width) with the given long side, keeping the aspect ratio (whole frame, no crop)."""
    if height >= width:
        return long_side, max(1, int(round(width * long_side / height)))
    return max(1, int(round(height * long_side / width))), long_side


def target_size(height: int, width: int, size: int | None) -> tuple[int, int]:
    """The working size of a height x width content for ``--size`` (None: its own size)."""
    return (height, width) if size is None else scaled_size(height, width, size)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def from_uint8(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, np.float32) / 255.0


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Antialiased resize of [H, W, C] or [N, H, W, C] float images."""
    image = np.asarray(image, np.float32)
    if image.shape[-3:-1] == (height, width):
        return image
    shape = image.shape[:-3] + (height, width, image.shape[-1])
    return np.asarray(jax.image.resize(jnp.asarray(image), shape, "linear", antialias=True))


def resize_masks(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Soft masks [..., h, w, K] at another size (antialiased, so a pixel's weights stay a partition)."""
    return np.clip(resize(masks, height, width), 0.0, 1.0)


def resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of integer label arrays [N, h, w] (labels are never blended)."""
    n, h, w = labels.shape
    if (h, w) == (height, width):
        return labels
    rows = np.minimum((np.arange(height) + 0.5) * h / height, h - 1).astype(int)
    cols = np.minimum((np.arange(width) + 0.5) * w / width, w - 1).astype(int)
    return labels[:, rows][:, :, cols]


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


def contact_sheet(columns: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Images [P, s, s, 3] per column -> one sheet: a row per image, a column per list, white gaps."""
    rows, side = columns[0].shape[0], columns[0].shape[1]
    height, width = rows * side + (rows - 1) * gap, len(columns) * columns[0].shape[2] + (len(columns) - 1) * gap
    sheet = np.ones((max(height, 1), max(width, 1), 3), np.float32)
    for c, images in enumerate(columns):
        for r, image in enumerate(images):
            y, x = r * (side + gap), c * (images.shape[2] + gap)
            sheet[y:y + image.shape[0], x:x + image.shape[1]] = image
    return sheet

