"""Measures of an audio result: the style Gram distance before and after (on the run's own
feature network), the timbre ratio (Frechet distance of MFCC statistics, librosa) and the chroma
correlation of content and output (the melody kept)."""

from __future__ import annotations

import jax.numpy as jnp
import librosa
import numpy as np
from scipy import linalg

from ..config import AudioConfig
from .objective import averages
from .stylize import REF_RMS, AudioStylizer, rms


def _mono(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, np.float32)
    return y.mean(axis=1) if y.ndim == 2 else y


def _frechet(mu1, cov1, mu2, cov2) -> float:
    covmean = linalg.sqrtm(cov1 @ cov2)
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2.0 * covmean))


def mfcc_stats(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of MFCC 1..19 (c0, the loudness, is left out) of a mono signal."""
    m = librosa.feature.mfcc(y=y.astype(np.float32), sr=sr, n_mfcc=20)[1:]
    return m.mean(axis=1), np.cov(m)


def chroma_correlation(a: np.ndarray, b: np.ndarray, sr: int) -> float:
    ca = librosa.feature.chroma_stft(y=a.astype(np.float32), sr=sr)
    cb = librosa.feature.chroma_stft(y=b.astype(np.float32), sr=sr)
    n = min(ca.shape[1], cb.shape[1])
    return float(np.corrcoef(ca[:, :n].ravel(), cb[:, :n].ravel())[0, 1])


def gram_distance(st: AudioStylizer, y: np.ndarray, target, gain: float | None = None) -> float:
    """Relative Gram error (mean over layers) of mono ``y`` to ``target``.

    ``y`` is scaled by ``gain`` (the run's analysis gain), or else to the reference RMS.
    """
    y = y * (gain if gain is not None else REF_RMS / max(rms(y), 1e-12))
    grams, _, _ = averages(st.stats_of(st.logmag(y)))
    errs = [float(jnp.sum((g - gs) ** 2) / jnp.sum(gs ** 2)) for g, gs in zip(grams, target[0])]
    return float(np.mean(errs))


def audio_metrics(content: np.ndarray, style: np.ndarray, output: np.ndarray, sample_rate: int,
                  settings: AudioConfig | None = None, info: dict | None = None, *, seed: int = 0) -> dict[str, float]:
    """Gram distance before/after, timbre ratio (MFCC Frechet distance), chroma correlation.

    All on mono mix-downs; Gram distances use the run's own feature network, with content and
    output at the run's analysis level (``info["content_gain"]``, ``info["output_gain"]``: the
    output's global peak-limiter gain undone, a volume change only) when ``info`` is given;
    ``seed`` is the run's (the feature network's).
    """
    info = info or {}
    settings = settings or AudioConfig()
    c, s, o = _mono(content), _mono(style), _mono(output)
    st = AudioStylizer(sample_rate, settings, seed)
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
