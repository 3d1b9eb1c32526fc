"""Spectral analysis and resynthesis of sound: the STFT and its exact-length inverse, fast
Griffin-Lim, and the mel and pitch-class (chroma) filterbanks (pure, jit-compatible).

The STFT uses a periodic Hann window, ``n_fft`` 2048 and hop 512 at 22.05 kHz, scaled with the
sample rate (``n_fft`` the nearest power of two, hop ``n_fft/4``), with centred frames.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np


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
