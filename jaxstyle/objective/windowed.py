"""Coupled tiles: the whole frame's feature losses (and their exact gradient), one window at a time.

A frame too large for one VGG pass is cut into blocks (multiples of 16 px, the network's coarsest
stride), each seen through a window with ``halo`` px of context on every side. The halo is at least
the receptive-field reach of the deepest layer beyond its own cell (:func:`jaxstyle.nets.vgg.halo_px`: 58 px for
relu5_1 of VGG16, 70 px for VGG19), so inside its block a window's features are exactly the whole
frame's; window starts are multiples of 16, so each window's feature grid is a slice of the frame's.
Only the block's positions count in a window (a mask per layer), so the blocks partition every
layer's positions: the frame's Gram matrices are sums of the windows' masked Gram sums, and its
content loss a sum of the windows' masked content sums.

:func:`feature_parts` scans over the windows, a batch at a time (one window by default; a single
frame's windows go ``frames_per_device`` per device, sharded over a ('windows',) mesh). The scan body
is rematerialized, so only one batch's activations are alive at a time: the backward pass recomputes
each batch's forward instead of storing all of them. Each feature term of the objective adds its
own sums over the windows (the window protocol of :class:`jaxstyle.objective.term.Term`) and turns
them into its loss, so the result is the loss of one pass over the whole frame, so its gradient is the untiled gradient: the tiles are coupled
through the frame's Gram, no seam can form (there is nothing to stitch), and tiled and untiled
runs optimize the same objective. The cost over an untiled step is one more forward per window plus the halos' overlap.

Windows have one shape per axis where possible (see :func:`_axis`); each shape is one ``lax.scan``.
"""


from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from ..nets import taps
from ..nets.vgg import ALIGN, Network, layer_stride

# A window plan: ((window height, window width), ((y, x, block top, block bottom, block left,
# block right), ...)) per window shape; block bounds are in the window's pixel coordinates.
Plan = tuple[tuple[tuple[int, int], tuple[tuple[int, int, int, int, int, int], ...]], ...]


@dataclass(frozen=True)
class Windows:
    """How a frame's feature terms are evaluated: window by window along ``plan``, ``batch`` windows
    at once (vmapped), sharded over ``mesh``'s 'windows' axis when given. Static (hashable): part of
    the compiled program's key."""

    plan: Plan
    batch: int = 1
    mesh: Any = None

    @property
    def count(self) -> int:
        return count(self.plan)

    @property
    def devices(self) -> int:
        return 1 if self.mesh is None else int(self.mesh.devices.size)


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


def feature_parts(terms: Sequence, apply: Callable, windows: Windows, image: jax.Array, targets: Mapping[str, Any],
                  layer_sizes: Mapping[str, int]) -> dict[str, jax.Array]:
    """{term name: loss} of the feature ``terms`` for ONE frame [H, W, 3], equal to one pass over the
    whole frame. ``apply(x, layers)`` is the network, ``targets`` the terms' targets without the
    frame axis, ``layer_sizes`` the number of positions of each layer in the whole frame."""
    layers = tuple(dict.fromkeys(name for term in terms for name in term.layers))
    setups = {term.name: term.window_setup(targets[term.name]) for term in terms}
    total = None
    for (wh, ww), wins in windows.plan:

        def part(win, wh=wh, ww=ww):  # win: [batch, 6] int32
            ys, xs = win[:, 0], win[:, 1]
            x = jax.vmap(lambda y, x0: jax.lax.dynamic_slice(image, (y, x0, 0), (wh, ww, image.shape[-1])))(ys, xs)
            if windows.mesh is not None:
                x = jax.lax.with_sharding_constraint(x, NamedSharding(windows.mesh, P("windows")))
            feats = apply(x, layers)
            masks = {}
            for name in layers:
                _, lh, lw, _ = feats[name].shape
                st = layer_stride(name)
                masks[name] = jax.vmap(lambda w: _block_mask(lh, lw, st, (w[2], w[3], w[4], w[5])))(win)  # [b, lh, lw]
            return {term.name: term.window_sums(feats, masks, targets[term.name], setups[term.name], ys, xs)
                    for term in terms}

        wins = list(wins)
        wins += [(0, 0, 0, 0, 0, 0)] * (-len(wins) % windows.batch)  # empty blocks: they add nothing
        arr = jnp.asarray(np.asarray(wins, np.int32).reshape(-1, windows.batch, 6))
        init = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(part, arr[0]))
        # rematerialized body: the backward pass recomputes one batch of windows at a time
        step = jax.checkpoint(lambda carry, win: (jax.tree.map(jnp.add, carry, part(win)), None))
        sums, _ = jax.lax.scan(step, init, arr)
        total = sums if total is None else jax.tree.map(jnp.add, total, sums)
    return {term.name: term.from_sums(total[term.name], targets[term.name], setups[term.name], layer_sizes)
            for term in terms}


def content_features(network: Network, layers, frames: np.ndarray, window: int, halo: int) -> dict[str, np.ndarray]:
    """Whole-frame features {layer: [N, H_l, W_l, C]} of frames [N, H, W, 3] computed window by
    window (exact, as :func:`feature_parts`), so a 4K frame's features need one window's memory."""
    layers = tuple(layers)
    n, height, width, _ = frames.shape
    shapes = taps.layer_shapes(network, layers, height, width)
    fn = taps.features_fn(network, layers)
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
