"""Audio style transfer on spectrograms (Ulyanov-style random networks, improved), in JAX.

Pipeline (:func:`stylize_audio`, arrays in and out; file I/O lives in :mod:`jaxstyle.io.audio`):

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
4. **Optimizer**: L-BFGS (:class:`jaxstyle.optim.lbfgs.BatchedLBFGS`: optax's L-BFGS direction with a
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

import math
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..config import AudioConfig
from ..errors import UserError
from ..optim import optimizers
from .network import VARIANTS, features, make_net
from .objective import StyleStats, Weights, averages, frame_stats, loss_parts
from .spectral import griffin_lim, log_magnitude, mel_matrix, spectral_convergence_db, stft, stft_params

REF_RMS = 0.1           # analysis level of content and style
PEAK = 0.98             # output peak limit (full scale 1.0)
MIN_SECONDS = 0.25      # shorter content or style is refused
SILENCE_RMS = 1e-5      # quieter than this (about -100 dBFS) is silent


# Jitted programs (one compile per shape)
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
    opt = optimizers.make("lbfgs", 1.0)
    state = opt.init(u0, vg)
    u, state = jax.lax.fori_loop(0, n_iters, lambda _, c: opt.step(c[0], c[1], vg), (u0, state))
    first = jax.vmap(one)(u0, mask, content, base)[1]
    last = jax.vmap(one)(u, mask, content, base)[1]
    return jax.vmap(to_x)(u, base), first, last


_optimize_program = jax.jit(_optimize, static_argnames=("use_stats", "spectrum_content", "param", "chroma_weight"))
_COMPILED: dict[str, Any] = {}


def clear_caches() -> None:
    """Forget the compiled optimization programs."""
    _COMPILED.clear()


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


def rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0


def check_signal(y: np.ndarray, sample_rate: int, name: str) -> None:
    seconds = y.shape[0] / float(sample_rate)
    if seconds < MIN_SECONDS:
        raise UserError(f"{name} is too short ({seconds:.2f} s); at least {MIN_SECONDS} s of audio is needed")
    if not rms(y) > SILENCE_RMS:
        raise UserError(f"{name} is silent; there is nothing to stylize or to take a style from")


class AudioStylizer:
    """Holds the feature network and compiled programs for one sample rate and variant."""

    def __init__(self, sample_rate: int, settings: AudioConfig, seed: int = 0,
                 log: Callable[[str], None] | None = None):
        settings.check()
        if settings.variant not in VARIANTS:
            raise UserError(f"unknown audio variant {settings.variant!r}; choose one of {', '.join(VARIANTS)}")
        self.sr = int(sample_rate)
        self.s = settings
        self.log = log or (lambda m: None)
        self.variant = VARIANTS[settings.variant]
        self.n_fft, self.hop = stft_params(self.sr)
        self.net = make_net(self.variant, self.sr, self.n_fft, settings.filters, seed)
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
        y = style * (REF_RMS / max(rms(style), 1e-12))
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


def stylize_audio(content: np.ndarray, style: np.ndarray, sample_rate: int, settings: AudioConfig | None = None,
                  *, seed: int = 0, log: Callable[[str], None] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Stylize ``content`` ``[L, C]`` with ``style`` ``[Ls, Cs]`` (same rate); returns ``([L, C], info)``.

    The output has the content's length, rate and channel count and is peak-limited to 0.98.
    """
    settings = settings or AudioConfig()
    content = np.asarray(content, np.float32)
    if content.ndim == 1:
        content = content[:, None]
    style = np.asarray(style, np.float32)
    style = style.mean(axis=1) if style.ndim == 2 else style
    check_signal(content, sample_rate, "content audio")
    check_signal(style, sample_rate, "style audio")
    t0 = time.perf_counter()
    st = AudioStylizer(sample_rate, settings, seed, log)
    gain = REF_RMS / max(rms(content.mean(axis=1)), rms(content) * 0.5, 1e-12)
    chans = _to_channels(content * gain, settings.stereo)
    target = st.style_target(style)
    loudest = max(rms(chans[:, c]) for c in range(chans.shape[1]))
    active = [c for c in range(chans.shape[1]) if rms(chans[:, c]) > max(SILENCE_RMS, 1e-3 * loudest)]
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
