"""Independent tiles: at every tiled scale the canvas is cut into overlapping tiles that are
optimized on their own, as a batch, and stitched (see :mod:`.tile_geometry` for the geometry).

1. **Rounds.** Every tiled scale is processed in ``tiles.rounds`` rounds. In each round the canvas
   (the upsampled result so far) is cut into overlapping tiles placed by homographies (grid
   translations; the fewest tiles that cover the canvas with the overlap, see
   :func:`.tile_geometry.plan_tiles_minimal`), every tile of every frame becomes one "frame" of an
   ordinary batch (sharded over devices like video frames, one compile per scale because the tile
   count does not depend on the grid's phase), the tiles are optimized from the canvas, and
   stitched back with weights that fade over half of each overlap (:func:`margin_weights`; the same
   weights weight the tiles' content and style losses, because near its edges a tile's features
   see zero padding, not the neighbouring pixels). Between rounds the interior tiles move from
   -0.8 to +0.8 of their slack, so seams do not stay in one place. A scale's iterations are spread
   over its rounds.
2. **Style statistics at the canvas's scale, with each tile's own offset.** The style target A is
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
   block, exactly (:func:`jaxstyle.nets.taps.weighted_grams`), so peak memory stays that of one
   tile. Temporal targets, occlusion masks and semantic masks are cut into the same tiles as the
   content.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import imaging
from ..imaging import resize_masks
from ..nets import taps
from ..nets.vgg import Network
from ..objective import Regions, Temporal
from ..objective.style import blended_grams
from . import tile_geometry
from .inputs import Frames
from .multiscale import ScaleOverrides, run_scales
from .tile_plan import tile_iterations


def extract(arrays: np.ndarray, homs: np.ndarray, tile_hw: tuple[int, int]) -> np.ndarray:
    """Tiles of every frame [N, H, W, C] -> [N * T, th, tw, C] (frame-major)."""
    return np.concatenate([np.asarray(tile_geometry.extract_tiles(a, homs, tile_hw)) for a in arrays])


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


def offset_targets(network: Network, cfg, styles, blend, tile_images: np.ndarray, n: int, count: int,
                   style_side: float, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-tile Gram targets ``A + G_t - mean_s G_s`` (means over the tiles of the same frame; the
    tiles' Grams weight positions by ``weights`` [N * T, th, tw] as their losses do)."""
    layers = tuple(cfg.style_layers)
    target = blended_grams(network, layers, styles, blend, style_side)
    shapes = taps.layer_shapes(network, layers, *tile_images.shape[1:3])
    grams = {k: [] for k in layers}
    for i, tile in enumerate(tile_images):  # one at a time: bounded memory whatever the tile count
        masks = None if weights is None else {k: resize_masks(weights[i][..., None], *shapes[k]) for k in layers}
        g = taps.weighted_grams(network, layers, tile, masks)
        for k in layers:
            grams[k].append(np.asarray(g[k] if masks is None else g[k][0]))
    out = {}
    for k in layers:
        g = np.stack(grams[k]).reshape(n, count, *grams[k][0].shape)
        out[k] = (np.asarray(target[k])[None, None] + g - g.mean(1, keepdims=True)).reshape(n * count, *g.shape[2:])
    return out


