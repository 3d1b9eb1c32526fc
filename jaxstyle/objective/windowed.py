"""Coupled tiles: the whole frame's feature losses (and their exact gradient), one window at a time.

A frame too large for one VGG pass is cut into blocks (multiples of 16 px, the network's coarsest
stride), each seen through a window with ``halo`` px of context on every side. The halo is at least
the receptive-field reach of the deepest layer beyond its own cell (:func:`halo_px`: 58 px for
relu5_1 of VGG16, 70 px for VGG19), so inside its block a window's features are exactly the whole
frame's; window starts are multiples of 16, so each window's feature grid is a slice of the frame's.
Only the block's positions count in a window (a mask per layer), so the blocks partition every
layer's positions: the frame's Gram matrices are sums of the windows' masked Gram sums, and its
content loss a sum of the windows' masked content sums.

:func:`feature_losses` scans over the windows, a batch at a time (one window by default; a single
frame's windows go ``frames_per_device`` per device, sharded over a ('windows',) mesh). The scan body
is rematerialized, so only one batch's activations are alive at a time: the backward pass recomputes
each batch's forward instead of storing all of them. It returns the content and style losses of
one pass over the whole frame, so its gradient is the untiled gradient: the tiles are coupled
through the frame's Gram, no seam can form (there is nothing to stitch), and tiled and untiled
runs optimize the same objective. The cost over an untiled step is one more forward per window plus the halos' overlap.

Windows have one shape per axis where possible (see :func:`_axis`); each shape is one ``lax.scan``.
"""

from __future__ import annotations

import math
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from . import losses
from .vgg import ARCHS

ALIGN = 16  # four 2x2 poolings: window starts on multiples of 16 keep every layer's grid aligned

# A window plan: ((window height, window width), ((y, x, block top, block bottom, block left,
# block right), ...)) per window shape; block bounds are in the window's pixel coordinates.
Plan = tuple[tuple[tuple[int, int], tuple[tuple[int, int, int, int, int, int], ...]], ...]


def layer_stride(name: str) -> int:
    """Pixels per position of a VGG tap (relu3_1 -> 4, pool3 -> 8)."""
    block = int(name[4] if name.startswith("pool") else name.split("_")[0][-1])
    return 2 ** (block if name.startswith("pool") else block - 1)


def halo_px(arch: str, layers) -> int:
    """Context (a multiple of 16 px) that makes a window's features exact inside its block: the
    receptive field of a position reaches past its own cell by the sum of the strides of the 3x3
    convolutions before it (the 2x2 poolings do not widen it beyond the cell)."""
    reach = 0
    for name in layers:
        block = int(name[4] if name.startswith("pool") else name.split("_")[0][-1])
        convs = len(ARCHS[arch][block - 1]) if name.startswith("pool") else int(name.split("_")[1])
        r = sum(len(ARCHS[arch][b]) * 2 ** b for b in range(block - 1)) + convs * 2 ** (block - 1)
        reach = max(reach, r)
    return int(math.ceil(reach / ALIGN) * ALIGN)


def min_window(arch: str, layers) -> int:
    """The smallest window (tile size) with a block of at least 16 px inside its halos."""
    return 2 * halo_px(arch, layers) + ALIGN


