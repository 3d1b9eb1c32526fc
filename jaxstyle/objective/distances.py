"""Pure loss functions of Gatys-style transfer (all jit-compatible, per image).

Normalization (so the default weights work across image sizes and layers):

- ``gram(F)`` for features F of shape [H, W, C] is ``F^T F / (H W)``: a spatial average, so it does
  not grow with the image size.
- Each style layer compares the Gram matrices relative to the target's scale: the difference is
  divided by ``rms(A)``, the root mean square of the target Gram ``A``. Each content layer divides
  the feature difference by ``rms(P)``. With ``mse`` both then reduce to
  ``mean(d^2)``, which is about 1 for an unrelated image whatever the layer or the image size.
- Variants (``distance``): ``mse``, ``l1`` (mean |d|), ``huber`` (delta 1), ``smooth_l1`` (beta 0.1).
- Total variation: the mean squared difference of neighbouring pixels (in [0, 1] units).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp

DISTANCES = ("mse", "l1", "huber", "smooth_l1")
HUBER_DELTA = 1.0
SMOOTH_L1_BETA = 0.1
_EPS = 1e-8


def gram(features: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Gram matrix of [H, W, C] (or [N, H, W, C], batched) features, averaged over positions."""
    *lead, h, w, c = features.shape
    flat = features.reshape(*lead, h * w, c)
    if mask is None:
        return jnp.einsum("...pi,...pj->...ij", flat, flat) / (h * w)
    weights = mask.reshape(*lead, h * w, 1)
    return jnp.einsum("...pi,...pj->...ij", flat * weights, flat) / jnp.maximum(weights.sum(-2, keepdims=True), 1e-6)


def distance(diff: jax.Array, kind: str = "mse") -> jax.Array:
    """Mean distance of a (normalized) difference array."""
    return jnp.mean(_elementwise(diff, kind))


def rms(x: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.mean(x * x) + _EPS)


def content_loss(features: Mapping[str, jax.Array], targets: Mapping[str, jax.Array],
                 layers: Sequence[str], kind: str = "mse") -> jax.Array:
    """Sum over content layers of the normalized distance between features and targets."""
    total = jnp.float32(0.0)
    for name in layers:
        target = targets[name]
        total = total + distance((features[name] - target) / rms(target), kind)
    return total


def masked_content_loss(features: Mapping[str, jax.Array], targets: Mapping[str, jax.Array],
                        masks: Mapping[str, jax.Array], layers: Sequence[str], kind: str = "mse",
                        norms: Mapping[str, jax.Array] | None = None) -> jax.Array:
    """Content loss with positions weighted by ``masks[name]`` [H_l, W_l] (a weighted mean). ``norms``
    replaces ``rms(target)`` per layer (tiles are normalized as their whole frame)."""
    total = jnp.float32(0.0)
    for name in layers:
        target, m = targets[name], masks[name][..., None]
        d = (features[name] - target) / (rms(target) if norms is None else norms[name])
        per_pos = _elementwise(d, kind)
        total = total + jnp.sum(m * per_pos) / (jnp.maximum(jnp.sum(m), 1e-6) * d.shape[-1])
    return total


def _elementwise(diff: jax.Array, kind: str) -> jax.Array:
    if kind == "mse":
        return diff * diff
    if kind == "l1":
        return jnp.abs(diff)
    a = jnp.abs(diff)
    if kind == "huber":
        return jnp.where(a <= HUBER_DELTA, 0.5 * diff * diff, HUBER_DELTA * (a - 0.5 * HUBER_DELTA))
    if kind == "smooth_l1":
        return jnp.where(a < SMOOTH_L1_BETA, 0.5 * diff * diff / SMOOTH_L1_BETA, a - 0.5 * SMOOTH_L1_BETA)
    raise ValueError(f"unknown distance {kind!r}; choose one of {DISTANCES}")


