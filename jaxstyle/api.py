"""The typed Python API: stylize images or batches of frames.

>>> import jaxstyle
>>> out = jaxstyle.stylize_image("content.jpg", "style.jpg", size=256)   # float32 [H, W, 3]
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import numpy as np

from . import imaging, schedules
from .config import StyleConfig
from .errors import UserError
from .feedforward import Model, load_model
from .feedforward.carry import FlowCarry
from .feedforward.loss import style_statistics
from .imaging import target_size
from .io.images import read_image, to_rgb_float
from .io.labels import palette, read_style_masks, snap_labels
from .nets.vgg import Network
from .nets.weights import load_network
from .objective import Objective, Regions, ScaleInputs, Temporal, build_regions
from .optim import evaluate
from .schedules.inputs import Result, blend_weights

ImageLike = "np.ndarray | str"

__all__ = ["stylize_frames", "load_regions", "stylize_image", "image_losses", "target_size", "Result", "Temporal", "network_for",
           "load_model", "model_conditioning", "stylize_with_model"]


def _as_image(item, what: str) -> np.ndarray:
    if isinstance(item, np.ndarray):
        return to_rgb_float(item, what)
    return read_image(item)


def network_for(config: StyleConfig, network: Network | None = None) -> Network:
    """``network``, or the one the config names, with the config's pooling and precision."""
    return (network or load_network(config.network, pooling=config.pooling)).configured(config.pooling,
                                                                                        config.precision)


def load_regions(config: StyleConfig, content_hw: tuple[int, int] | None, styles: Sequence[np.ndarray],
                 frame_hw: tuple[int, int]) -> Regions | None:
    """The semantic regions of ``config.content_mask`` / ``config.style_mask`` (None without them)
    for frames of ``frame_hw``; the content mask must be ``content_hw`` (the content's own size)
    unless that is None."""
    if config.content_mask is None:
        return None
    style_labels = read_style_masks(config.style_mask, styles)
    mask = read_image(config.content_mask)
    if content_hw is not None and mask.shape[:2] != tuple(content_hw):
        raise UserError(f"--content-mask {config.content_mask} is {mask.shape[1]}x{mask.shape[0]}"
                        f" px but the content is {content_hw[1]}x{content_hw[0]}")
    return build_regions(snap_labels(mask, palette(style_labels)), style_labels, frame_hw,
                         [s.shape[:2] for s in styles])


def stylize_frames(contents: np.ndarray, styles: Sequence[np.ndarray], config: StyleConfig | None = None, *,
                   network: Network | None = None, init: str | np.ndarray | None = None,
                   temporal: Temporal | None = None, frame_styles: Sequence[Sequence[np.ndarray]] | None = None,
                   progress: bool | Callable[[int, dict], None] = False,
                   on_chunk: Callable[[int, int, dict, float], None] | None = None,
                   devices: Sequence[jax.Device] | None = None, regions: Regions | None = None) -> Result:
    """Stylize a batch of frames [N, H, W, 3] (float32 RGB in [0, 1]) at their own size.

    Each frame gets its own optimizer state; frames are sharded across ``devices`` (default: all)
    in batches of ``config.frames_per_device`` per device. ``init`` overrides ``config.init`` (an
    array gives per-frame initial images, e.g. warped previous frames). Returns the images and a
    metrics dict (losses initial / per scale / final, iterations, times, network, devices).
    ``on_chunk(scale_index, iterations, losses, seconds)`` is called between compiled chunks.
    ``temporal`` adds the temporal loss toward warped earlier outputs. ``frame_styles`` (style
    videos): for each frame a list of style images whose Gram matrices are averaged into that
    frame's style target (``styles`` is then only used for initialization). ``regions`` (semantic
    masks, see :mod:`jaxstyle.objective.regions`) restricts style matching to regions; without it,
    ``config.content_mask`` (one label image for every frame, resized to them) and
    ``config.style_mask`` do. Frames larger than ``config.tiles.size`` are stylized in tiles.
    """
    cfg = (config or StyleConfig()).resolved()
    if regions is None and cfg.content_mask is not None:
        regions = load_regions(cfg, None, [_as_image(s, "style") for s in styles], np.shape(contents)[1:3])
    frames = schedules.prepare(contents, styles, cfg, init=init, temporal=temporal, frame_styles=frame_styles,
                               regions=regions)
    return schedules.stylize(frames, cfg, network_for(cfg, network), devices=devices, progress=progress,
                             on_chunk=on_chunk)