def _axis(length: int, window: int, halo: int) -> list[tuple[int, int, int, int]]:
    """(window start, window end, block start, block end) along an axis, in frame pixels.

    Preferably K windows of one size w <= ``window`` at starts k * b (b a multiple of 16), the last
    one ending at the frame's edge (so w = length - (K - 1) b); block k runs from its window's start
    + halo to the next window's start + halo (the first from 0, the last to the edge), which needs
    b <= w - 2 halo. The fewest windows that fit, with the largest step: one window shape per axis
    (one compiled scan) for about the work of windows trimmed at the edges. Without such a plan
    (a step under 16 px), windows of ``window`` px are trimmed at the frame's edges instead."""
    if length <= window:
        return [(0, length, 0, length)]
    for k in range(2, length // ALIGN + 2):
        b = (length - 2 * halo) // k // ALIGN * ALIGN
        if b < ALIGN:
            break
        w = length - (k - 1) * b
        if w <= window:
            starts = [i * b for i in range(k)]
            edges = [0] + [s + halo for s in starts[1:]] + [length]
            return [(s, s + w, edges[i], edges[i + 1]) for i, s in enumerate(starts)]
    block = max(ALIGN, (window - 2 * halo) // ALIGN * ALIGN)
    blocks = -(-length // block)
    block = -(-(-(-length // blocks)) // ALIGN) * ALIGN  # ceil(length / blocks) up to 16: as even as aligned
    out = []
    for b0 in range(0, length, block):
        b1 = min(length, b0 + block)
        out.append((max(0, b0 - halo), min(length, b1 + halo), b0, b1))
    return out


def plan(height: int, width: int, window: int, halo: int) -> Plan:
    """The windows of a height x width frame (grouped by shape), for windows of at most ``window``
    px with ``halo`` px of context."""
    groups: dict[tuple[int, int], list] = {}
    for ys, ye, by0, by1 in _axis(height, window, halo):
        for xs, xe, bx0, bx1 in _axis(width, window, halo):
            groups.setdefault((ye - ys, xe - xs), []).append((ys, xs, by0 - ys, by1 - ys, bx0 - xs, bx1 - xs))
    return tuple((shape, tuple(wins)) for shape, wins in sorted(groups.items()))


def count(windows: Plan) -> int:
    return sum(len(w) for _, w in windows)


def _block_mask(lh: int, lw: int, stride: int, bounds) -> jax.Array:
    """[lh, lw] 1 at the layer positions whose cell starts inside the block."""
    r0, r1, c0, c1 = bounds
    rows = jnp.arange(lh) * stride
    cols = jnp.arange(lw) * stride
    mr = (rows >= r0) & (rows < r1)
    mc = (cols >= c0) & (cols < c1)
    return (mr[:, None] & mc[None, :]).astype(jnp.float32)


def _sums(apply, windows: Plan, image: jax.Array, content_layers, style_layers, content_targets,
          content_scales, style_masks, kind: str, batch: int = 1, mesh=None):
    """Scan the windows ``batch`` at a time (the batch sharded over ``mesh``'s 'windows' axis):
    ({layer: masked Gram sum [C, C] or [K, C, C]}, {layer: region weight sums [K]} (with masks),
    {layer: masked content distance sum})."""
    layers = tuple(dict.fromkeys(tuple(content_layers) + tuple(style_layers)))
    total = None
    for (wh, ww), wins in windows:

        def part(win, wh=wh, ww=ww):  # win: [batch, 6] int32
            ys, xs = win[:, 0], win[:, 1]
            x = jax.vmap(lambda y, x0: jax.lax.dynamic_slice(image, (y, x0, 0), (wh, ww, image.shape[-1])))(ys, xs)
            if mesh is not None:
                x = jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P("windows")))
            feats = apply(x, layers)
            grams, weights, content = {}, {}, {}
            for name in layers:
                f = feats[name]
                b, lh, lw, c = f.shape
                st = layer_stride(name)
                m = jax.vmap(lambda w: _block_mask(lh, lw, st, (w[2], w[3], w[4], w[5])))(win)  # [b, lh, lw]
                if name in style_layers:
                    flat = f.reshape(b, -1, c)
                    if style_masks is None:
                        grams[name] = jnp.einsum("bpi,bpj->ij", flat * m.reshape(b, -1, 1), flat)
                    else:
                        k = style_masks[name].shape[-1]
                        w = jax.vmap(lambda y, x0: jax.lax.dynamic_slice(style_masks[name], (y // st, x0 // st, 0),
                                                                         (lh, lw, k)))(ys, xs)
                        w = (w * m[..., None]).reshape(b, -1, k)
                        grams[name] = jnp.einsum("bpk,bpi,bpj->kij", w, flat, flat)
                        weights[name] = w.sum((0, 1))
                if name in content_layers:
                    p = jax.vmap(lambda y, x0: jax.lax.dynamic_slice(content_targets[name], (y // st, x0 // st, 0),
                                                                     (lh, lw, c)))(ys, xs)
                    per_pos = losses._elementwise((f - p) / content_scales[name], kind)
                    content[name] = jnp.sum(m[..., None] * per_pos)
            return grams, weights, content

        wins = list(wins)
        wins += [(0, 0, 0, 0, 0, 0)] * (-len(wins) % batch)  # empty blocks: they add nothing
        arr = jnp.asarray(np.asarray(wins, np.int32).reshape(-1, batch, 6))
        init = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(part, arr[0]))
        # rematerialized body: the backward pass recomputes one batch of windows at a time
        step = jax.checkpoint(lambda carry, win: (jax.tree.map(jnp.add, carry, part(win)), None))
        sums, _ = jax.lax.scan(step, init, arr)
        total = sums if total is None else jax.tree.map(jnp.add, total, sums)
    return total


def feature_losses(apply, windows: Plan, image: jax.Array, spec, targets, layer_sizes: Mapping[str, int],
                   content_norms=None, style_norms=None) -> tuple[jax.Array, jax.Array]:
    """(content loss, style loss) of ONE frame [H, W, 3], equal to one pass over the whole frame.

    ``apply(x, layers)`` is the network; ``targets`` a :class:`jaxstyle.optimize.FrameTargets`
    without the frame axis whose content features cover the whole frame; ``layer_sizes`` the
    number of positions of each layer in the whole frame; ``content_norms`` / ``style_norms``
    optional per-layer normalizers replacing ``rms(target)``."""
    content_layers, style_layers = tuple(spec.content_layers), tuple(spec.style_layers)
    scales = {k: (losses.rms(targets.content[k]) if content_norms is None else content_norms[k]) for k in content_layers}
    style_masks = targets.style_masks if spec.regions else None
    grams, weights, content_sums = _sums(apply, windows, image, content_layers, style_layers, targets.content,
                                         scales, style_masks, spec.distance, spec.window_batch, spec.window_mesh)
    content = jnp.float32(0.0)
    for k in content_layers:
        content = content + content_sums[k] / (layer_sizes[k] * targets.content[k].shape[-1])
    if spec.regions:
        region = {k: grams[k] / jnp.maximum(weights[k], 1e-3)[:, None, None] for k in style_layers}
        style = losses.region_style_loss(region, targets.style, targets.region_weights, style_layers,
                                         spec.style_layer_weights, spec.distance)
    else:
        frame = {k: grams[k] / layer_sizes[k] for k in style_layers}
        style = losses.gram_style_loss(frame, targets.style, style_layers, spec.style_layer_weights, spec.distance,
                                       style_norms)
    return content, style


def content_features(network, layers, frames: np.ndarray, window: int, halo: int) -> dict[str, np.ndarray]:
    """Whole-frame features {layer: [N, H_l, W_l, C]} of frames [N, H, W, 3] computed window by
    window (exact, as :func:`feature_losses`), so a 4K frame's features need one window's memory."""
    from .stylize import _features_fn, layer_shapes

    layers = tuple(layers)
    n, height, width, _ = frames.shape
    shapes = layer_shapes(network, layers, height, width)
    fn = _features_fn(network, layers)
    out = {}
    for (wh, ww), wins in plan(height, width, window, halo):
        for ys, xs, r0, r1, c0, c1 in wins:
            feats = fn(network.variables, jnp.asarray(frames[:, ys:ys + wh, xs:xs + ww]))
            for k in layers:
                f = np.asarray(feats[k])
                st = layer_stride(k)
                if k not in out:
                    out[k] = np.zeros((n, *shapes[k], f.shape[-1]), np.float32)
                a0, a1 = -(-r0 // st), -(-r1 // st)
                b0, b1 = -(-c0 // st), -(-c1 // st)
                a1, b1 = min(a1, f.shape[1]), min(b1, f.shape[2])
                out[k][:, ys // st + a0: ys // st + a1, xs // st + b0: xs // st + b1] = f[:, a0:a1, b0:b1]
    return out
