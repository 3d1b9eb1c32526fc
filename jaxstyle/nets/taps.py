"""Feature taps of a :class:`~jaxstyle.nets.vgg.Network` and the statistics taken from them: layer
shapes, batched features, and Gram matrices of (style) images of any size.

The compiled functions and the style statistics are cached here, keyed by the network's layout
(its flax module, which compares by arch, pooling and preprocessing) and, for statistics, by its
weights (:attr:`Network.weights_id`). :func:`clear_caches` empties them all.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..imaging import resize, resize_masks, scaled_size
from .vgg import MIN_SIDE, Network

# Images with more than GRAM_WINDOW**2 pixels have their Gram matrices summed over blocks of
# GRAM_BLOCK px, each seen through a window with GRAM_HALO px of context on every side (at least the
# receptive-field radius of the deepest style layer: 66 px for relu5_1 of VGG16, 126 px for relu5_4
# of VGG19), so the sums are exact while memory stays that of one window. Block and halo are
# multiples of 16 (four poolings), so the windows' feature grids align with the whole image's.
GRAM_BLOCK = 768
GRAM_HALO = 128
GRAM_WINDOW = GRAM_BLOCK + 2 * GRAM_HALO
STYLE_GRAMS_CACHED = 512  # style images x long sides kept (video steps ask for the same ones again)

_FEATURE_FNS: dict[tuple, Callable] = {}
_GRAM_SUM_FNS: dict[tuple, Callable] = {}
_SHAPES: dict[tuple, dict[str, tuple[int, int]]] = {}
_STYLE_GRAMS: "OrderedDict[tuple, dict[str, jax.Array]]" = OrderedDict()


def clear_caches() -> None:
    """Forget every compiled feature function, layer shape and cached style statistic."""
    for cache in (_FEATURE_FNS, _GRAM_SUM_FNS, _SHAPES, _STYLE_GRAMS):
        cache.clear()


def features_fn(network: Network, layers: tuple[str, ...]) -> Callable:
    """jit: (variables, images [N, H, W, 3]) -> {layer: [N, h, w, C]}, one compile per layout and shape."""
    key = (network.module, layers)
    if key not in _FEATURE_FNS:
        module = network.module
        _FEATURE_FNS[key] = jax.jit(lambda variables, x: module.apply(variables, x, layers))
    return _FEATURE_FNS[key]


def features(network: Network, layers, frames: np.ndarray) -> dict[str, jax.Array]:
    """Features {layer: [N, h, w, C]} of frames [N, H, W, 3]."""
    fn = features_fn(network, tuple(layers))
    return dict(fn(network.variables, jnp.asarray(frames)))


def layer_shapes(network: Network, layers: tuple[str, ...], height: int, width: int) -> dict[str, tuple[int, int]]:
    """Spatial size of each layer's features for an input of height x width."""
    key = (network.arch, layers, height, width)
    if key not in _SHAPES:
        out = jax.eval_shape(lambda v, x: network.module.apply(v, x, layers), network.variables,
                             jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32))
        _SHAPES[key] = {k: (int(v.shape[1]), int(v.shape[2])) for k, v in out.items()}
    return _SHAPES[key]


def _gram_sums_fn(network: Network, layers: tuple[str, ...]) -> Callable:
    """jit: (variables, x [1, h, w, 3], weights {layer: [h_l, w_l, K]}) ->
    {layer: (sum_p w_pk f_p f_p^T [K, C, C], sum_p w_pk [K])}. Only the sums leave the program."""
    key = (network.module, layers)
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
    normalized by its weight sum (as :func:`jaxstyle.objective.distances.region_grams`). Images
    larger than ``GRAM_WINDOW**2`` px are summed block by block (exact, see ``GRAM_HALO``), so
    memory does not grow with the image: a 4K frame's style image at the frame's scale is ~12 Mpx."""
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


def style_image_size(height: int, width: int, long_side: float) -> tuple[int, int]:
    """The size a style image of height x width is resized to for statistics at ``long_side``
    (every style layer needs at least one position after four poolings)."""
    h, w = scaled_size(height, width, max(MIN_SIDE, int(round(long_side))))
    if min(h, w) < MIN_SIDE:
        grow = MIN_SIDE / min(h, w)
        h, w = max(MIN_SIDE, int(round(h * grow))), max(MIN_SIDE, int(round(w * grow)))
    return h, w


def image_grams(network: Network, layers: tuple[str, ...], image: np.ndarray, long_side: float,
                mask: np.ndarray | None = None) -> dict[str, jax.Array]:
    """Gram matrices of one style image at a long side, cached by the image's bytes (video steps and
    style-video windows ask for the same ones again and again). With a region ``mask`` [h, w, K]
    (one-hot, at the image's size) each layer gives [K, C, C]: one Gram per region."""
    image = np.ascontiguousarray(image, np.float32)
    mask_key = None if mask is None else hashlib.sha1(np.ascontiguousarray(mask, np.float32).data).hexdigest()
    key = (network.module, network.weights_id, layers, image.shape, hashlib.sha1(image.data).hexdigest(),
           int(round(long_side)), mask_key)
    if key in _STYLE_GRAMS:
        _STYLE_GRAMS.move_to_end(key)
        return _STYLE_GRAMS[key]
    h, w = style_image_size(image.shape[0], image.shape[1], long_side)
    masks = None
    if mask is not None:
        shapes = layer_shapes(network, layers, h, w)
        masks = {name: resize_masks(mask, *shapes[name]) for name in layers}
    grams = weighted_grams(network, layers, resize(image, h, w), masks)
    _STYLE_GRAMS[key] = grams
    if len(_STYLE_GRAMS) > STYLE_GRAMS_CACHED:
        _STYLE_GRAMS.popitem(last=False)
    return grams