def stylize_image(content: ImageLike, style: ImageLike | Sequence[ImageLike], config: StyleConfig | None = None, *,
                  network: Network | None = None, return_metrics: bool = False, progress: bool = False,
                  **overrides: Any):
    """Stylize one image. ``content`` and ``style`` are paths or arrays; ``overrides`` are
    :class:`StyleConfig` fields (e.g. ``size=256, iterations=100``). Returns float32 [H, W, 3] in
    [0, 1] at the content's size (or ``size`` on the long side), and the metrics if asked."""
    cfg = dataclasses.replace(config or StyleConfig(), **overrides)
    content_img = _as_image(content, "content")
    style_list = list(style) if isinstance(style, (list, tuple)) else [style]
    style_imgs = [_as_image(s, "style") for s in style_list]
    h, w = target_size(content_img.shape[0], content_img.shape[1], cfg.size)
    frames = imaging.resize(content_img, h, w)[None]
    regions = load_regions(cfg.resolved(), content_img.shape[:2], style_imgs, (h, w))
    result = stylize_frames(frames, style_imgs, cfg, network=network, progress=progress, regions=regions)
    return (result.images[0], result.metrics) if return_metrics else result.images[0]


def image_losses(image: np.ndarray, content: np.ndarray, styles: Sequence[np.ndarray], config: StyleConfig | None = None,
                 *, network: Network | None = None) -> dict[str, float]:
    """The whole-image loss terms of an output ``image`` (at the image's size, style statistics at
    the matching scale), e.g. to compare tiled and untiled outputs."""
    cfg = (config or StyleConfig()).resolved()
    network = network_for(cfg, network)
    h, w = image.shape[:2]
    content = imaging.resize(np.asarray(content, np.float32), h, w)[None]
    inputs = ScaleInputs(network, content, content, [np.asarray(s, np.float32) for s in styles],
                         blend_weights(cfg.style_weights, len(styles)), style_side=cfg.style_scale * max(h, w))
    objective = Objective.select(cfg, inputs)
    parts = evaluate(objective, network, np.asarray(image, np.float32)[None], objective.targets(inputs, slice(0, 1)),
                     objective.weights(cfg, inputs))
    return {k: float(v[0]) for k, v in parts.items()}


def model_conditioning(model: Model, style_mix: Sequence[float] | None = None, style: np.ndarray | None = None,
                       config: StyleConfig | None = None) -> np.ndarray:
    """What a trained network is conditioned on: a blend of its styles (``style_mix``), or, for a
    style prediction network, the statistics of ``style`` taken with the VGG it was trained with."""
    if model.spec.kind == "styles":
        return model.mix(style_mix)
    if style is None:
        raise UserError("a style prediction model needs a style image")
    if style_mix is not None:
        raise UserError("--style-mix blends the styles of a 'styles' model; this one predicts from --style")
    loss = model.meta.get("loss", {})
    cfg = dataclasses.replace(config or StyleConfig(), network=loss.get("network", "auto"),
                              pooling=loss.get("pooling", "avg"), precision=loss.get("precision", "float32"))
    network = network_for(cfg)
    trained_on = model.meta.get("vgg", {}).get("sha256")
    if trained_on and network.sha256 and trained_on != network.sha256:
        raise UserError(f"the model was trained on other VGG weights ({trained_on[:12]}...) than these "
                        f"({network.describe()})")
    layers = tuple(loss.get("style_layers", cfg.style_layers))
    return style_statistics(network, layers, _as_image(style, "style"), float(model.meta.get("style_side", 256)))


def stylize_with_model(content: ImageLike, model: Model | str, *, size: int | None = None,
                       style_mix: Sequence[float] | None = None, style: ImageLike | None = None,
                       frames_per_device: int = 1, carry: float = 0.0) -> np.ndarray:
    """One image (or frames [N, H, W, 3]) through a trained network; ``model`` may be its directory.
    Returns float32 at the content's size (or ``size`` on the long side). ``carry`` (frames in order
    only): the share of each frame taken from the previous output carried along the optical flow
    (``--carry``)."""
    model = load_model(model) if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__") else model
    if isinstance(content, np.ndarray) and content.ndim == 4:  # frames: each checked and scaled as an image is
        if not len(content):
            raise UserError("content has no frames (an array [0, H, W, C])")
        frames = np.stack([to_rgb_float(frame, f"content frame {t}") for t, frame in enumerate(content)])
    else:
        frames = _as_image(content, "content")
    try:
        carry = float(carry)
    except (TypeError, ValueError):
        raise UserError(f"carry must be a number (a share from 0 up to 1), not {carry!r}") from None
    single = frames.ndim == 3
    frames = frames[None] if single else frames
    h, w = target_size(frames.shape[1], frames.shape[2], size)
    frames = imaging.resize(frames, h, w) if (h, w) != frames.shape[1:3] else frames
    if carry and single:
        raise UserError("carry blends each frame with the one before: give frames [N, H, W, 3], not one image")
    flow_carry = FlowCarry(carry) if carry else None  # (checks the share before the network runs)
    cond = model_conditioning(model, style_mix, None if style is None else _as_image(style, "style"))
    out = model.stylize(frames, cond, frames_per_device=frames_per_device)
    if flow_carry is not None:
        out = np.stack([flow_carry(c, o) for c, o in zip(frames, out)])
    return out[0] if single else out
