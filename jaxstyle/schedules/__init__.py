"""Schedules: how frames are taken to their stylized result, each calling the solver
(:func:`jaxstyle.optim.solve`) scale by scale, never the public API.

- :mod:`.multiscale`: coarse to fine, the image carried from scale to scale;
- :mod:`.tiled`: frames larger than the tile size, whole up to it and then tiled, either
  :mod:`.coupled` (one optimization, losses evaluated window by window) or :mod:`.independent`
  (tiles optimized on their own and stitched, :mod:`.tile_geometry`);
- :mod:`.inputs`: what a schedule takes and returns, and colour preservation around it.

:func:`stylize` picks the schedule for the frames' size.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from .. import imaging
from ..errors import NonFiniteLoss
from ..nets.vgg import Network, check_layers
from .inputs import Frames, Result, check_frame_size, prepare, restore_colours
from .multiscale import run_scales
from .tile_plan import is_tiled, tiled_scales
from .tiled import stylize_tiled

__all__ = ["Frames", "Result", "check_frame_size", "prepare", "stylize", "check_network", "is_tiled", "tiled_scales", "run_scales"]


def stylize(frames: Frames, cfg, network: Network, *, devices=None, progress=False, on_chunk=None) -> Result:
    """Stylize ``frames`` (from :func:`prepare`) with a resolved config: the untiled coarse-to-fine
    schedule, or the tiled one for frames larger than ``cfg.tiles.size``; colours are put back
    afterwards. ``network`` must have the config's pooling and precision. A non-finite loss raises NonFiniteLoss with the last finite result as ``.result``."""
    t_start = time.perf_counter()
    check_network(cfg, network)
    tiled = is_tiled(cfg, *frames.size)
    run = stylize_tiled if tiled else run_scales
    try:
        result = run(frames, cfg, network, devices=devices, progress=progress, on_chunk=on_chunk)
    except NonFiniteLoss as err:
        if getattr(err, "result", None) is not None:
            _finish(err.result, frames, cfg, t_start)
        raise
    return _finish(result, frames, cfg, t_start)


def check_network(cfg, network: Network) -> None:
    """The config's layers are taps of this network (VGG16 has no relu5_4, ...)."""
    check_layers(network.arch, cfg.content_layers, "--content-layers")
    check_layers(network.arch, cfg.style_layers, "--style-layers")


def _finish(result: Result, frames: Frames, cfg, t_start: float) -> Result:
    images = result.images
    if images.shape[1:3] != frames.size:  # a run stopped early (non-finite) at a coarser scale
        images = imaging.resize(images, *frames.size)
    result.images = np.asarray(restore_colours(images, frames, cfg), np.float32)
    result.metrics["config"] = dataclasses.asdict(cfg)
    result.metrics["wall_seconds"] = time.perf_counter() - t_start
    return result
