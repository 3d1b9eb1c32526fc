"""Audio input/output through imageio-ffmpeg's bundled ffmpeg (never a system ffmpeg).

Any container ffmpeg reads (wav, flac, mp3, ogg, m4a, or the audio stream of a video) is decoded
to float32 PCM through a pipe, at the stream's own sample rate and channel count unless asked
otherwise. Outputs are encoded from the extension (wav: 16-bit PCM, flac, mp3: LAME VBR q2,
ogg: Vorbis q5, m4a: AAC 192k) into a hidden temporary file in the output's directory and moved
into place with :func:`os.replace` only when ffmpeg succeeded. Problems with the input raise
:class:`jaxstyle.errors.UserError` (one line).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .ffmpeg import check_not_cut_short, dump, failure_reason, ff_path, ffmpeg_exe, last_error_line, remove_quietly
from .files import replace_into, temp_path

PathLike = str | os.PathLike[str]

#: output extension -> (ffmpeg muxer, encoder arguments)
AUDIO_FORMATS: dict[str, tuple[str, list[str]]] = {
    ".wav": ("wav", ["-c:a", "pcm_s16le"]),
    ".flac": ("flac", ["-c:a", "flac"]),
    ".mp3": ("mp3", ["-c:a", "libmp3lame", "-q:a", "2"]),
    ".ogg": ("ogg", ["-c:a", "libvorbis", "-q:a", "5"]),
    ".m4a": ("ipod", ["-c:a", "aac", "-b:a", "192k"]),
}
AUDIO_EXTENSIONS = tuple(AUDIO_FORMATS)
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
#: what a format holds (at most so many channels, these sample rates); its encoder would mix the
#: rest down or resample it
AUDIO_FORMAT_LIMITS = {".mp3": (2, _MP3_RATES), ".m4a": (8, (7350, *_MP3_RATES, 64000, 88200, 96000))}


def check_audio_output(path: PathLike, sample_rate: int, channels: int) -> None:
    """The output format keeps the content's channels and sample rate (checked before the work)."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in AUDIO_FORMAT_LIMITS:
        return
    most_channels, rates = AUDIO_FORMAT_LIMITS[ext]
    if channels > most_channels or sample_rate not in rates:
        raise UserError(f"a {ext} file holds at most {most_channels} channels at {rates[0]}-{rates[-1]} Hz (not every "
                        f"rate between), and the sound has {channels} channel(s) at {sample_rate} Hz: write .flac, "
                        ".wav or .ogg to keep them")


def is_audio(path: PathLike) -> bool:
    """True for a path with an audio-file extension (wav, flac, mp3, ogg, m4a)."""
    return os.path.splitext(os.fspath(path))[1].lower() in AUDIO_FORMATS


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    codec: str
    duration: float | None


def audio_info(path: PathLike, stream: int = 0, what: str = "audio file") -> AudioInfo:
    """Sample rate and channel count of audio stream ``stream`` of any media file."""
    p = os.fspath(path)
    try:
        info = dump(p, what)
    except UserError as exc:
        text = str(exc)
        if text.lower().startswith("cannot read"):
            raise UserError(f"cannot read {p}: not a readable audio or video file") from None
        raise
    if len(info.audio) <= stream:
        raise UserError(f"no audio stream in {p}")
    s = info.audio[stream]
    if s.sample_rate <= 0 or s.channels <= 0:
        raise UserError(f"cannot tell the sample rate or channel layout of the audio in {p} ({s.layout or 'unknown'})")
    return AudioInfo(s.sample_rate, s.channels, s.codec, info.duration)


def read_audio(path: PathLike, *, sample_rate: int | None = None, channels: int | None = None,
               start: float = 0.0, duration: float | None = None, stream: int = 0,
               what: str = "audio file") -> tuple[np.ndarray, int]:
    """Decode to float32 ``[samples, channels]`` and return it with its sample rate.

    By default the stream's own rate and channel count are kept; ``sample_rate``/``channels``
    resample or remix in ffmpeg. ``start``/``duration`` (seconds) cut a segment.
    """
    p = os.fspath(path)
    info = audio_info(p, stream, what)
    sr = int(sample_rate or info.sample_rate)
    ch = int(channels or info.channels)
    if start > 0 and info.duration is not None and start >= info.duration:
        raise UserError(f"--start {start:g}s is at or past the end of {p} ({info.duration:.3f}s)")
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]
    if start > 0:
        cmd += ["-ss", f"{start:.6f}"]
    if duration is not None:
        cmd += ["-t", f"{duration:.6f}"]
    cmd += ["-i", ff_path(p), "-map", f"0:a:{stream}", "-vn", "-sn", "-dn",
            "-ac", str(ch), "-ar", str(sr), "-f", "f32le", "-c:a", "pcm_f32le", "pipe:1"]
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf)
        errf.seek(0)
        err = errf.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise UserError(f"cannot decode the audio of {p}: {last_error_line(err)}")
    check_not_cut_short(p, err)
    data = np.frombuffer(proc.stdout, dtype="<f4")
    data = data[: len(data) // ch * ch].reshape(-1, ch).astype(np.float32)
    if not np.all(np.isfinite(data)):
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    return data, sr


def write_audio(path: PathLike, samples: np.ndarray, sample_rate: int) -> None:
    """Encode ``samples`` ``[n, channels]`` (float, clipped to [-1, 1]) to ``path``, atomically."""
    p = os.fspath(path)
    ext = os.path.splitext(p)[1].lower()
    if ext not in AUDIO_FORMATS:
        raise UserError(f"unsupported audio output extension {ext or '(none)'!r} for {p}; "
                        f"use one of {', '.join(AUDIO_EXTENSIONS)}")
    parent = os.path.dirname(os.path.realpath(p))
    if not os.path.isdir(parent):
        raise UserError(f"output directory does not exist: {parent}")
    if os.path.isdir(p):
        raise UserError(f"output path is a directory: {p}")
    y = np.asarray(samples, np.float32)
    if y.ndim == 1:
        y = y[:, None]
    y = np.ascontiguousarray(np.clip(y, -1.0, 1.0)).astype("<f4")
    muxer, codec = AUDIO_FORMATS[ext]
    tmp = str(temp_path(p, "partial"))
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
           "-f", "f32le", "-ar", str(int(sample_rate)), "-ac", str(y.shape[1]), "-i", "pipe:0",
           *codec, "-f", muxer, ff_path(tmp)]
    try:
        with tempfile.TemporaryFile() as errf:
            proc = subprocess.run(cmd, input=y.tobytes(), stdout=subprocess.DEVNULL, stderr=errf)
            errf.seek(0)
            err = errf.read().decode("utf-8", "replace")
        if proc.returncode != 0:
            raise UserError(f"ffmpeg failed while writing {p}: {failure_reason(proc.returncode, err)}")
        replace_into(tmp, p)
    finally:
        remove_quietly(tmp if os.path.exists(tmp) else None)
