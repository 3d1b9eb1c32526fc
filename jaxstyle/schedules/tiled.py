"""Large frames as tiles: a whole-frame coarse pass, then tiled fine scales.

Two modes (``tile_mode``) for the scales above ``tile_size``:

- ``coupled`` (default): the whole canvas is one optimization (one L-BFGS per frame) whose feature
  losses and gradient are evaluated tile by tile, each tile a window with the network's receptive
  field as context (:mod:`jaxstyle.windowed`). The loss and gradient are exactly the untiled ones,
  so the result is the untiled result, with no seam and no stitching, while memory stays that of
  one window plus the canvas-sized optimizer state. Each iteration costs one more forward per
  window than an untiled one (and the windows' halos).
- ``independent``: the tiles are optimized on their own, as a batch, and stitched:

Schedule of independent tiles (see :mod:`jaxstyle.tiles` for the geometry):

1. **Coarse, whole frame.** The frames are stylized untiled, coarse to fine, up to the largest
   scale whose long side fits in a tile (``coarse_iterations`` at that scale). Style is therefore
   decided once for the whole frame and is consistent from tile to tile.
2. **Tiled fine scales.** Every scale of the preset above ``tile_size`` is processed in
   ``tile_rounds`` rounds. In each round the canvas (the upsampled result so far) is cut into
   overlapping tiles placed by homographies (grid translations; the fewest tiles that cover the
   canvas with the overlap, see :func:`jaxstyle.tiles.plan_tiles_minimal`), every tile of every
   frame becomes one "frame" of an ordinary batch (sharded over devices like video frames, one
   compile per scale because the tile count does not depend on the grid's phase), the tiles are
   optimized from the canvas, and stitched back with weights that fade over half of each overlap
   (:func:`margin_weights`; the same weights weight the tiles' content and style losses, because
   near its edges a tile's features see zero padding, not the neighbouring pixels). Between rounds the interior
   tiles move from -0.8 to +0.8 of their slack, so seams do not stay in one place. A scale's iterations are spread
   over its rounds: ``tile_iterations`` at the last scale (at 4K one full-resolution iteration
   costs minutes on a 2-core CPU, so it only sharpens), ``tile_coarse_iterations`` (default
   ``coarse_iterations``) at the tiled scales below it, which form the texture (both modes).
3. **Style statistics at the canvas's scale, with each tile's own offset.** The style target A is
   the Gram of the whole style image resized as for an untiled frame of the canvas's size (not of
   the tile's size), so texture has the same scale as without tiling. A tile is *not* pulled to A
   itself: the whole frame's Gram is (about) the mean of its tiles' Grams, and the gradient of the
   whole-frame loss moves every tile by the same Gram step ``mean_t G_t - A``. So tile t's target
   is ``A + (G_t - mean_s G_s)`` with the Grams G of the tiles at the start of the round: the
   frame's mean statistics go to the style's, while each tile keeps its own deviation from the mean
   (a sky tile stays a sky tile). Matching every tile to A instead forces the whole style into
   every tile and loses content (measured in ``benchmarks/bench_tiles.py``). With semantic masks or
   a style video the tiles use the plain per-region / per-frame targets. A tile's losses are
   normalized as its whole frame's (:func:`frame_norms`), not by its own feature statistics. The
   style Grams of a large style image (a 4K frame's style is taken at ~3840 px) are summed block by
   block, exactly (:func:`jaxstyle.stylize.weighted_grams`), so peak memory stays that of one tile. Temporal targets,
   occlusion masks and semantic masks are cut into the same tiles as the content.

Colour preservation is applied once around the whole schedule (by the caller), not per tile.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

import numpy as np

from . import imaging, tiles
from .config import StyleConfig, scaled_size
from .masks import Regions, resize_masks


def tiled_scales(cfg: StyleConfig, height: int, width: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """(coarse whole-frame size, tiled fine sizes) for a frame of height x width."""
    fine = [hw for hw in cfg.scales(height, width) if max(hw) > cfg.tile_size]
    coarse = scaled_size(height, width, cfg.tile_size)
    return coarse, fine


def tile_iterations(cfg: StyleConfig, index: int, count: int) -> int:
    """Iterations at tiled scale ``index`` of ``count`` (a resolved config): ``tile_iterations`` at
    the last one, ``tile_coarse_iterations`` (``coarse_iterations`` unless given) below it."""
    return cfg.tile_coarse_iterations if index < count - 1 else cfg.tile_iterations


def _extract(arrays: np.ndarray, homs: np.ndarray, tile_hw: tuple[int, int]) -> np.ndarray:
    """Tiles of every frame [N, H, W, C] -> [N * T, th, tw, C] (frame-major)."""
    return np.concatenate([np.asarray(tiles.extract_tiles(a, homs, tile_hw)) for a in arrays])


def margin_weights(homs: np.ndarray, tile_hw: tuple[int, int], canvas_hw: tuple[int, int]) -> np.ndarray:
    """[T, th, tw] weights of translated tiles for their losses and for stitching.

    1 inside; at every tile edge that lies inside the canvas the weight ramps linearly from ~0 at
    the edge to 1 over half of the actual overlap with the neighbouring tile (near its edges a
    tile's features see zero padding instead of the neighbouring pixels, so the neighbour, for
    which those pixels lie inside, scores and provides them). Canvas edges keep weight 1. In an
    overlap one tile's weight falls as the other's rises, so the stitch is a smooth cross-fade.
    """
    th, tw = tile_hw
    height, width = canvas_hw
    ys = sorted({int(round(float(m[1, 2]))) for m in homs})
    xs = sorted({int(round(float(m[0, 2]))) for m in homs})

    def axis(starts, pos, t, length):
        i = starts.index(pos)
        w = np.ones(t)
        idx = np.arange(t) + 0.5
        if pos > 0 and i > 0:
            half = (starts[i - 1] + t - pos) / 2
            w = np.minimum(w, np.clip(idx / half, 0.0, 1.0))
        if pos + t < length and i + 1 < len(starts):
            half = (pos + t - starts[i + 1]) / 2
            w = np.minimum(w, np.clip((t - idx) / half, 0.0, 1.0))
        return w

    out = [np.outer(axis(ys, int(round(float(m[1, 2]))), th, height), axis(xs, int(round(float(m[0, 2]))), tw, width))
           for m in homs]
    return np.maximum(np.stack(out), 1e-3).astype(np.float32)


def _style_target(network, cfg: StyleConfig, styles, style_side: float) -> dict:
    """The frame's style Gram target A at the canvas's scale (the blended style images)."""
    from .optimize import LossSpec
    from .stylize import style_grams

    spec = LossSpec(tuple(cfg.content_layers), tuple(cfg.style_layers), tuple(cfg.style_layer_weights), cfg.distance)
    blend = np.asarray(cfg.style_weights if cfg.style_weights else [1.0] * len(styles), np.float64)
    return style_grams(network, spec, styles, blend / blend.sum(), style_side)


def offset_targets(network, cfg: StyleConfig, styles, tile_images: np.ndarray, n: int, count: int,
                   style_side: float, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-tile Gram targets ``A + G_t - mean_s G_s`` (means over the tiles of the same frame; the
    tiles' Grams weight positions by ``weights`` [N * T, th, tw] as their losses do)."""
    from .stylize import layer_shapes, weighted_grams

    layers = tuple(cfg.style_layers)
    target = _style_target(network, cfg, styles, style_side)
    shapes = layer_shapes(network, layers, *tile_images.shape[1:3])
    grams = {k: [] for k in layers}
    for i, tile in enumerate(tile_images):  # one at a time: bounded memory whatever the tile count
        masks = None if weights is None else {k: resize_masks(weights[i][..., None], *shapes[k]) for k in layers}
        g = weighted_grams(network, layers, tile, masks)
        for k in layers:
            grams[k].append(np.asarray(g[k] if masks is None else g[k][0]))
    out = {}
    for k in layers:
        g = np.stack(grams[k]).reshape(n, count, *grams[k][0].shape)
        out[k] = (np.asarray(target[k])[None, None] + g - g.mean(1, keepdims=True)).reshape(n * count, *g.shape[2:])
    return out


