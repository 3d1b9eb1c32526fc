"""Large frames: a whole-frame coarse pass up to the tile size, then the tiled fine scales.

Frames whose long side is above ``tiles.size`` are stylized whole, coarse to fine, up to the
largest scale whose long side fits in a tile (``coarse_iterations`` there), so style is decided once
for the whole frame. Every larger scale of the preset is then handled by one of two schedules
(``tiles.mode``):

- ``coupled`` (default, :mod:`.coupled`): the whole canvas stays one optimization whose feature
  losses and gradient are evaluated tile by tile (exactly the untiled ones);
- ``independent`` (:mod:`.independent`): tiles optimized on their own, as a batch, and stitched.

At the last tiled scale (the frame's size) each runs ``tiles.iterations``; at the tiled scales
below it ``tiles.coarse_iterations`` (default ``coarse_iterations``): those form the texture that
the last one only sharpens. Colour preservation is applied once around the whole schedule (by the
caller), not per tile.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np

from .. import imaging
from ..nets.vgg import Network
from . import coupled, independent
from .inputs import Frames, Result
from .multiscale import run_scales
from .tile_plan import check_tiles, scaled_temporal, tiled_scales


def stylize_tiled(frames: Frames, cfg, network: Network, *, devices=None, progress: bool | Callable = False,
                  on_chunk=None) -> Result:
    """Stylize frames larger than ``cfg.tiles.size`` (a resolved config, colours already handled).
    Returns a :class:`Result` at the frames' size."""
    t_start = time.perf_counter()
    n = frames.count
    height, width = frames.size
    check_tiles(cfg, network)
    coarse_hw, fine = tiled_scales(cfg, height, width)
    tiled_info: dict[str, Any] = {"mode": cfg.tiles.mode, "tile_size": cfg.tiles.size, "coarse_size": list(coarse_hw),
                                  "scales": []}
    if cfg.tiles.mode == "independent":
        tiled_info.update(overlap=cfg.tiles.overlap, rounds=cfg.tiles.rounds)
    metrics: dict[str, Any] = {"tiled": tiled_info, "scales": [], "compile_seconds": 0.0}

    # 1. whole frame, coarse to fine up to the tile size
    ch, cw = coarse_hw
    init = frames.init
    if isinstance(init, np.ndarray):
        init = imaging.resize(np.asarray(init, np.float32), ch, cw)
    coarse = frames.at(imaging.resize(frames.contents, ch, cw), imaging.resize(frames.guides, ch, cw), init=init,
                       temporal=scaled_temporal(frames.temporal, ch, cw))
    result = run_scales(coarse, dataclasses.replace(cfg, iterations=cfg.coarse_iterations), network, devices=devices,
                        progress=progress, on_chunk=on_chunk)
    metrics["scales"] += result.metrics["scales"]
    metrics["compile_seconds"] += result.metrics["compile_seconds"]
    for key in ("network", "network_sha256", "devices", "device_kind", "optimizer", "preset"):
        metrics[key] = result.metrics.get(key)
    metrics["config"] = dataclasses.asdict(cfg)

    # 2. tiled fine scales
    schedule = coupled.coupled_scales if cfg.tiles.mode == "coupled" else independent.independent_scales
    canvas, final = schedule(frames, cfg, network, fine, result.images, metrics, devices=devices, progress=progress,
                             on_chunk=on_chunk)
    out = np.clip(canvas, 0.0, 1.0).astype(np.float32)
    if out.shape[1:3] != (height, width):
        out = imaging.resize(out, height, width)
    metrics["initial"] = result.metrics["initial"]
    metrics["final"] = final or result.metrics["final"]
    metrics["iterations"] = sum(s["iterations"] for s in metrics["scales"])
    metrics["frames"] = n
    metrics["size"] = [height, width]
    metrics["wall_seconds"] = time.perf_counter() - t_start
    return Result(out, metrics)
