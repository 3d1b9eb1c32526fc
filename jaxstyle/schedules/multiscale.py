"""The typed Python API: stylize images or batches of frames, coarse to fine.

>>> import jaxstyle
>>> out = jaxstyle.stylize_image("content.jpg", "style.jpg", size=256)   # float32 [H, W, 3]
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import imaging
from .config import StyleConfig, scaled_size
from .errors import NonFiniteLoss, UserError
from .masks import Regions, resize_masks
from .optimize import FrameTargets, LossSpec, Problem, Weights, frame_mesh, run_scale
from .vgg import Network
from .weights import load_network

ImageLike = "np.ndarray | str"
MIN_SIDE = 16  # VGG pools 4 times before relu5_1: smaller images have no deep features


@dataclass
class Temporal:
    """Temporal-consistency inputs for a batch of frames (at the frames' full size)."""

    targets: np.ndarray        # [N, H, W, 3] warped previous outputs
    masks: np.ndarray          # [N, H, W] reliability masks (0 disables the term for a pixel)
    weight: float = 0.0


@dataclass
class Result:
    images: np.ndarray                      # [N, H, W, 3] float32 in [0, 1]
    metrics: dict[str, Any] = field(default_factory=dict)


def _as_image(item, what: str) -> np.ndarray:
    if isinstance(item, np.ndarray):
        return imaging.to_rgb_float(item, what)
    return imaging.read_image(item)


_FEATURE_FNS: dict[tuple, Callable] = {}


def _features_fn(network: Network, layers: tuple[str, ...]) -> Callable:
    key = (id(network.module), network.arch, network.pooling, network.preprocessing, layers)
    if key not in _FEATURE_FNS:
        module = network.module
        _FEATURE_FNS[key] = jax.jit(lambda variables, x: module.apply(variables, x, layers))
    return _FEATURE_FNS[key]


_GRAM_CACHE: "OrderedDict[tuple, dict[str, jax.Array]]" = OrderedDict()
_GRAM_CACHE_SIZE = 512
# Images with more than GRAM_WINDOW**2 pixels have their Gram matrices summed over blocks of
# GRAM_BLOCK px, each seen through a window with GRAM_HALO px of context on every side (at least the
# receptive-field radius of the deepest style layer: 66 px for relu5_1 of VGG16, 126 px for relu5_4
# of VGG19), so the sums are exact while memory stays that of one window. Block and halo are
# multiples of 16 (four poolings), so the windows' feature grids align with the whole image's.
GRAM_BLOCK = 768
GRAM_HALO = 128
GRAM_WINDOW = GRAM_BLOCK + 2 * GRAM_HALO
_GRAM_SUM_FNS: dict[tuple, Callable] = {}


def _gram_sums_fn(network: Network, layers: tuple[str, ...]) -> Callable:
    """jit: (variables, x [1, h, w, 3], weights {layer: [h_l, w_l, K]}) ->
    {layer: (sum_p w_pk f_p f_p^T [K, C, C], sum_p w_pk [K])}. Only the sums leave the program."""
    key = (id(network.module), network.arch, network.pooling, network.preprocessing, layers)
    if key not in _GRAM_SUM_FNS:
        module = network.module

        def fn(variables, x, weights):
            feats = module.apply(variables, x, layers)
            out = {}
            for name in layers:
                flat = feats[name][0].reshape(-1, feats[name].shape[-1])
                m = weights[name].reshape(-1, weights[name].shape[-1])
                out[name] = (jnp.einsum("pk,pi,pj->kij", m, flat, flat), m.sum(0))
            return out

        _GRAM_SUM_FNS[key] = jax.jit(fn)
    return _GRAM_SUM_FNS[key]


def _gram_blocks(length: int) -> list[tuple[int, int, int, int]]:
    """(window start, window end, block start, block end) along an axis of ``length`` px."""
    if length <= GRAM_WINDOW:
        return [(0, length, 0, length)]
    out = []
    for b0 in range(0, length, GRAM_BLOCK):
        b1 = min(length, b0 + GRAM_BLOCK)
        out.append((max(0, b0 - GRAM_HALO), min(length, b1 + GRAM_HALO), b0, b1))
    return out


def weighted_grams(network: Network, layers: tuple[str, ...], image: np.ndarray,
                   masks: dict[str, np.ndarray] | None = None) -> dict[str, jax.Array]:
    """Gram matrices of one image [H, W, 3] at its own size: {layer: [C, C]}, or with soft position
    weights ``masks`` {layer: [H_l, W_l, K]} (at each layer's resolution) {layer: [K, C, C]}, each
    normalized by its weight sum (as :func:`jaxstyle.losses.region_grams`). Images larger than
    ``GRAM_WINDOW**2`` px are summed block by block (exact, see ``GRAM_HALO``), so memory does not
    grow with the image: a 4K frame's style image at the frame's scale is ~12 Mpx."""
    height, width = image.shape[:2]
    shapes = layer_shapes(network, layers, height, width)
    plain = masks is None
    if plain:
        masks = {name: np.ones(shapes[name] + (1,), np.float32) for name in layers}
    strides = {name: 256 // hw[0] for name, hw in layer_shapes(network, layers, 256, 256).items()}
    fn = _gram_sums_fn(network, layers)
    sums: dict[str, Any] = {}
    for ys, ye, by0, by1 in _gram_blocks(height):
        for xs, xe, bx0, bx1 in _gram_blocks(width):
            win = layer_shapes(network, layers, ye - ys, xe - xs)
            weights = {}
            for name in layers:
                st, (lh, lw) = strides[name], win[name]
                rows = slice(ys // st, ys // st + lh)
                cols = slice(xs // st, xs // st + lw)
                w = np.zeros((lh, lw, masks[name].shape[-1]), np.float32)
                r0, r1 = (by0 - ys) // st, (lh if by1 == height else (by1 - ys) // st)
                c0, c1 = (bx0 - xs) // st, (lw if bx1 == width else (bx1 - xs) // st)
                w[r0:r1, c0:c1] = masks[name][rows, cols][r0:r1, c0:c1]
                weights[name] = w
            window = jnp.asarray(np.ascontiguousarray(image[ys:ye, xs:xe], np.float32))[None]
            part = fn(network.variables, window, weights)
            for name in layers:
                g, m = part[name]
                sums[name] = (g, m) if name not in sums else (sums[name][0] + g, sums[name][1] + m)
    grams = {name: g / jnp.maximum(m, 1e-3)[:, None, None] for name, (g, m) in sums.items()}
    return {name: g[0] for name, g in grams.items()} if plain else grams


def _image_grams(network: Network, layers: tuple[str, ...], image: np.ndarray, long_side: int,
                 mask: np.ndarray | None = None) -> dict[str, jax.Array]:
    """Gram matrices of one style image at a long side, cached by the image's bytes (video steps and
    style-video windows ask for the same ones again and again). With a region ``mask`` [h, w, K]
    (one-hot, at the image's size) each layer gives [K, C, C]: one Gram per region."""
    image = np.ascontiguousarray(image, np.float32)
    mask_key = None if mask is None else hashlib.sha1(np.ascontiguousarray(mask, np.float32).data).hexdigest()
    key = (network.arch, network.pooling, network.preprocessing, id(network.params), layers, image.shape,
           hashlib.sha1(image.data).hexdigest(), int(round(long_side)), mask_key)
    if key in _GRAM_CACHE:
        _GRAM_CACHE.move_to_end(key)
        return _GRAM_CACHE[key]
    h, w = scaled_size(image.shape[0], image.shape[1], max(MIN_SIDE, int(round(long_side))))
    if min(h, w) < MIN_SIDE:  # every style layer needs at least one position after 4 poolings
        grow = MIN_SIDE / min(h, w)
        h, w = max(MIN_SIDE, int(round(h * grow))), max(MIN_SIDE, int(round(w * grow)))
    masks = None
    if mask is not None:
        shapes = layer_shapes(network, layers, h, w)
        masks = {name: resize_masks(mask, *shapes[name]) for name in layers}
    grams = weighted_grams(network, layers, imaging.resize(image, h, w), masks)
    _GRAM_CACHE[key] = grams
    if len(_GRAM_CACHE) > _GRAM_CACHE_SIZE:
        _GRAM_CACHE.popitem(last=False)
    return grams


_SHAPES: dict[tuple, dict[str, tuple[int, int]]] = {}


def layer_shapes(network: Network, layers: tuple[str, ...], height: int, width: int) -> dict[str, tuple[int, int]]:
    """Spatial size of each layer's features for an input of height x width."""
    key = (network.arch, layers, height, width)
    if key not in _SHAPES:
        out = jax.eval_shape(lambda v, x: network.module.apply(v, x, layers), network.variables,
                             jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32))
        _SHAPES[key] = {k: (int(v.shape[1]), int(v.shape[2])) for k, v in out.items()}
    return _SHAPES[key]


def region_targets(network: Network, spec: LossSpec, styles: Sequence[np.ndarray], blend: np.ndarray,
                   long_side: int, regions: Regions) -> tuple[dict[str, jax.Array], np.ndarray]:
    """Per-region blended style Grams {layer: [K, C, C]} and the [K] presence of each region in the
    styles (a region's target averages only the styles that have it)."""
    presence = regions.style_presence() * np.asarray(blend)[:, None]          # [S, K]
    norm = presence.sum(0)
    total: dict[str, jax.Array] = {}
    for s, image in enumerate(styles):
        grams = _image_grams(network, tuple(spec.style_layers), image, long_side, regions.styles[s])
        coef = jnp.asarray(presence[s] / np.maximum(norm, 1e-12), jnp.float32)[:, None, None]
        for name in spec.style_layers:
            g = grams[name] * coef
            total[name] = total[name] + g if name in total else g
    return total, (norm > 0).astype(np.float32)


def style_grams(network: Network, spec: LossSpec, styles: Sequence[np.ndarray], blend: Sequence[float],
                long_side: int) -> dict[str, jax.Array]:
    """Blended target Gram matrices of the style images at a given long side."""
    total: dict[str, jax.Array] = {}
    for image, weight in zip(styles, blend):
        grams = _image_grams(network, tuple(spec.style_layers), image, long_side)
        for name in spec.style_layers:
            g = grams[name] * weight
            total[name] = total[name] + g if name in total else g
    return total


def content_features(network: Network, spec: LossSpec, frames: np.ndarray) -> dict[str, jax.Array]:
    fn = _features_fn(network, spec.content_layers)
    return dict(fn(network.variables, jnp.asarray(frames)))


def _initial(init: str | np.ndarray, contents: np.ndarray, styles: Sequence[np.ndarray], seed: int) -> np.ndarray:
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
    if init == "style":
        return np.broadcast_to(imaging.resize(styles[0], h, w), contents.shape).copy()
    image = imaging.read_image(init)
    return np.broadcast_to(imaging.resize(image, h, w), contents.shape).copy()


_precompute_matting = None


def _matting_stats(guides: np.ndarray):
    global _precompute_matting
    if _precompute_matting is None:
        from . import matting

        _precompute_matting = jax.jit(matting.precompute)
    return _precompute_matting(jnp.asarray(guides, jnp.float32))


def stylize_frames(contents: np.ndarray, styles: Sequence[np.ndarray], config: StyleConfig | None = None, *,
                   network: Network | None = None, init: str | np.ndarray | None = None,
                   temporal: Temporal | None = None, frame_styles: Sequence[Sequence[np.ndarray]] | None = None,
                   progress: bool | Callable[[int, dict], None] = False,
                   on_chunk: Callable[[int, int, dict, float], None] | None = None,
                   devices: Sequence[jax.Device] | None = None, regions: Regions | None = None,
                   style_long_side: Callable[[int, int], float] | None = None,
                   style_targets: dict[str, np.ndarray] | None = None,
                   loss_weights: np.ndarray | None = None, loss_norms: dict[str, dict[str, np.ndarray]] | None = None,
                   windows: tuple[int, int] | None = None) -> Result:
    """Stylize a batch of frames [N, H, W, 3] (float32 RGB in [0, 1]) at their own size.

    Each frame gets its own optimizer state; frames are sharded across ``devices`` (default: all)
    in batches of ``config.frames_per_device`` per device. ``init`` overrides ``config.init`` (an
    array gives per-frame initial images, e.g. warped previous frames). Returns the images and a
    metrics dict (losses initial / per scale / final, iterations, times, network, devices).
    ``on_chunk(scale_index, iterations, losses, seconds)`` is called between compiled chunks.
    ``frame_styles`` (style videos): for each frame a list of style images whose Gram matrices are
    averaged into that frame's style target (``styles`` is then only used for initialization).
    ``regions`` (semantic masks, see :mod:`jaxstyle.masks`) restricts style matching to regions.
    ``style_long_side(h, w)`` overrides the long side at which style statistics are taken at a
    scale (tiles take them at the whole canvas's scale). ``style_targets`` gives every frame's
    Gram targets directly ({layer: [N, C, C]}, single-scale runs only). ``loss_weights`` [N, H, W]
    weights positions in the content and style losses (tiles: their margins count less);
    ``loss_norms`` {"content": {layer: [N]}, "style": {layer: [N]}} then replaces each layer's
    ``rms(target)`` normalizer (tiles are normalized as their whole frame; single-scale runs).
    ``windows`` (window px, halo px): the feature losses of each frame are evaluated window by
    window (:mod:`jaxstyle.windowed`: the same loss and gradient, one window's memory).
    """
    cfg = (config or StyleConfig()).resolved()
    t_start = time.perf_counter()
    contents = np.asarray(contents, np.float32)
    if contents.ndim == 3:
        contents = contents[None]
    if not styles:
        raise UserError("at least one style image is needed")
    blend = np.asarray(cfg.style_weights if cfg.style_weights else [1.0] * len(styles), np.float64)
    if len(blend) != len(styles):
        raise UserError(f"{len(blend)} style weights given for {len(styles)} style images")
    if np.any(blend < 0) or blend.sum() <= 0:
        raise UserError("style weights must be non-negative and not all zero")
    blend = blend / blend.sum()
    network = network or load_network(cfg.network, pooling=cfg.pooling)
    if network.pooling != cfg.pooling:
        network = network.with_pooling(cfg.pooling)

    original_contents = contents
    styles = [np.asarray(s, np.float32) for s in styles]
    if cfg.preserve_colors == "luminance":
        reference = contents.reshape(-1, contents.shape[-2], 3)
        styles = [imaging.match_luminance(s, reference) for s in styles]
        contents = np.stack([imaging.luminance_image(c) for c in contents])
    elif cfg.preserve_colors == "histogram":
        reference = contents.reshape(-1, contents.shape[-2], 3)
        styles = [imaging.match_histogram(s, reference) for s in styles]

    if regions is not None:
        if frame_styles is not None:
            raise UserError("semantic masks cannot be combined with a style video")
        if regions.content.shape[0] != contents.shape[0] or len(regions.styles) != len(styles):
            raise ValueError("regions must have one content mask per frame and one mask per style image")
    spec = LossSpec(tuple(cfg.content_layers), tuple(cfg.style_layers), tuple(cfg.style_layer_weights), cfg.distance,
                    regions=regions.count if regions is not None else 0, photoreal=cfg.photoreal > 0,
                    loss_mask=loss_weights is not None and regions is None)
    n, height, width, _ = contents.shape
    if min(height, width) < MIN_SIDE:
        raise UserError(f"the frames are {width}x{height} px; both sides must be at least {MIN_SIDE} px (use a larger --size)")
    if cfg.tile_size and max(height, width) > cfg.tile_size:
        from .tiled import stylize_tiled

        result = stylize_tiled(contents, styles, dataclasses.replace(cfg, preserve_colors="none"), network=network,
                               init=init, temporal=temporal, frame_styles=frame_styles, regions=regions,
                               progress=progress, on_chunk=on_chunk, devices=devices)
        if cfg.preserve_colors == "luminance":
            result.images = np.stack([imaging.combine_luminance(o, c) for o, c in zip(result.images, original_contents)])
        result.metrics["config"] = dataclasses.asdict(cfg)
        result.metrics["wall_seconds"] = time.perf_counter() - t_start
        return result
    devices = list(devices or jax.devices())
    per_device = min(cfg.frames_per_device, -(-n // len(devices)))
    used = min(len(devices), -(-n // per_device))
    batch = per_device * used
    mesh = frame_mesh(batch, per_device, devices[:used])
    n_batches = -(-n // batch)
    scales = cfg.scales(height, width)
    weights = Weights(*(jnp.float32(v) for v in (cfg.content_weight, cfg.style_weight, cfg.tv_weight,
                                                  temporal.weight if temporal else 0.0, cfg.photoreal)))
    init_spec = init if init is not None else cfg.init
    images = None
    metrics: dict[str, Any] = {
        "network": network.describe(), "network_sha256": network.sha256, "devices": used, "frames_per_batch": batch,
        "device_kind": devices[0].device_kind if devices else "", "frames": n, "size": [height, width],
        "optimizer": cfg.optimizer, "preset": cfg.preset, "scales": [], "compile_seconds": 0.0,
        "config": dataclasses.asdict(cfg),
    }
    total_iters = sum(cfg.iterations if i == len(scales) - 1 else cfg.coarse_iterations for i in range(len(scales)))
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_iters * n_batches, unit="it", dynamic_ncols=True, leave=True, desc="stylizing")
    nonfinite = False
    iterations_done = 0
    for si, (h, w) in enumerate(scales):
        iters = cfg.iterations if si == len(scales) - 1 else cfg.coarse_iterations
        frames_s = imaging.resize(contents, h, w)
        if images is None:
            images = _initial(init_spec, frames_s, styles, cfg.seed)
        else:
            images = imaging.resize(images, h, w)
        long_side = style_long_side(h, w) if style_long_side else cfg.style_scale * max(h, w)
        if regions is not None:
            grams, present = region_targets(network, spec, styles, blend, long_side, regions)
            masks_s = resize_masks(regions.content, h, w)                      # [N, h, w, K]
            region_area = masks_s.mean((1, 2)) * present                        # [N, K]
            shapes = layer_shapes(network, tuple(spec.style_layers), h, w)
            layer_masks = {k: resize_masks(masks_s, *shapes[k]) for k in spec.style_layers}
        else:
            grams = style_grams(network, spec, styles, blend, long_side)
        if spec.photoreal:  # the matting Laplacian of the (colour) content frame at this scale
            guides = imaging.resize(original_contents, h, w)
        if spec.loss_mask:
            lw = resize_masks(np.asarray(loss_weights, np.float32)[..., None], h, w)
            mask_layers = tuple(dict.fromkeys(spec.content_layers + spec.style_layers))
            shapes_l = layer_shapes(network, mask_layers, h, w)
            loss_masks = {k: resize_masks(lw, *shapes_l[k])[..., 0] for k in mask_layers}

        def frame_grams(i: int) -> dict[str, jax.Array]:
            per_image = [_image_grams(network, tuple(spec.style_layers), image, long_side) for image in frame_styles[i]]
            return {k: sum(g[k] for g in per_image) / len(per_image) for k in spec.style_layers}
        if temporal is not None:
            t_targets = imaging.resize(temporal.targets, h, w)
            t_masks = imaging.resize(temporal.masks[..., None], h, w)[..., 0]
        else:
            t_targets = np.zeros((n, h, w, 3), np.float32)
            t_masks = np.zeros((n, h, w), np.float32)
        spec_s = spec
        if windows is not None:
            from . import windowed

            # one frame: its windows go frames_per_device at a time on every device (sharded);
            # several frames: the frames are sharded as usual, each frame's windows one at a time
            window_mesh, window_batch = None, (cfg.frames_per_device if n == 1 else 1)
            if n == 1 and len(devices) > 1:
                window_mesh = jax.make_mesh((len(devices),), ("windows",), devices=devices,
                                            axis_types=(jax.sharding.AxisType.Auto,))
                window_batch *= len(devices)
            spec_s = dataclasses.replace(spec, windows=windowed.plan(h, w, *windows), window_batch=window_batch,
                                         window_mesh=window_mesh)
        problem = Problem(network, spec_s, cfg.optimizer, cfg.learning_rate, weights)
        scale_out, scale_init, scale_final = [], {}, {}
        compile_s = run_s = 0.0
        for start in range(0, n, batch):
            sl = slice(start, min(n, start + batch))
            m = sl.stop - sl.start
            problem.mesh = mesh
            if windows is not None:
                content_t = {k: jnp.asarray(v) for k, v in
                             windowed.content_features(network, spec.content_layers, frames_s[sl], *windows).items()}
            else:
                content_t = content_features(network, spec, frames_s[sl])
            if style_targets is not None:
                style_t = {k: jnp.asarray(style_targets[k][sl]) for k in spec.style_layers}
            elif frame_styles is not None:
                per_frame = [frame_grams(i) for i in range(sl.start, sl.stop)]
                style_t = {k: jnp.stack([g[k] for g in per_frame]) for k in spec.style_layers}
            else:
                style_t = {k: jnp.broadcast_to(v, (m,) + v.shape) for k, v in grams.items()}
            targets = FrameTargets(
                content=content_t,
                style=style_t,
                temporal=jnp.asarray(t_targets[sl]), temporal_mask=jnp.asarray(t_masks[sl]),
                style_masks={k: jnp.asarray(v[sl]) for k, v in layer_masks.items()} if regions is not None else None,
                region_weights=jnp.asarray(region_area[sl]) if regions is not None else None,
                matting=_matting_stats(guides[sl]) if spec.photoreal else None,
                loss_masks={k: jnp.asarray(v[sl]) for k, v in loss_masks.items()} if spec.loss_mask else None,
                loss_norms=({t: {k: jnp.asarray(np.asarray(v, np.float32)[sl]) for k, v in d.items()}
                             for t, d in loss_norms.items()} if spec.loss_mask and loss_norms is not None else None),
            )
            x = images[sl]
            if m < batch:  # keep one shape per scale: pad the last batch
                pad = batch - m
                x = np.concatenate([x, np.repeat(x[-1:], pad, 0)])
                targets = jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], pad, 0)]), targets)

            def _progress(step, losses):
                if bar is not None:
                    bar.update(step)
                    bar.set_postfix(loss=f"{float(np.mean(losses['total'][:m])):.4g}", scale=f"{si + 1}/{len(scales)}")
                elif callable(progress):
                    progress(step, losses)

            cb = None
            if on_chunk is not None:
                cb = lambda done, losses, secs, _si=si: on_chunk(_si, done, losses, secs)  # noqa: E731
            res = run_scale(problem, x, targets, iters, chunk=cfg.chunk, progress=_progress, on_chunk=cb)
            scale_out.append(res.images[:m])
            for k, v in res.losses_initial.items():
                scale_init.setdefault(k, []).extend(v[:m].tolist())
            for k, v in res.losses_final.items():
                scale_final.setdefault(k, []).extend(v[:m].tolist())
            compile_s += res.compile_seconds
            run_s += res.run_seconds
            nonfinite |= res.nonfinite
            iterations_done = max(iterations_done, res.iterations)
            if nonfinite:
                scale_out.append(images[sl.stop:])
                break
        images = np.concatenate(scale_out)
        metrics["scales"].append({
            "size": [h, w], "iterations": iters, "initial": scale_init, "final": scale_final,
            "compile_seconds": compile_s, "run_seconds": run_s,
        })
        if windows is not None:
            metrics["scales"][-1]["windows"] = {
                "count": windowed.count(spec_s.windows), "at_once": spec_s.window_batch,
                "devices": 1 if spec_s.window_mesh is None else int(spec_s.window_mesh.devices.size)}
        metrics["compile_seconds"] += compile_s
        if nonfinite:
            break
    if bar is not None:
        bar.close()
    out = np.clip(images, 0.0, 1.0).astype(np.float32)
    if out.shape[1:3] != (height, width):
        out = imaging.resize(out, height, width)
    if cfg.preserve_colors == "luminance":
        out = np.stack([imaging.combine_luminance(o, c) for o, c in zip(out, original_contents)])
    metrics["initial"] = metrics["scales"][0]["initial"] if metrics["scales"] else {}
    metrics["final"] = metrics["scales"][-1]["final"] if metrics["scales"] else {}
    metrics["iterations"] = sum(s["iterations"] for s in metrics["scales"])
    metrics["wall_seconds"] = time.perf_counter() - t_start
    metrics["nonfinite"] = nonfinite
    result = Result(out, metrics)
    if nonfinite:
        err = NonFiniteLoss("the loss became NaN or infinite; kept the last finite image")
        err.result = result  # type: ignore[attr-defined]
        raise err
    return result


def target_size(height: int, width: int, size: int | None) -> tuple[int, int]:
    return (height, width) if size is None else scaled_size(height, width, size)


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
    result = stylize_frames(frames, style_imgs, cfg, network=network, progress=progress)
    return (result.images[0], result.metrics) if return_metrics else result.images[0]


def image_losses(image: np.ndarray, content: np.ndarray, styles: Sequence[np.ndarray], config: StyleConfig | None = None,
                 *, network: Network | None = None) -> dict[str, float]:
    """The whole-image loss terms of an output ``image`` (content, style, tv; at the image's size,
    style statistics at the matching scale), e.g. to compare tiled and untiled outputs."""
    cfg = (config or StyleConfig()).resolved()
    network = network or load_network(cfg.network, pooling=cfg.pooling)
    spec = LossSpec(tuple(cfg.content_layers), tuple(cfg.style_layers), tuple(cfg.style_layer_weights), cfg.distance)
    h, w = image.shape[:2]
    content = imaging.resize(np.asarray(content, np.float32), h, w)
    blend = np.asarray(cfg.style_weights if cfg.style_weights else [1.0] * len(styles), np.float64)
    grams = style_grams(network, spec, [np.asarray(s, np.float32) for s in styles], blend / blend.sum(),
                        cfg.style_scale * max(h, w))
    targets = FrameTargets(content={k: v[0] for k, v in content_features(network, spec, content[None]).items()},
                           style=grams, temporal=jnp.zeros((h, w, 3)), temporal_mask=jnp.zeros((h, w)))
    weights = Weights(*(jnp.float32(v) for v in (cfg.content_weight, cfg.style_weight, cfg.tv_weight, 0.0, 0.0)))
    key = (id(network.module), network.arch, network.pooling, network.preprocessing, spec)
    if key not in _LOSS_FNS:  # one compile per network layout, loss and image size
        from .optimize import loss_parts

        _LOSS_FNS[key] = jax.jit(lambda v, x, t, wt: loss_parts(network, spec, v, x, t, wt))
    parts = _LOSS_FNS[key](network.variables, jnp.asarray(image, jnp.float32), targets, weights)
    return {k: float(v) for k, v in parts.items()}


_LOSS_FNS: dict[tuple, Callable] = {}