def frame_norms(network: Network, cfg, styles, blend, contents: np.ndarray, count: int, style_side: float,
                style: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """Loss normalizers of the whole frames for their tiles ({"content"|"style": {layer: [N * T]}}):
    a tile's content and style differences are divided by the rms of its *frame's* content features
    and of the style's Gram, as in an untiled run, not by its own (a sky tile's small feature rms
    would otherwise weight its content more than the frame's loss does). The content rms comes from
    the frame's Gram trace (``mean(P^2) = trace(P^T P / HW) / C``), summed block by block."""
    layers = tuple(cfg.content_layers)
    out = {"content": {k: [] for k in layers}}
    for frame in contents:
        g = taps.weighted_grams(network, layers, frame)
        for k in layers:
            out["content"][k].append(float(np.sqrt(np.trace(np.asarray(g[k])) / g[k].shape[-1] + 1e-8)))
    out["content"] = {k: np.repeat(np.asarray(v, np.float32), count) for k, v in out["content"].items()}
    if style:
        target = blended_grams(network, tuple(cfg.style_layers), styles, blend, style_side)
        out["style"] = {k: np.full(len(contents) * count, float(np.sqrt(np.mean(np.square(np.asarray(v))) + 1e-8)),
                                   np.float32) for k, v in target.items()}
    return out


def _tile_temporal(temporal: Temporal | None, h: int, w: int, homs, tile_hw) -> Temporal | None:
    if temporal is None:
        return None
    t = extract(imaging.resize(temporal.targets, h, w), homs, tile_hw)
    m = extract(imaging.resize(temporal.masks[..., None], h, w), homs, tile_hw)
    return Temporal(t, m[..., 0], temporal.weight)


def independent_scales(frames: Frames, cfg, network: Network, fine, canvas, metrics: dict, *, devices=None,
                       progress=False, on_chunk=None):
    """The fine scales ``fine`` from the coarse ``canvas``; returns (canvas, final losses or None)."""
    n = frames.count
    regions, frame_styles = frames.regions, frames.frame_styles
    final = None
    for si, (h, w) in enumerate(fine):
        content_s = imaging.resize(frames.contents, h, w)
        guides_s = imaging.resize(frames.guides, h, w)
        canvas = imaging.resize(canvas, h, w)
        tile_hw = tile_geometry.tile_shape(h, w, cfg.tiles.size)
        overlap = min(cfg.tiles.overlap, max(0, min(tile_hw) // 2 - 1))
        rounds = cfg.tiles.rounds
        total = tile_iterations(cfg, si, len(fine))
        per_round = [total // rounds + (1 if r < total % rounds else 0) for r in range(rounds)]
        style_side = cfg.style_scale * max(h, w)
        scale_final: dict[str, list] = {}
        norms = None
        count = 0
        for r, iters in enumerate(per_round):
            if iters == 0:
                continue
            phase = 0.0 if rounds == 1 else 0.8 * (2.0 * r / (rounds - 1) - 1.0)
            homs = tile_geometry.plan_tiles_minimal(h, w, cfg.tiles.size, overlap, phase=phase)
            count = homs.shape[0]
            sub_regions = None
            if regions is not None:
                masks = resize_masks(regions.content, h, w)
                sub_regions = Regions(extract(masks, homs, tile_hw), regions.styles, regions.codes)
            sub_styles = None if frame_styles is None else [s for s in frame_styles for _ in range(count)]
            init_tiles = extract(canvas, homs, tile_hw)
            weights = None
            if regions is None:  # (with semantic masks the region masks weight the style loss instead)
                weights = np.tile(margin_weights(homs, tile_hw, (h, w)), (n, 1, 1))
            targets = None
            if cfg.tiles.targets == "offset" and regions is None and frame_styles is None:
                targets = offset_targets(network, cfg, frames.styles, frames.blend, init_tiles, n, count, style_side,
                                         weights)
            if weights is not None and norms is None:  # once per scale (the tile count does not change)
                norms = frame_norms(network, cfg, frames.styles, frames.blend, content_s, count, style_side,
                                    style=frame_styles is None)
            tiles_in = frames.at(extract(content_s, homs, tile_hw), extract(guides_s, homs, tile_hw), init=init_tiles,
                                 temporal=_tile_temporal(frames.temporal, h, w, homs, tile_hw),
                                 frame_styles=sub_styles, regions=sub_regions)
            res = run_scales(tiles_in, dataclasses.replace(cfg, start_size=0, iterations=iters), network,
                             devices=devices, progress=progress, on_chunk=on_chunk,
                             overrides=ScaleOverrides(style_side=style_side, style_targets=targets, loss_weights=weights,
                                                      loss_norms=norms))
            out = res.images.reshape(n, count, *res.images.shape[1:])
            blend = margin_weights(homs, tile_hw, (h, w))
            canvas = np.stack([np.asarray(tile_geometry.stitch(out[i], homs, (h, w), blend)) for i in range(n)])
            metrics["compile_seconds"] += res.metrics["compile_seconds"]
            for k, v in res.metrics["final"].items():  # per frame: the mean over its tiles
                scale_final[k] = np.asarray(v).reshape(n, count).mean(1).tolist()
            metrics["scales"].append({**res.metrics["scales"][0], "tiles": count, "round": r,
                                      "canvas": [h, w], "tile": list(tile_hw)})
        metrics["tiled"]["scales"].append({"size": [h, w], "tiles": int(count), "tile": list(tile_hw),
                                           "iterations_per_round": per_round})
        final = scale_final or final
    return canvas, final
