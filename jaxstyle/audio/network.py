"""The random feature networks of audio style transfer: fixed random 1-D convolutions over time
(frequency bins, or log-mel bands, as input channels), ReLU, fixed seed; and the variants that
choose what they see, their kernels and the statistics matched."""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .spectral import chroma_matrix, mel_matrix


@dataclasses.dataclass(frozen=True)
class Variant:
    """A feature network: what it sees, its kernels, and which statistics it matches."""

    input: str = "linear"            # "linear": log1p|STFT| bins; "mel": log1p of a mel projection
    n_mels: int = 128
    widths: tuple[int, ...] = (11,)  # kernel width (frames) of each random layer (parallel, not stacked)
    filters: int = 4096              # filters per layer
    stats: bool = False              # also match mean and covariance of the log-mel frames
    stats_weight: float = 1.0
    param: str = "free"              # "free": every bin; "mel-gain": a smooth per-frame gain per mel band on the content
    chroma_weight: float = 0.0       # content term on per-frame pitch-class profiles (relative to the content weight)
    spectrum_content: float = 0.0    # share of the content loss taken on log1p|STFT| itself (keeps fine structure)
    description: str = ""


VARIANTS: dict[str, Variant] = {
    "ulyanov": Variant("linear", widths=(11,), filters=4096,
                       description="baseline (Ulyanov & Lebedev): log1p|STFT| bins as channels, one random conv, "
                                   "width 11, 4096 filters, Gram loss"),
    "mel-multi": Variant("mel", n_mels=128, widths=(3, 11, 31), filters=1024,
                         description="three random convs (widths 3, 11, 31) on a 128-band log-mel projection"),
    "mel-stats": Variant("mel", n_mels=128, widths=(3, 11, 31), filters=1024, stats=True,
                         description="mel-multi plus the mean and covariance over time of the log-mel frames"),
    "mel-gain": Variant("mel", n_mels=40, widths=(3, 11, 31), filters=1024, stats=True, param="mel-gain",
                        chroma_weight=3.0,
                        description="40-band mel-stats where the variable is a gain per band and frame on the content "
                                    "(fine structure kept), plus a content term on per-frame pitch-class profiles"),
}
DEFAULT_VARIANT = "mel-gain"


class FeatureNet(NamedTuple):
    chroma: jax.Array              # [bins, 12]
    mel: jax.Array | None          # [bins, n_mels]
    kernels: tuple[jax.Array, ...]  # [K, Cin, C] per layer
    flipped: tuple[jax.Array, ...]  # [K, C, Cin]: kernels for the input gradient (see _conv_same)


def make_net(variant: Variant, sample_rate: int, n_fft: int, filters: int | None = None, seed: int = 0) -> FeatureNet:
    bins = n_fft // 2 + 1
    mel = jnp.asarray(mel_matrix(sample_rate, n_fft, variant.n_mels)) if variant.input == "mel" else None
    cin = variant.n_mels if mel is not None else bins
    c = int(filters or variant.filters)
    key = jax.random.PRNGKey(seed)
    kernels, flipped = [], []
    for i, k in enumerate(variant.widths):
        std = math.sqrt(2.0) * math.sqrt(2.0 / ((cin + c) * k))  # Ulyanov's initialization
        w = std * jax.random.normal(jax.random.fold_in(key, i), (k, cin, c), jnp.float32)
        kernels.append(w)
        flipped.append(jnp.transpose(w[::-1], (0, 2, 1)))
    return FeatureNet(jnp.asarray(chroma_matrix(sample_rate, n_fft)), mel, tuple(kernels), tuple(flipped))


def _conv(x, w):
    k = w.shape[0]
    return jax.lax.conv_general_dilated(x, w, (1,), [((k - 1) // 2, k // 2)], dimension_numbers=("NWC", "WIO", "NWC"))


@jax.custom_vjp
def _conv_same(x, w, wf):
    """'Same' 1-D convolution over time whose input gradient is itself a plain convolution.

    XLA:CPU otherwise folds the transposed convolution into a slow path inside while loops
    (the same workaround as the VGG network, see README). The kernels get no gradient.
    """
    return _conv(x, w)


def _conv_same_fwd(x, w, wf):
    return _conv(x, w), (w, wf)


def _conv_same_bwd(res, g):
    w, wf = res
    k = w.shape[0]
    # y[t] = sum_k x[t + k - p] w[k]  =>  dx[s] = sum_j g[s + j - (k - 1 - p)] w[k-1-j]^T
    dx = jax.lax.conv_general_dilated(g, wf, (1,), [(k // 2, (k - 1) // 2)], dimension_numbers=("NWC", "WIO", "NWC"))
    return dx, jnp.zeros_like(w), jnp.zeros_like(wf)


_conv_same.defvjp(_conv_same_fwd, _conv_same_bwd)


def net_input(net: FeatureNet, x: jax.Array) -> jax.Array:
    """Network input from the log-magnitude ``x`` ``[..., T, bins]``."""
    if net.mel is None:
        return x
    return jnp.log1p(jnp.expm1(jnp.maximum(x, 0.0)) @ net.mel)


def log_mel(net: FeatureNet, x: jax.Array, mel: jax.Array) -> jax.Array:
    return jnp.log1p(jnp.expm1(jnp.maximum(x, 0.0)) @ mel)


def features(net: FeatureNet, x: jax.Array) -> list[jax.Array]:
    """ReLU random-conv features ``[T, C]`` of each layer for one item ``x`` ``[T, bins]``."""
    inp = net_input(net, x)[None]
    return [jax.nn.relu(_conv_same(inp, w, wf))[0] for w, wf in zip(net.kernels, net.flipped)]