def masked_gram_style_loss(features: Mapping[str, jax.Array], target_grams: Mapping[str, jax.Array],
                           masks: Mapping[str, jax.Array], layers: Sequence[str], layer_weights: Sequence[float],
                           kind: str = "mse", norms: Mapping[str, jax.Array] | None = None) -> jax.Array:
    """Style loss whose Gram matrices weight positions by ``masks[name]`` [H_l, W_l]; ``norms``
    replaces ``rms(target)`` per layer."""
    total = jnp.float32(0.0)
    for name, weight in zip(layers, layer_weights):
        target = target_grams[name]
        scale = rms(target) if norms is None else norms[name]
        total = total + weight * distance((gram(features[name], masks[name]) - target) / scale, kind)
    return total


def style_loss(features: Mapping[str, jax.Array], target_grams: Mapping[str, jax.Array],
               layers: Sequence[str], layer_weights: Sequence[float], kind: str = "mse") -> jax.Array:
    """Weighted sum over style layers of the normalized distance between Gram matrices."""
    return gram_style_loss({name: gram(features[name]) for name in layers}, target_grams, layers, layer_weights, kind)


def gram_style_loss(grams: Mapping[str, jax.Array], target_grams: Mapping[str, jax.Array], layers: Sequence[str],
                    layer_weights: Sequence[float], kind: str = "mse",
                    norms: Mapping[str, jax.Array] | None = None) -> jax.Array:
    """:func:`style_loss` from the output's Gram matrices; ``norms`` replaces ``rms(target)``."""
    total = jnp.float32(0.0)
    for name, weight in zip(layers, layer_weights):
        target = target_grams[name]
        scale = rms(target) if norms is None else norms[name]
        total = total + weight * distance((grams[name] - target) / scale, kind)
    return total


def region_grams(features: jax.Array, masks: jax.Array) -> jax.Array:
    """[K, C, C] Gram matrices of features [H, W, C] over soft regions [H, W, K]."""
    flat = features.reshape(-1, features.shape[-1])
    m = masks.reshape(-1, masks.shape[-1])
    return jnp.einsum("pk,pi,pj->kij", m, flat, flat) / jnp.maximum(m.sum(0), 1e-3)[:, None, None]


def masked_style_loss(features: Mapping[str, jax.Array], target_grams: Mapping[str, jax.Array],
                      masks: Mapping[str, jax.Array], region_weights: jax.Array, layers: Sequence[str],
                      layer_weights: Sequence[float], kind: str = "mse") -> jax.Array:
    """Style loss restricted to regions (semantic masks).

    For each layer, ``masks[name]`` is [H_l, W_l, K] (soft region masks of the output at the layer's
    resolution) and ``target_grams[name]`` is [K, C, C] (the style image's Gram over its own region k).
    Region k's Gram of the output is compared with region k's target; the regions are summed with
    ``region_weights`` [K] (the content area of each region, 0 where the style has no such region).
    """
    return region_style_loss({name: region_grams(features[name], masks[name]) for name in layers}, target_grams,
                             region_weights, layers, layer_weights, kind)


def region_style_loss(grams: Mapping[str, jax.Array], target_grams: Mapping[str, jax.Array], region_weights: jax.Array,
                      layers: Sequence[str], layer_weights: Sequence[float], kind: str = "mse") -> jax.Array:
    """:func:`masked_style_loss` from the output's region Gram matrices {layer: [K, C, C]}."""
    total = jnp.float32(0.0)
    for name, weight in zip(layers, layer_weights):
        per_region = jax.vmap(lambda g, t: distance((g - t) / rms(t), kind))(grams[name], target_grams[name])
        total = total + weight * jnp.sum(region_weights * per_region)
    return total


def tv_loss(image: jax.Array) -> jax.Array:
    """Mean squared difference of vertically and horizontally neighbouring pixels ([H, W, C])."""
    dy = image[1:, :, :] - image[:-1, :, :]
    dx = image[:, 1:, :] - image[:, :-1, :]
    return jnp.mean(dy * dy) + jnp.mean(dx * dx)


def range_loss(image: jax.Array) -> jax.Array:
    """Penalty for pixels outside [0, 1]; keeps unconstrained optimizers near the valid range."""
    over = jnp.maximum(image - 1.0, 0.0) + jnp.maximum(-image, 0.0)
    return jnp.mean(over * over)
