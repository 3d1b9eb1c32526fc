"""The normalized distances and statistics every feature term is built from (pure, jit-compatible).

Normalization (so the default weights work across image sizes and layers):

- ``gram(F)`` for features F of shape [H, W, C] is ``F^T F / (H W)``: a spatial average, so it does
  not grow with the image size.
- Each style layer compares the Gram matrices relative to the target's scale: the difference is
  divided by ``rms(A)``, the root mean square of the target Gram ``A``. Each content layer divides
  the feature difference by ``rms(P)``. With ``mse`` both then reduce to ``mean(d^2)``, which is
  about 1 for an unrelated image whatever the layer or the image size.
- Variants (``distance``): ``mse``, ``l1`` (mean |d|), ``huber`` (delta 1), ``smooth_l1`` (beta 0.1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

DISTANCES = ("mse", "l1", "huber", "smooth_l1")
HUBER_DELTA = 1.0
SMOOTH_L1_BETA = 0.1
_EPS = 1e-8


def gram(features: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Gram matrix of [H, W, C] (or [N, H, W, C], batched) features, averaged over positions; with a
    mask [H, W] (or [N, H, W]) positions are weighted and the average is over the weights."""
    *lead, h, w, c = features.shape
    flat = features.reshape(*lead, h * w, c)
    if mask is None:
        return jnp.einsum("...pi,...pj->...ij", flat, flat) / (h * w)
    weights = mask.reshape(*lead, h * w, 1)
    return jnp.einsum("...pi,...pj->...ij", flat * weights, flat) / jnp.maximum(weights.sum(-2, keepdims=True), 1e-6)


def region_grams(features: jax.Array, masks: jax.Array) -> jax.Array:
    """[K, C, C] Gram matrices of features [H, W, C] over soft regions [H, W, K]."""
    flat = features.reshape(-1, features.shape[-1])
    m = masks.reshape(-1, masks.shape[-1])
    return jnp.einsum("pk,pi,pj->kij", m, flat, flat) / jnp.maximum(m.sum(0), 1e-3)[:, None, None]


def rms(x: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.mean(x * x) + _EPS)


def elementwise(diff: jax.Array, kind: str) -> jax.Array:
    """The per-element distance of a (normalized) difference."""
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


def distance(diff: jax.Array, kind: str = "mse") -> jax.Array:
    """Mean distance of a (normalized) difference array."""
    return jnp.mean(elementwise(diff, kind))
