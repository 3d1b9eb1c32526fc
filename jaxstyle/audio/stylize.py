"""Audio style transfer on spectrograms (Ulyanov-style random networks, improved), in JAX.

Pipeline (:func:`stylize_audio`, arrays in and out; file I/O lives in :mod:`jaxstyle.audio_io`):

1. **Level**: content and style are scaled to a reference RMS (0.1) before analysis, so the
   log-magnitude features do not depend on the recording level; the output is scaled back to the
   content's level at the end and peak-limited (one global gain, never above 0.98 full scale).
2. **STFT**: periodic Hann window, ``n_fft`` 2048 and hop 512 at 22.05 kHz, scaled with the sample
   rate (``n_fft`` the nearest power of two, hop ``n_fft/4``), centred frames; the optimization
   variable is ``x = log1p|STFT|`` ``[frames, bins]``.
3. **Features**: fixed random 1-D convolutions over time (frequency bins, or log-mel bands, as
   input channels), ReLU, fixed seed. The loss is the style Gram error (Gram = time average, so a
   style clip of any length works) relative to the style Gram's norm, plus a per-frame content
   error on the same features relative to the content features' norm; the ``mel-stats`` variant
   adds the mean and covariance over time of the log-mel spectrum.
4. **Optimizer**: L-BFGS (:class:`jaxstyle.lbfgs.BatchedLBFGS`: optax's L-BFGS direction with a
   per-item strong-Wolfe line search) in ``lax.fori_loop`` inside ``jit``. Items are chunks x
   channels on a batch axis.
5. **Chunks**: long audio is cut into fixed-length chunks (``chunk_seconds``; the last one padded
   and masked) that overlap by at least the widest kernel, so every length compiles once
   and memory is bounded. All chunks share one global style target. The optimized chunks are
   cross-faded (linear ramps over the overlap) into one log-magnitude.
6. **Phase**: fast Griffin-Lim (Perraudin et al. 2013, momentum 0.99) from the content's phase,
   a fixed number of iterations over the whole stitched magnitude; the output has exactly the
   input's number of samples.

Stereo: each channel is stylized on its own (``per-channel``), or mid and side are (``mid-side``);
a channel that is silent (or 60 dB below the loudest one) is passed through unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .errors import UserError
from .lbfgs import BatchedLBFGS

REF_RMS = 0.1           # analysis level of content and style
PEAK = 0.98             # output peak limit (full scale 1.0)
MIN_SECONDS = 0.25      # shorter content or style is refused
SILENCE_RMS = 1e-5      # quieter than this (about -100 dBFS) is silent
STEREO_MODES = ("per-channel", "mid-side")


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


# ---------------------------------------------------------------------------------------------
# STFT
# ---------------------------------------------------------------------------------------------


def stft_params(sample_rate: int) -> tuple[int, int]:
    """(n_fft, hop): 2048/512 at 22.05 kHz, scaled with the rate (n_fft a power of two, hop n_fft/4)."""
    n_fft = int(2 ** round(math.log2(2048.0 * sample_rate / 22050.0)))
    n_fft = max(256, n_fft)
    return n_fft, n_fft // 4


def hann(n_fft: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def num_frames(length: int, hop: int) -> int:
    return 1 + length // hop


def stft(y: jax.Array, n_fft: int, hop: int) -> jax.Array:
    """Centred STFT of ``y`` ``[L]`` -> complex ``[1 + L // hop, n_fft // 2 + 1]``."""
    r = n_fft // hop
    length = y.shape[-1]
    t = num_frames(length, hop)
    blocks = t + r - 1
    pad = n_fft // 2
    total = blocks * hop
    yp = jnp.pad(y, (pad, max(0, total - length - pad)))[:total].reshape(blocks, hop)
    frames = jnp.concatenate([yp[j:j + t] for j in range(r)], axis=1)
    return jnp.fft.rfft(frames * jnp.asarray(hann(n_fft)), axis=-1)


def istft(spec: jax.Array, n_fft: int, hop: int, length: int) -> jax.Array:
    """Least-squares inverse of :func:`stft` (window-weighted overlap-add), exactly ``length`` samples."""
    r = n_fft // hop
    t = spec.shape[0]
    win = jnp.asarray(hann(n_fft))
    frames = jnp.fft.irfft(spec, n=n_fft, axis=-1) * win
    out = jnp.zeros((t + r - 1, hop), frames.dtype)
    norm = np.zeros((t + r - 1, hop), np.float32)
    w2 = hann(n_fft) ** 2
    for j in range(r):
        out = out.at[j:j + t].add(frames[:, j * hop:(j + 1) * hop])
        norm[j:j + t] += w2[j * hop:(j + 1) * hop]
    out = out / jnp.asarray(np.maximum(norm, 1e-8))
    pad = n_fft // 2
    flat = out.reshape(-1)
    flat = jnp.pad(flat, (0, max(0, pad + length - flat.shape[0])))
    return flat[pad:pad + length]


def _griffin_lim(mag, init, *, n_fft, hop, iterations, length, momentum=0.99):
    """Fast Griffin-Lim (Perraudin et al. 2013): magnitude ``mag``, initial complex ``init``."""
    def project(c):
        s = stft(istft(c, n_fft, hop, length), n_fft, hop)
        return mag * s / jnp.maximum(jnp.abs(s), 1e-8)

    c0 = jnp.where(jnp.abs(init) > 0, mag * init / jnp.maximum(jnp.abs(init), 1e-8), mag.astype(init.dtype))

    def body(_, carry):
        c, prev = carry
        t = project(c)
        return t + momentum * (t - prev), t

    _, t = jax.lax.fori_loop(0, iterations, body, (c0, c0))
    return istft(t, n_fft, hop, length)


griffin_lim = jax.jit(_griffin_lim, static_argnames=("n_fft", "hop", "iterations", "length"))


@functools.partial(jax.jit, static_argnames=("n_fft", "hop"))
def log_magnitude(y: jax.Array, n_fft: int, hop: int) -> jax.Array:
    return jnp.log1p(jnp.abs(stft(y, n_fft, hop)))


@functools.partial(jax.jit, static_argnames=("n_fft", "hop"))
def spectral_convergence_db(mag: jax.Array, y: jax.Array, n_fft: int, hop: int) -> jax.Array:
    """20 log10(|| |S| - |STFT(y)| ||_F / || |S| ||_F)."""
    est = jnp.abs(stft(y, n_fft, hop))
    return 20.0 * jnp.log10(jnp.linalg.norm(mag - est) / jnp.maximum(jnp.linalg.norm(mag), 1e-12) + 1e-12)


# ---------------------------------------------------------------------------------------------
# Random feature network
# ---------------------------------------------------------------------------------------------


def mel_matrix(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """[bins, n_mels] triangular mel filters (HTK mel scale, area-normalized)."""
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / np.maximum(mid - lo, 1e-6)
    down = (hi - freqs[None]) / np.maximum(hi - mid, 1e-6)
    w = np.maximum(0.0, np.minimum(up, down))
    w *= 2.0 / np.maximum(hi - lo, 1e-6)
    w /= np.maximum(w.max(axis=1, keepdims=True), 1e-12)  # peak 1 per band (keeps log1p's scale)
    return w.T.astype(np.float32)


def chroma_matrix(sample_rate: int, n_fft: int) -> np.ndarray:
    """[bins, 12] soft pitch-class filters (Gaussian, 0.5 semitone wide) for bins between 55 Hz and 5 kHz."""
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    ok = (freqs >= 55.0) & (freqs <= 5000.0)
    pitch = 12.0 * np.log2(np.maximum(freqs, 1.0) / 440.0)
    d = (pitch[:, None] - np.arange(12)[None] + 6.0) % 12.0 - 6.0
    w = np.exp(-0.5 * (d / 0.5) ** 2) * ok[:, None]
    return w.astype(np.float32)


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


# ---------------------------------------------------------------------------------------------
# Statistics and losses
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Jitted programs (one compile per shape)
# ---------------------------------------------------------------------------------------------


@jax.jit
def _stats_program(net, mel, x, mask):
    return jax.vmap(lambda xi, mi: frame_stats(net, mel, xi, mi))(x, mask)


def _optimize(net, mel, x0, mask, style, weights, n_iters, use_stats, spectrum_content, param="free", chroma_weight=0.0):
    """L-BFGS on a batch of chunks ``x0`` ``[B, T, bins]``; returns (x, initial parts, final parts)."""
    content = (jax.vmap(lambda xi: features(net, xi))(x0), x0)
    base = jnp.log(jnp.expm1(jnp.maximum(x0, 1e-4)))  # softplus(base) = x0
    spread = mel / jnp.maximum(mel.sum(axis=1, keepdims=True), 1e-6)  # [bins, bands], rows sum to 1 where covered

    # The log-magnitude is softplus(u) >= 0 with u unconstrained: clamping at 0 instead leaves bins
    # that step below 0 without gradient (a third of them died in tests). "mel-gain": u is the
    # content plus a gain per mel band and frame, spread smoothly over the bins.
    def to_x(ui, bi):
        return jax.nn.softplus(bi + ui @ spread.T) if param == "mel-gain" else jax.nn.softplus(ui)

    def one(ui, mi, ci, bi):
        return loss_parts(net, mel, to_x(ui, bi), mi, ci, style, weights, use_stats, spectrum_content, chroma_weight)

    def vg(x):
        (v, _), g = jax.vmap(jax.value_and_grad(one, has_aux=True))(x, mask, content, base)
        return v, g

    u0 = jnp.zeros(x0.shape[:2] + (mel.shape[1],), x0.dtype) if param == "mel-gain" else base
    opt = BatchedLBFGS(memory_size=10, max_linesearch_steps=20, learning_rate=1.0)
    state = opt.init(u0, vg)
    u, state = jax.lax.fori_loop(0, n_iters, lambda _, c: opt.step(c[0], c[1], vg), (u0, state))
    first = jax.vmap(one)(u0, mask, content, base)[1]
    last = jax.vmap(one)(u, mask, content, base)[1]
    return jax.vmap(to_x)(u, base), first, last


_optimize_program = jax.jit(_optimize, static_argnames=("use_stats", "spectrum_content", "param", "chroma_weight"))
_COMPILED: dict[str, Any] = {}


# ---------------------------------------------------------------------------------------------
# Chunking
# ---------------------------------------------------------------------------------------------


def chunk_plan(n_frames: int, chunk: int, overlap: int) -> list[int]:
    """Start frames of fixed-length chunks covering ``n_frames`` (the last may run past the end)."""
    if n_frames <= chunk:
        return [0]
    stride = chunk - overlap
    count = 1 + math.ceil((n_frames - chunk) / stride)
    return [i * stride for i in range(count)]


def crossfade_weights(starts: list[int], chunk: int, overlap: int, n_frames: int) -> list[np.ndarray]:
    """Per-chunk weights [chunk] (linear ramps over the overlaps) that sum to one on every frame."""
    weights = []
    for i, s in enumerate(starts):
        w = np.ones(chunk, np.float32)
        if i > 0 and overlap > 0:
            w[:overlap] = (np.arange(overlap) + 0.5) / overlap
        if i < len(starts) - 1 and overlap > 0:
            w[-overlap:] = np.minimum(w[-overlap:], 1.0 - (np.arange(overlap) + 0.5) / overlap)
        w[max(0, n_frames - s):] = 0.0
        weights.append(w)
    return weights


def _slice_padded(x: np.ndarray, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    part = x[start:start + length]
    mask = np.ones(length, np.float32)
    if len(part) < length:
        mask[len(part):] = 0.0
        part = np.concatenate([part, np.zeros((length - len(part),) + x.shape[1:], x.dtype)])
    return part, mask


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class AudioSettings:
    variant: str = DEFAULT_VARIANT
    iterations: int = 200
    filters: int | None = None
    content_weight: float = 0.3
    style_weight: float = 1.0
    stats_weight: float | None = None
    spectrum_content: float | None = None
    griffin_lim_iters: int = 100
    chunk_seconds: float = 10.0
    batch: int = 2
    stereo: str = "per-channel"
    seed: int = 0

    @classmethod
    def from_config(cls, cfg) -> "AudioSettings":
        return cls(variant=cfg.audio_variant, iterations=cfg.audio_iterations, filters=cfg.audio_filters,
                   content_weight=cfg.audio_content_weight, style_weight=cfg.audio_style_weight,
                   griffin_lim_iters=cfg.audio_griffin_lim_iters, chunk_seconds=cfg.audio_chunk_seconds,
                   batch=cfg.audio_batch, stereo=cfg.audio_stereo, seed=cfg.seed)

    def check(self) -> None:
        if self.variant not in VARIANTS:
            raise UserError(f"unknown audio variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        if self.stereo not in STEREO_MODES:
            raise UserError(f"--audio-stereo must be one of {', '.join(STEREO_MODES)}")
        if self.iterations < 0 or self.griffin_lim_iters < 0:
            raise UserError("--audio-iterations and --audio-griffin-lim-iters must be >= 0")
        if self.filters is not None and self.filters < 1:
            raise UserError(f"--audio-filters must be >= 1, not {self.filters}")
        if not self.chunk_seconds > 0:
            raise UserError(f"--audio-chunk-seconds must be > 0, not {self.chunk_seconds}")
        if self.batch < 1:
            raise UserError(f"--audio-batch must be >= 1, not {self.batch}")
        if self.content_weight < 0 or self.style_weight < 0:
            raise UserError("--audio-content-weight and --audio-style-weight must be >= 0")


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0


def check_signal(y: np.ndarray, sample_rate: int, name: str) -> None:
    seconds = y.shape[0] / float(sample_rate)
    if seconds < MIN_SECONDS:
        raise UserError(f"{name} is too short ({seconds:.2f} s); at least {MIN_SECONDS} s of audio is needed")
    if not _rms(y) > SILENCE_RMS:
        raise UserError(f"{name} is silent; there is nothing to stylize or to take a style from")


class AudioStylizer:
    """Holds the feature network and compiled programs for one sample rate and variant."""

    def __init__(self, sample_rate: int, settings: AudioSettings, log: Callable[[str], None] | None = None):
        settings.check()
        self.sr = int(sample_rate)
        self.s = settings
        self.log = log or (lambda m: None)
        self.variant = VARIANTS[settings.variant]
        self.n_fft, self.hop = stft_params(self.sr)
        self.net = make_net(self.variant, self.sr, self.n_fft, settings.filters, settings.seed)
        self.mel = jnp.asarray(mel_matrix(self.sr, self.n_fft, self.variant.n_mels))  # statistics and gains
        self.max_width = max(self.variant.widths)
        self.overlap = self.max_width + self.max_width % 2  # at least the widest kernel (even, for the halves)
        self.chunk = max(int(round(settings.chunk_seconds * self.sr / self.hop)), 2 * self.overlap + 1)
        self.spectrum_content = float(self.variant.spectrum_content if settings.spectrum_content is None
                                      else settings.spectrum_content)
        stats_w = settings.stats_weight if settings.stats_weight is not None else self.variant.stats_weight
        self.weights = Weights(jnp.float32(settings.content_weight), jnp.float32(settings.style_weight),
                               jnp.float32(stats_w if self.variant.stats else 0.0))

    # -- analysis ---------------------------------------------------------------------------------
    def logmag(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(log_magnitude(jnp.asarray(y, jnp.float32), n_fft=self.n_fft, hop=self.hop))

    def stats_of(self, x: np.ndarray) -> StyleStats:
        """Frame statistics of a whole log-magnitude ``[T, bins]``, chunk by chunk (bounded memory)."""
        t = x.shape[0]
        length = min(self.chunk, t)
        starts = chunk_plan(t, length, self.overlap)
        total = None
        for i in range(0, len(starts), self.s.batch):
            group = starts[i:i + self.s.batch]
            xs, ms = [], []
            for s in group:
                part, mask = _slice_padded(x, s, length)
                own = np.zeros(length, np.float32)  # each frame counted once: chunk i owns [s + lead, next start + lead)
                lead = 0 if s == 0 else self.overlap // 2
                end = length if s == starts[-1] else self.overlap // 2 + (length - self.overlap)
                own[lead:end] = 1.0
                xs.append(part)
                ms.append(mask * own)
            while len(xs) < self.s.batch and len(starts) > 1:
                xs.append(xs[-1])
                ms.append(np.zeros_like(ms[-1]))
            st = _stats_program(self.net, self.mel, jnp.asarray(np.stack(xs)), jnp.asarray(np.stack(ms)))
            st = jax.tree.map(lambda a: a.sum(0), st)
            total = st if total is None else jax.tree.map(jnp.add, total, st)
        return total

    # -- optimization ---------------------------------------------------------------------------
    def optimize(self, xs: list[np.ndarray], style: tuple) -> tuple[list[np.ndarray], dict]:
        """Stylize log-magnitudes ``[T, bins]`` (one per channel): chunk, optimize, cross-fade."""
        t = xs[0].shape[0]
        length = min(self.chunk, t)
        starts = chunk_plan(t, length, self.overlap)
        items = [(c, s) for c in range(len(xs)) for s in starts]
        batch = min(self.s.batch, len(items))
        out = [np.zeros_like(x) for x in xs]
        fades = crossfade_weights(starts, length, self.overlap if len(starts) > 1 else 0, t)
        parts_first, parts_last, frames = [], [], []
        compile_s = 0.0
        for i in range(0, len(items), batch):
            group = items[i:i + batch]
            xb, mb = [], []
            for c, s in group:
                part, mask = _slice_padded(xs[c], s, length)
                xb.append(part)
                mb.append(mask)
            real = len(xb)
            while len(xb) < batch:
                xb.append(xb[-1])
                mb.append(mb[-1])
            args = (self.net, self.mel, jnp.asarray(np.stack(xb)), jnp.asarray(np.stack(mb)), style, self.weights,
                    jnp.int32(self.s.iterations))
            if i == 0:
                t0 = time.perf_counter()
                key = (jax.tree.map(lambda a: (a.shape, a.dtype), args[:-1]), self.variant.stats,
                       self.spectrum_content, self.variant.param, self.variant.chroma_weight)
                key = str(key)
                if key not in _COMPILED:  # compiled ahead of time (timed), once per shape
                    _COMPILED[key] = _optimize_program.lower(*args, use_stats=self.variant.stats,
                                                             spectrum_content=self.spectrum_content,
                                                             param=self.variant.param,
                                                             chroma_weight=self.variant.chroma_weight).compile()
                program = _COMPILED[key]
                compile_s = time.perf_counter() - t0
            x, first, last = program(*args)
            x = np.asarray(x)
            for j, (c, s) in enumerate(group[:real]):
                w = fades[starts.index(s)]
                n = min(length, t - s)
                out[c][s:s + n] += x[j, :n] * w[:n, None]
                parts_first.append([float(v[j]) for v in first])
                parts_last.append([float(v[j]) for v in last])
                frames.append(float(mb[j].sum()))
            self.log(f"audio: optimized {min(i + batch, len(items))}/{len(items)} chunk(s)")
        fr = np.asarray(frames)[:, None]
        first = (np.asarray(parts_first) * fr).sum(0) / fr.sum()
        last = (np.asarray(parts_last) * fr).sum(0) / fr.sum()
        info = {"chunks": len(starts), "chunk_frames": length, "overlap_frames": self.overlap if len(starts) > 1 else 0,
                "compile_seconds": compile_s,
                "loss_initial": {"style": first[0], "content": first[1], "stats": first[2]},
                "loss_final": {"style": last[0], "content": last[1], "stats": last[2]}}
        return out, info

    # -- whole signals ----------------------------------------------------------------------------
    def style_target(self, style: np.ndarray) -> tuple:
        """Global style target from a mono style signal (any length) at this sample rate."""
        y = style * (REF_RMS / max(_rms(style), 1e-12))
        return averages(self.stats_of(self.logmag(y)))

    def reconstruct(self, x: np.ndarray, content: np.ndarray) -> tuple[np.ndarray, float]:
        """Waveform for log-magnitude ``x`` (phase from ``content``), exact length, and its spectral convergence."""
        mag = jnp.expm1(jnp.maximum(jnp.asarray(x), 0.0))
        init = stft(jnp.asarray(content, jnp.float32), self.n_fft, self.hop)
        y = griffin_lim(mag, init, n_fft=self.n_fft, hop=self.hop, iterations=self.s.griffin_lim_iters,
                        length=int(content.shape[0]))
        sc = spectral_convergence_db(mag, y, n_fft=self.n_fft, hop=self.hop)
        return np.asarray(y), float(sc)


def _to_channels(y: np.ndarray, mode: str) -> np.ndarray:
    if mode == "mid-side" and y.shape[1] == 2:
        return np.stack([(y[:, 0] + y[:, 1]) * 0.5, (y[:, 0] - y[:, 1]) * 0.5], axis=1)
    return y


def _from_channels(y: np.ndarray, mode: str) -> np.ndarray:
    if mode == "mid-side" and y.shape[1] == 2:
        return np.stack([y[:, 0] + y[:, 1], y[:, 0] - y[:, 1]], axis=1)
    return y


def stylize_audio(content: np.ndarray, style: np.ndarray, sample_rate: int, settings: AudioSettings | None = None,
                  log: Callable[[str], None] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Stylize ``content`` ``[L, C]`` with ``style`` ``[Ls, Cs]`` (same rate); returns ``([L, C], info)``.

    The output has the content's length, rate and channel count and is peak-limited to 0.98.
    """
    settings = settings or AudioSettings()
    content = np.asarray(content, np.float32)
    if content.ndim == 1:
        content = content[:, None]
    style = np.asarray(style, np.float32)
    style = style.mean(axis=1) if style.ndim == 2 else style
    check_signal(content, sample_rate, "content audio")
    check_signal(style, sample_rate, "style audio")
    t0 = time.perf_counter()
    st = AudioStylizer(sample_rate, settings, log)
    gain = REF_RMS / max(_rms(content.mean(axis=1)), _rms(content) * 0.5, 1e-12)
    chans = _to_channels(content * gain, settings.stereo)
    target = st.style_target(style)
    loudest = max(_rms(chans[:, c]) for c in range(chans.shape[1]))
    active = [c for c in range(chans.shape[1]) if _rms(chans[:, c]) > max(SILENCE_RMS, 1e-3 * loudest)]
    xs = [st.logmag(chans[:, c]) for c in active]
    xo, info = st.optimize(xs, target)
    out = chans.copy()
    sc = []
    for c, x in zip(active, xo):
        out[:, c], s = st.reconstruct(x, chans[:, c])
        sc.append(s)
    out = _from_channels(out, settings.stereo) / gain
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    limit = min(1.0, PEAK / peak) if peak > 0 else 1.0
    out = (out * limit).astype(np.float32)
    out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    info.update({"content_gain": gain, "output_gain": gain / limit, "variant": settings.variant, "n_fft": st.n_fft, "hop": st.hop, "sample_rate": sample_rate,
                 "channels": int(content.shape[1]), "stylized_channels": len(active), "stereo": settings.stereo,
                 "iterations": settings.iterations, "griffin_lim_iters": settings.griffin_lim_iters,
                 "spectral_convergence_db": float(np.mean(sc)) if sc else None,
                 "peak_gain": limit, "seconds": time.perf_counter() - t0})
    return out, info


# ---------------------------------------------------------------------------------------------
# Metrics (librosa for MFCC and chroma)
# ---------------------------------------------------------------------------------------------


def _mono(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, np.float32)
    return y.mean(axis=1) if y.ndim == 2 else y


def _frechet(mu1, cov1, mu2, cov2) -> float:
    from scipy import linalg

    covmean = linalg.sqrtm(cov1 @ cov2)
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2.0 * covmean))


def mfcc_stats(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of MFCC 1..19 (c0, the loudness, is left out) of a mono signal."""
    import librosa

    m = librosa.feature.mfcc(y=y.astype(np.float32), sr=sr, n_mfcc=20)[1:]
    return m.mean(axis=1), np.cov(m)


def chroma_correlation(a: np.ndarray, b: np.ndarray, sr: int) -> float:
    import librosa

    ca = librosa.feature.chroma_stft(y=a.astype(np.float32), sr=sr)
    cb = librosa.feature.chroma_stft(y=b.astype(np.float32), sr=sr)
    n = min(ca.shape[1], cb.shape[1])
    return float(np.corrcoef(ca[:, :n].ravel(), cb[:, :n].ravel())[0, 1])


def gram_distance(st: AudioStylizer, y: np.ndarray, target, gain: float | None = None) -> float:
    """Relative Gram error (mean over layers) of mono ``y`` to ``target``.

    ``y`` is scaled by ``gain`` (the run's analysis gain), or else to the reference RMS.
    """
    y = y * (gain if gain is not None else REF_RMS / max(_rms(y), 1e-12))
    grams, _, _ = averages(st.stats_of(st.logmag(y)))
    errs = [float(jnp.sum((g - gs) ** 2) / jnp.sum(gs ** 2)) for g, gs in zip(grams, target[0])]
    return float(np.mean(errs))


def audio_metrics(content: np.ndarray, style: np.ndarray, output: np.ndarray, sample_rate: int,
                  settings: AudioSettings | None = None, info: dict | None = None) -> dict[str, float]:
    """Gram distance before/after, timbre ratio (MFCC Frechet distance), chroma correlation.

    All on mono mix-downs; Gram distances use the run's own feature network, with content and
    output at the run's analysis level (``info["content_gain"]``, ``info["output_gain"]``: the
    output's global peak-limiter gain undone, a volume change only) when ``info`` is given.
    """
    info = info or {}
    settings = settings or AudioSettings()
    c, s, o = _mono(content), _mono(style), _mono(output)
    st = AudioStylizer(sample_rate, settings)
    target = st.style_target(s)
    before = gram_distance(st, c, target, info.get("content_gain"))
    after = gram_distance(st, o, target, info.get("output_gain"))
    ms = mfcc_stats(s, sample_rate)
    fd_content = _frechet(*mfcc_stats(c, sample_rate), *ms)
    fd_output = _frechet(*mfcc_stats(o, sample_rate), *ms)
    return {
        "gram_distance_before": before,
        "gram_distance_after": after,
        "gram_reduction": 1.0 - after / before if before > 0 else 0.0,
        "mfcc_fd_content_style": fd_content,
        "mfcc_fd_output_style": fd_output,
        "timbre_ratio": fd_output / fd_content if fd_content > 0 else float("nan"),
        "chroma_correlation": chroma_correlation(c, o, sample_rate),
    }
