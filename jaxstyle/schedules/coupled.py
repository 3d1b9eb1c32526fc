"""Coupled tiles: at every tiled scale the whole canvas is one optimization (one L-BFGS per frame)
whose feature losses and gradient are evaluated window by window, each window a tile with the
network's receptive field as context (:mod:`jaxstyle.objective.windowed`). The loss and gradient
are exactly the untiled ones, so the result is the untiled result, with no seam and no stitching,
while memory stays that of one window plus the canvas-sized optimizer state. Each iteration costs
one more forward per window than an untiled one (and the windows' halos)."""

from __future__ import annotations

import dataclasses

from .. import imaging
from ..nets.vgg import Network, halo_px
from .tile_plan import scaled_temporal, tile_iterations
from .inputs import Frames
from .multiscale import ScaleOverrides, run_scales


def coupled_scales(frames: Frames, cfg, network: Network, fine, canvas, metrics: dict, *, devices=None,
                   progress=False, on_chunk=None):
    """The fine scales ``fine`` from the coarse ``canvas``; returns (canvas, final losses or None)."""
    layers = tuple(dict.fromkeys(tuple(cfg.content_layers) + tuple(cfg.style_layers)))
    halo = halo_px(network.arch, layers)
    metrics["tiled"]["halo"] = halo
    final = None
    for i, (h, w) in enumerate(fine):
        scale_cfg = dataclasses.replace(cfg, start_size=0, iterations=tile_iterations(cfg, i, len(fine)))
        scale = frames.at(imaging.resize(frames.contents, h, w), imaging.resize(frames.guides, h, w),
                          init=imaging.resize(canvas, h, w), temporal=scaled_temporal(frames.temporal, h, w))
        res = run_scales(scale, scale_cfg, network, devices=devices, progress=progress, on_chunk=on_chunk,
                         overrides=ScaleOverrides(windows=(cfg.tiles.size, halo)))
        canvas = res.images
        metrics["compile_seconds"] += res.metrics["compile_seconds"]
        info = res.metrics["scales"][0]["windows"]
        metrics["scales"].append(res.metrics["scales"][0])
        metrics["tiled"]["scales"].append({"size": [h, w], "window": cfg.tiles.size, **info})
        final = res.metrics["final"]
    return canvas, final
