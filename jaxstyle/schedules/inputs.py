"""What a schedule stylizes (:class:`Frames`), what it returns (:class:`Result`), and the steps
around every schedule: checking the style blend and applying colour preservation before, putting
the content's colours back after."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import imaging
from ..errors import UserError
from ..io.images import read_image
from ..nets.vgg import MIN_SIDE
from ..objective import Regions, Temporal


@dataclass
class Frames:
    """A batch of frames to stylize and everything that goes with them (all at the frames' size).

    ``contents`` are what the content loss sees (the luminance images with luminance-only colour
    preservation), ``guides`` the original colour frames (the matting Laplacian's guide and the
    colours put back at the end). ``init`` is ``content``, ``noise``, ``style``, an image path, or
    an array of initial images ([N, H, W, 3] or one [H, W, 3])."""

    contents: np.ndarray                                    # [N, H, W, 3]
    guides: np.ndarray                                      # [N, H, W, 3]
    styles: list[np.ndarray]                                # style images (colour-preserved)
    blend: np.ndarray                                       # [S] blend weights, summing to 1
    init: Any = "content"
    temporal: Temporal | None = None
    frame_styles: Sequence[Sequence[np.ndarray]] | None = None
    regions: Regions | None = None

    @property
    def count(self) -> int:
        return int(self.contents.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.contents.shape[1]), int(self.contents.shape[2])

    def at(self, contents: np.ndarray, guides: np.ndarray, **changes) -> "Frames":
        """The same inputs for other frames (tiles of these frames, or the frames at another size)."""
        return dataclasses.replace(self, contents=contents, guides=guides, **changes)


@dataclass
class Result:
    images: np.ndarray                      # [N, H, W, 3] float32 in [0, 1]
    metrics: dict[str, Any] = field(default_factory=dict)


def blend_weights(style_weights, count: int) -> np.ndarray:
    """The normalized blend of ``count`` style images (equal by default); raises UserError."""
    if not count:
        raise UserError("at least one style image is needed")
    blend = np.asarray(style_weights if style_weights else [1.0] * count, np.float64)
    if len(blend) != count:
        raise UserError(f"{len(blend)} style weights given for {count} style images")
    if np.any(blend < 0) or blend.sum() <= 0:
        raise UserError("style weights must be non-negative and not all zero")
    return blend / blend.sum()


def check_frame_size(height: int, width: int, source_hw: tuple[int, int] | None = None) -> None:
    """Both sides of the working size at least the network's ``MIN_SIDE``; the hint names the --size
    that gets there, from the source's own aspect when it is known (a resized side is rounded)."""
    if min(height, width) >= MIN_SIDE:
        return
    sh, sw = source_hw or (height, width)
    needed = -(-MIN_SIDE * max(sh, sw) // max(1, min(sh, sw)))  # the long side that makes the short one MIN_SIDE
    raise UserError(f"the frames are {width}x{height} px; both sides must be at least {MIN_SIDE} px "
                    f"(--size {needed} or more; a frame this thin may be better padded or cropped first)")


def prepare(contents: np.ndarray, styles: Sequence[np.ndarray], config, *, init=None, temporal=None,
            frame_styles=None, regions=None) -> Frames:
    """Check the inputs and apply colour preservation (a resolved config)."""
    contents = np.asarray(contents, np.float32)
    if contents.ndim == 3:
        contents = contents[None]
    blend = blend_weights(config.style_weights, len(styles))
    guides = contents
    styles = [np.asarray(s, np.float32) for s in styles]
    if config.preserve_colors == "luminance":
        reference = contents.reshape(-1, contents.shape[-2], 3)
        styles = [imaging.match_luminance(s, reference) for s in styles]
        contents = np.stack([imaging.luminance_image(c) for c in contents])
    elif config.preserve_colors == "histogram":
        reference = contents.reshape(-1, contents.shape[-2], 3)
        styles = [imaging.match_histogram(s, reference) for s in styles]
    if regions is not None:
        if frame_styles is not None:
            raise UserError("semantic masks cannot be combined with a style video")
        if regions.content.shape[0] != contents.shape[0] or len(regions.styles) != len(styles):
            raise ValueError("regions must have one content mask per frame and one mask per style image")
    _, height, width, _ = contents.shape
    check_frame_size(height, width)
    return Frames(contents, guides, styles, blend, config.init if init is None else init, temporal, frame_styles,
                  regions)


def restore_colours(images: np.ndarray, frames: Frames, config) -> np.ndarray:
    """Luminance-only transfer: the output's luminance with the content's chrominance."""
    if config.preserve_colors != "luminance":
        return images
    return np.stack([imaging.combine_luminance(o, c) for o, c in zip(images, frames.guides)])


def initial_images(init, contents: np.ndarray, styles: Sequence[np.ndarray], seed: int) -> np.ndarray:
    """The first scale's starting images for contents [N, h, w, 3]."""
    n, h, w, _ = contents.shape
    if isinstance(init, np.ndarray):
        arr = np.asarray(init, np.float32)
        if arr.ndim == 3:
            arr = np.broadcast_to(arr, (n,) + arr.shape)
        return imaging.resize(arr, h, w)
    if init == "content":
        return contents.copy()
    if init == "noise":
        return np.asarray(jax.random.uniform(jax.random.PRNGKey(seed), contents.shape, jnp.float32))
    if init == "network":
        raise UserError("--init network starts from a trained network's output: give its --model MODEL_DIR")
    if init == "style":
        return np.broadcast_to(imaging.resize(styles[0], h, w), contents.shape).copy()
    image = read_image(init)
    return np.broadcast_to(imaging.resize(image, h, w), contents.shape).copy()
