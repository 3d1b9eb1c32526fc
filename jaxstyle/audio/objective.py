"""The audio objective: style statistics (time-averaged Grams of the random features, log-mel mean
and covariance) summed over frames so chunks add up, and the loss of one chunk."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .network import FeatureNet, features, log_mel


class StyleStats(NamedTuple):
    """Sums over frames (so chunks add up); divide by ``count`` for the time averages."""

    grams: tuple[jax.Array, ...]  # sum_t f_t f_t^T per layer
    mel_sum: jax.Array            # sum_t m_t (log-mel frame)
    mel_outer: jax.Array          # sum_t m_t m_t^T
    count: jax.Array              # number of frames


def frame_stats(net: FeatureNet, mel: jax.Array, x: jax.Array, mask: jax.Array) -> StyleStats:
    feats = features(net, x)
    grams = tuple((f * mask[:, None]).T @ f for f in feats)
    m = log_mel(net, x, mel)
    return StyleStats(grams, (m * mask[:, None]).sum(0), (m * mask[:, None]).T @ m, mask.sum())


def averages(s: StyleStats):
    n = jnp.maximum(s.count, 1.0)
    grams = tuple(g / n for g in s.grams)
    mean = s.mel_sum / n
    cov = s.mel_outer / n - jnp.outer(mean, mean)
    return grams, mean, cov


class Weights(NamedTuple):
    content: jax.Array
    style: jax.Array
    stats: jax.Array


def loss_parts(net: FeatureNet, mel: jax.Array, x: jax.Array, mask: jax.Array, content, style, weights: Weights,
               use_stats: bool, spectrum_content: float = 0.0, chroma_weight: float = 0.0):
    """Relative style Gram error, per-frame content error and (optionally) log-mel statistics error."""
    content_feats, content_x = content
    feats = features(net, x)
    n = jnp.maximum(mask.sum(), 1.0)
    s_grams, s_mean, s_cov = style
    style_loss = 0.0
    content_loss = 0.0
    for f, fc, gs in zip(feats, content_feats, s_grams):
        g = (f * mask[:, None]).T @ f / n
        style_loss += jnp.sum((g - gs) ** 2) / jnp.maximum(jnp.sum(gs ** 2), 1e-12)
        per_frame = jnp.sum((f - fc) ** 2, axis=1) * mask
        scale = jnp.sum(jnp.sum(fc ** 2, axis=1) * mask) / n
        content_loss += jnp.sum(per_frame) / n / jnp.maximum(scale, 1e-12)
    style_loss /= len(feats)
    content_loss /= len(feats)
    if chroma_weight:
        def profile(v):
            c = jnp.expm1(jnp.maximum(v, 0.0)) @ net.chroma
            return c / jnp.sqrt(jnp.sum(c ** 2, axis=1, keepdims=True) + 1e-6)

        chroma_loss = jnp.sum(jnp.sum((profile(x) - profile(content_x)) ** 2, axis=1) * mask) / n
        content_loss = content_loss + chroma_weight * chroma_loss
    if spectrum_content:
        per_frame = jnp.sum((x - content_x) ** 2, axis=1) * mask
        scale = jnp.sum(jnp.sum(content_x ** 2, axis=1) * mask) / n
        spec = jnp.sum(per_frame) / n / jnp.maximum(scale, 1e-12)
        content_loss = (1.0 - spectrum_content) * content_loss + spectrum_content * spec
    stats_loss = jnp.zeros(())
    if use_stats:
        m = log_mel(net, x, mel)
        mean = (m * mask[:, None]).sum(0) / n
        cov = (m * mask[:, None]).T @ m / n - jnp.outer(mean, mean)
        # both relative to the style's uncentred second moment (a stationary style's covariance can be tiny)
        second = jnp.sum((s_cov + jnp.outer(s_mean, s_mean)) ** 2)
        stats_loss = (jnp.sum((mean - s_mean) ** 2) / jnp.maximum(jnp.sum(s_mean ** 2), 1e-12)
                      + jnp.sum((cov - s_cov) ** 2) / jnp.maximum(second, 1e-12))
    total = weights.style * style_loss + weights.content * content_loss + weights.stats * stats_loss
    return total, (style_loss, content_loss, stats_loss)