def frame_norms(network, cfg: StyleConfig, styles, contents: np.ndarray, count: int, style_side: float,
                style: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """Loss normalizers of the whole frames for their tiles ({"content"|"style": {layer: [N * T]}}):
    a tile's content and style differences are divided by the rms of its *frame's* content features
    and of the style's Gram, as in an untiled run, not by its own (a sky tile's small feature rms
    would otherwise weight its content more than the frame's loss does). The content rms comes from
    the frame's Gram trace (``mean(P^2) = trace(P^T P / HW) / C``), summed block by block."""
    from .stylize import weighted_grams

    layers = tuple(cfg.content_layers)
    out = {"content": {k: [] for k in layers}}
    for frame in contents:
        g = weighted_grams(network, layers, frame)
        for k in layers:
            out["content"][k].append(float(np.sqrt(np.trace(np.asarray(g[k])) / g[k].shape[-1] + 1e-8)))
    out["content"] = {k: np.repeat(np.asarray(v, np.float32), count) for k, v in out["content"].items()}
    if style:
        target = _style_target(network, cfg, styles, style_side)
        out["style"] = {k: np.full(len(contents) * count, float(np.sqrt(np.mean(np.square(np.asarray(v))) + 1e-8)),
                                   np.float32) for k, v in target.items()}
    return out


def _coupled_scales(contents, styles, cfg: StyleConfig, untiled: StyleConfig, fine, canvas, final, metrics, *,
                    network, sub_temporal, frame_styles, regions, progress, on_chunk, devices):
    """Fine scales as one optimization of the whole canvas whose feature losses are evaluated window
    by window (:mod:`jaxstyle.windowed`); returns (canvas, final losses)."""
    from . import windowed
    from .stylize import stylize_frames

    layers = tuple(dict.fromkeys(tuple(cfg.content_layers) + tuple(cfg.style_layers)))
    halo = windowed.halo_px(network.arch, layers)
    metrics["tiled"]["halo"] = halo
    for i, (h, w) in enumerate(fine):
        scale_cfg = dataclasses.replace(untiled, start_size=0, iterations=tile_iterations(cfg, i, len(fine)))
        res = stylize_frames(imaging.resize(contents, h, w), styles, scale_cfg, network=network,
                             init=imaging.resize(canvas, h, w), temporal=sub_temporal(h, w), frame_styles=frame_styles,
                             regions=regions, progress=progress, on_chunk=on_chunk, devices=devices,
                             windows=(cfg.tile_size, halo))
        canvas = res.images
        metrics["compile_seconds"] += res.metrics["compile_seconds"]
        info = res.metrics["scales"][0]["windows"]
        metrics["scales"].append(res.metrics["scales"][0])
        metrics["tiled"]["scales"].append({"size": [h, w], "window": cfg.tile_size, **info})
        final = res.metrics["final"]
    return canvas, final


def stylize_tiled(contents: np.ndarray, styles: Sequence[np.ndarray], cfg: StyleConfig, *, network,
                  init=None, temporal=None, frame_styles=None, regions: Regions | None = None,
                  progress: bool | Callable = False, on_chunk=None, devices=None):
    """Stylize frames [N, H, W, 3] larger than ``cfg.tile_size`` (a resolved config, colours already
    handled). Returns a :class:`jaxstyle.stylize.Result` at the frames' size."""
    from .stylize import Result, Temporal, stylize_frames

    from . import windowed
    from .errors import UserError

    t_start = time.perf_counter()
    n, height, width, _ = contents.shape
    if cfg.tile_mode == "coupled":
        need = windowed.min_window(network.arch, tuple(cfg.content_layers) + tuple(cfg.style_layers))
        if cfg.tile_size < need:
            raise UserError(f"--tile-size {cfg.tile_size} is too small for coupled tiles with these layers of "
                            f"{network.arch} (at least {need} px: the receptive field on both sides); "
                            "use a larger --tile-size or --tile-mode independent")
    coarse_hw, fine = tiled_scales(cfg, height, width)
    tiled_info: dict[str, Any] = {"mode": cfg.tile_mode, "tile_size": cfg.tile_size, "coarse_size": list(coarse_hw),
                                  "scales": []}
    if cfg.tile_mode == "independent":
        tiled_info.update(overlap=cfg.tile_overlap, rounds=cfg.tile_rounds)
    metrics: dict[str, Any] = {"tiled": tiled_info,
                               "scales": [], "compile_seconds": 0.0}
    untiled = dataclasses.replace(cfg, tile_size=0)

    def sub_temporal(h, w, homs=None, tile_hw=None):
        if temporal is None:
            return None
        t = imaging.resize(temporal.targets, h, w)
        m = imaging.resize(temporal.masks[..., None], h, w)
        if homs is not None:
            t, m = _extract(t, homs, tile_hw), _extract(m, homs, tile_hw)
        return Temporal(t, m[..., 0], temporal.weight)

    # 1. whole frame, coarse to fine up to the tile size
    ch, cw = coarse_hw
    coarse_cfg = dataclasses.replace(untiled, iterations=cfg.coarse_iterations)
    coarse_init = init
    if isinstance(init, np.ndarray):
        coarse_init = imaging.resize(np.asarray(init, np.float32), ch, cw)
    result = stylize_frames(imaging.resize(contents, ch, cw), styles, coarse_cfg, network=network, init=coarse_init,
                            temporal=sub_temporal(ch, cw), frame_styles=frame_styles, regions=regions,
                            progress=progress, on_chunk=on_chunk, devices=devices)
    canvas = result.images
    metrics["scales"] += result.metrics["scales"]
    metrics["compile_seconds"] += result.metrics["compile_seconds"]
    for key in ("network", "network_sha256", "devices", "device_kind", "optimizer", "preset", "config"):
        metrics[key] = result.metrics.get(key)
    metrics["config"] = dataclasses.asdict(cfg)
    final = result.metrics["final"]

    # 2. tiled fine scales
    if cfg.tile_mode == "coupled":
        canvas, final = _coupled_scales(contents, styles, cfg, untiled, fine, canvas, final, metrics, network=network,
                                        sub_temporal=sub_temporal, frame_styles=frame_styles, regions=regions,
                                        progress=progress, on_chunk=on_chunk, devices=devices)
    for si, (h, w) in enumerate(fine if cfg.tile_mode == "independent" else []):
        content_s = imaging.resize(contents, h, w)
        canvas = imaging.resize(canvas, h, w)
        tile_hw = tiles.tile_shape(h, w, cfg.tile_size)
        overlap = min(cfg.tile_overlap, max(0, min(tile_hw) // 2 - 1))
        rounds = cfg.tile_rounds
        total = tile_iterations(cfg, si, len(fine))
        per_round = [total // rounds + (1 if r < total % rounds else 0) for r in range(rounds)]
        style_side = cfg.style_scale * max(h, w)
        scale_final: dict[str, list] = {}
        norms = None
        for r, iters in enumerate(per_round):
            if iters == 0:
                continue
            phase = 0.0 if rounds == 1 else 0.8 * (2.0 * r / (rounds - 1) - 1.0)
            homs = tiles.plan_tiles_minimal(h, w, cfg.tile_size, overlap, phase=phase)
            count = homs.shape[0]
            sub_regions = None
            if regions is not None:
                masks = resize_masks(regions.content, h, w)
                sub_regions = Regions(_extract(masks, homs, tile_hw), regions.styles, regions.codes)
            sub_styles = None if frame_styles is None else [s for s in frame_styles for _ in range(count)]
            tile_cfg = dataclasses.replace(untiled, start_size=0, iterations=iters)
            init_tiles = _extract(canvas, homs, tile_hw)
            weights = None
            if regions is None:  # (with semantic masks the region masks weight the style loss instead)
                weights = np.tile(margin_weights(homs, tile_hw, (h, w)), (n, 1, 1))
            targets = None
            if cfg.tile_targets == "offset" and regions is None and frame_styles is None:
                targets = offset_targets(network, cfg, styles, init_tiles, n, count, style_side, weights)
            if weights is not None and norms is None:  # once per scale (the tile count does not change)
                norms = frame_norms(network, cfg, styles, content_s, count, style_side, style=frame_styles is None)
            res = stylize_frames(_extract(content_s, homs, tile_hw), styles, tile_cfg, network=network,
                                 init=init_tiles, style_targets=targets, loss_weights=weights, loss_norms=norms, temporal=sub_temporal(h, w, homs, tile_hw),
                                 frame_styles=sub_styles, regions=sub_regions,
                                 progress=progress, on_chunk=on_chunk, devices=devices,
                                 style_long_side=lambda _h, _w: style_side)
            out = res.images.reshape(n, count, *res.images.shape[1:])
            blend = margin_weights(homs, tile_hw, (h, w))
            canvas = np.stack([np.asarray(tiles.stitch(out[i], homs, (h, w), blend)) for i in range(n)])
            metrics["compile_seconds"] += res.metrics["compile_seconds"]
            for k, v in res.metrics["final"].items():  # per frame: the mean over its tiles
                scale_final[k] = np.asarray(v).reshape(n, count).mean(1).tolist()
            metrics["scales"].append({**res.metrics["scales"][0], "tiles": count, "round": r,
                                      "canvas": [h, w], "tile": list(tile_hw)})
        metrics["tiled"]["scales"].append({"size": [h, w], "tiles": int(count), "tile": list(tile_hw),
                                           "iterations_per_round": per_round})
        final = scale_final or final
    out = np.clip(canvas, 0.0, 1.0).astype(np.float32)
    if out.shape[1:3] != (height, width):
        out = imaging.resize(out, height, width)
    metrics["initial"] = result.metrics["initial"]
    metrics["final"] = final
    metrics["iterations"] = sum(s["iterations"] for s in metrics["scales"])
    metrics["frames"] = n
    metrics["size"] = [height, width]
    metrics["wall_seconds"] = time.perf_counter() - t_start
    return Result(out, metrics)
