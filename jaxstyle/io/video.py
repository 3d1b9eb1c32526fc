"""Streaming video input/output through imageio-ffmpeg's bundled ffmpeg binary (:mod:`.ffmpeg`).

Only the ffmpeg executable shipped with ``imageio_ffmpeg`` is used (never a system ffmpeg, and
no ffprobe). Frames travel as raw ``rgb24``/``rgba`` bytes through pipes, so memory use does not
grow with the length of the video.

Probing
    :func:`probe` parses the stream dump that ``ffmpeg -hide_banner -i FILE`` prints, then counts
    the video packets exactly with ``ffmpeg -i FILE -map 0:V:0 -c copy -f framecrc -`` (no
    decoding). The packet timestamps give the video duration, the measured average rate and a
    best-effort :attr:`VideoInfo.variable_frame_rate` flag. The frame rate is an exact
    :class:`fractions.Fraction` taken from the rate ffmpeg prints ("30.02 fps" -> 1501/50,
    "29.97 fps" -> 30000/1001, NTSC rates are recognised), cross-checked against the measured
    average rate.

Variable frame rate (VFR)
    :func:`iter_frames` always produces constant-frame-rate output: VFR input is resampled (frames
    duplicated or dropped by ffmpeg's ``fps`` filter) to a constant rate equal to its *average*
    rate, :attr:`VideoInfo.fps`. So the number of frames yielded is ``duration x fps``
    (:func:`expected_frame_count`), which for VFR input can differ from the number of stored
    frames (:attr:`VideoInfo.frame_count`). For CFR input the two are equal.

Odd sizes
    Frames are read and written at their exact size. H.264 4:2:0 needs even dimensions, so for an
    odd width or height :class:`VideoWriter` encodes H.264 as ``yuv444p`` (High 4:4:4 profile),
    which keeps the exact size (some hardware players cannot play 4:4:4; pass ``pix_fmt`` or even
    sizes if that matters). VP9 (``.webm``), MJPEG (``.avi``) and GIF handle odd sizes natively.

Alpha
    Inputs whose pixel format carries alpha (rgba, yuva420p, GIF transparency, ...) are decoded as
    ``rgba`` and composited over a flat background, black by default (``background=0.0``).
    Outputs never carry alpha.

Audio policy
    :class:`VideoWriter` writes video only to a hidden temporary file next to the output and, when
    ``audio_from`` is given and has audio, runs a final ffmpeg mux that copies the video stream
    unchanged (``-c:v copy``) and maps *all* audio streams of ``audio_from``. Each audio stream is
    copied unchanged (``-c:a copy``) when the output container can hold its codec and re-encoded
    otherwise (AAC for mp4/mov/mkv, Opus for webm, 16-bit PCM for avi). When a segment is selected
    (``audio_start > 0`` or ``audio_duration`` set) the audio is re-encoded so the cut is
    sample-accurate rather than packet-aligned. Audio is never truncated to the video
    (no ``-shortest``), so the output audio lasts as long as the input's (or the segment's).
    GIF output never has audio. The same mux keeps the subtitle streams of ``subtitles_from``
    (the source, also when the audio is left out) where the output's format can hold them, cut to
    the segment (see :mod:`jaxstyle.io.subtitles`). The result is moved into place with :func:`os.replace` only
    after everything succeeded; on any error the temporary files are removed and an existing
    file at the output path is left untouched.

User errors (missing, unreadable or corrupt files, no video frames, unsupported extensions,
bad segment bounds) raise :class:`jaxstyle.errors.UserError`.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from ..errors import UserError, first_line
from .ffmpeg import (AudioStreamInfo, SubtitleStreamInfo, audio_streams, check_not_cut_short, dump, failure_reason, ff_path, ffmpeg_exe, fraction_str, last_error_line,
                     remove_quietly, run_ffmpeg)
from .files import replace_into, temp_path
from .subtitles import cut_stream_args, dropped_note, subtitle_plan, write_cut_subtitles

__all__ = [
    "VideoInfo",
    "probe",
    "audio_streams",
    "expected_frame_count",
    "iter_frames",
    "VideoWriter",
    "mux_audio",
    "SUPPORTED_EXTENSIONS",
]

PathLike = str | os.PathLike[str]

#: Video inputs the CLI treats as videos (anything ffmpeg reads works through the API).
INPUT_VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif", ".y4m", ".ts", ".m2ts", ".mpg",
                          ".mpeg", ".flv", ".wmv", ".3gp", ".ogv")

#: Output extensions :class:`VideoWriter` understands, with their ffmpeg muxer names.
SUPPORTED_EXTENSIONS: dict[str, str] = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".gif": "gif",
    ".avi": "avi",
}
VIDEO_OUTPUT_EXTENSIONS = tuple(SUPPORTED_EXTENSIONS)

# Audio codecs each output muxer takes as-is; anything else is re-encoded with _AUDIO_ENCODER.
_AUDIO_COPY_OK: dict[str, frozenset[str]] = {
    "mp4": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}),
    "mov": frozenset({"aac", "mp3", "ac3", "eac3", "alac"}),
    "matroska": frozenset(
        {"aac", "mp3", "mp2", "ac3", "eac3", "dts", "truehd", "flac", "alac", "opus", "vorbis"}
    ),
    "webm": frozenset({"opus", "vorbis"}),
    # Only PCM is copied into AVI: compressed audio with encoder delay (mp3/aac priming) starts
    # at a negative timestamp, and AVI's frame-count timestamps then open a gap in the video.
    "avi": frozenset({"pcm_s16le", "pcm_u8"}),
    "gif": frozenset(),
}
_PCM_COPY_OK = frozenset({"mov", "matroska"})  # containers that take any pcm_* codec
_AUDIO_ENCODER: dict[str, list[str]] = {
    "mp4": ["aac", "-b:a", "192k"],
    "mov": ["aac", "-b:a", "192k"],
    "matroska": ["aac", "-b:a", "192k"],
    "webm": ["libopus", "-b:a", "128k"],
    "avi": ["pcm_s16le"],
}

_ALPHA_PIX_FMT = re.compile(r"^(rgba|bgra|argb|abgr|yuva|gbrap|ya\d|pal8|rgba64|bgra64)")
_IMAGE_DEMUXERS = ("image2", "_pipe")
_NOPTS = -(2**63)


# --------------------------------------------------------------------------------------------
# Probing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learnt about a video (or still image) file."""

    path: str
    width: int  #: display width of decoded frames (after rotation metadata is applied)
    height: int  #: display height of decoded frames
    fps: Fraction  #: exact (average) frame rate
    frame_count: int  #: stored video frames, counted exactly
    duration: float  #: video duration in seconds
    has_alpha: bool  #: pixel format can carry transparency
    pix_fmt: str  #: source pixel format, e.g. "yuv420p"
    codec: str  #: source video codec, e.g. "h264"
    container: str  #: ffmpeg demuxer name(s), e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    is_still: bool  #: a single still image (png/jpg/...) rather than a video
    variable_frame_rate: bool  #: best effort: frame durations are not constant
    audio: tuple[AudioStreamInfo, ...] = ()
    #: shape of a pixel as displayed (width / height; not 1 for anamorphic video such as DV or
    #: the 'carphone' clip), kept by :class:`VideoWriter` so the output displays at the same aspect
    sample_aspect: Fraction = Fraction(1)
    language: str | None = None  #: the video stream's language tag (ISO 639), if it has one
    tags: tuple[tuple[str, str], ...] = ()  #: the file's metadata (title, comment, creation_time, ...)
    subtitles: tuple[SubtitleStreamInfo, ...] = ()  #: kept by :class:`VideoWriter` where the format allows

    @property
    def display_width(self) -> int:
        """The width in square pixels (the stored width times the pixel aspect): the geometry the
        stylization works in, so that strokes look as they should where the video is shown."""
        return max(1, round(self.width * self.sample_aspect))

    @property
    def num_audio_streams(self) -> int:
        return len(self.audio)

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)


def _printed_rate(text: str) -> Fraction | None:
    """Exact rate for a value as ffmpeg prints it ("30.02", "29.97", "25", "1k")."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(k?)", text.strip())
    if not m:
        return None
    value = Fraction(m.group(1)) * (1000 if m.group(2) else 1)
    if value <= 0:
        return None
    if value.denominator != 1:
        # NTSC-style k*1000/1001 rates print as e.g. 29.97 / 23.98 / 59.94.
        k = round(value * Fraction(1001, 1000))
        ntsc = Fraction(k * 1000, 1001)
        if k > 0 and f"{float(ntsc):.2f}" == f"{float(value):.2f}":
            return ntsc
    return value


def _count_packets(path: str) -> tuple[int, Fraction | None, np.ndarray, int]:
    """Count video packets; return (count, time_base, sorted pts, last packet duration)."""
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(
            [
                ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
                "-i", ff_path(path), "-map", "0:V:0", "-c", "copy", "-f", "framecrc", "-",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errf,
        )
        count = 0
        tb: Fraction | None = None
        pts: list[int] = []
        last_dur = 0
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("ascii", "replace").strip()
                if not line:
                    continue
                if line.startswith("#"):
                    tm = re.match(r"#tb \d+: (\d+)/(\d+)", line)
                    if tm:
                        tb = Fraction(int(tm.group(1)), int(tm.group(2)))
                    continue
                parts = [x.strip() for x in line.split(",")]
                if len(parts) < 5:
                    continue
                count += 1
                try:
                    dts, pt, dur = int(parts[1]), int(parts[2]), int(parts[3])
                except ValueError:
                    continue
                ts = pt if pt != _NOPTS else dts
                if ts != _NOPTS:
                    pts.append(ts)
                    last_dur = dur
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        errf.seek(0)
        err = errf.read().decode("utf-8", "replace")
        if proc.returncode != 0:
            raise UserError(f"cannot read video frames of {path}: {last_error_line(err)}")
        # (its packets would end mid-GOP, and the holes in the timestamps read as a variable rate)
        check_not_cut_short(path, err, f", and only {count} frames are readable")
    arr = np.sort(np.asarray(pts, dtype=np.int64))
    return count, tb, arr, last_dur


def _choose_rate(
    fps_txt: str | None, tbr_txt: str | None, measured: Fraction | None, tol: float
) -> Fraction:
    printed = [r for r in (_printed_rate(t) for t in (fps_txt, tbr_txt) if t) if r is not None]
    if measured is None or measured <= 0:
        return printed[0] if printed else Fraction(25)
    candidates = list(printed)
    candidates.append(Fraction(max(1, round(measured))))
    k = round(measured * Fraction(1001, 1000))
    if k > 0:
        candidates.append(Fraction(k * 1000, 1001))
    for c in candidates:
        if abs(float(c / measured) - 1.0) <= tol:
            return c
    return measured.limit_denominator(1001)


def probe(path: PathLike) -> VideoInfo:
    """Describe a video or still image file; raise :class:`UserError` if it is not usable.

    Runs two cheap ffmpeg passes (stream dump, then a packet count with ``-c copy``); nothing is
    decoded.
    """
    p = os.fspath(path)
    d = dump(p)
    if d.video is None or not d.video["width"] or not d.video["height"]:
        raise UserError(f"no video stream in {p}")
    v = d.video
    count, tb, pts, last_dur = _count_packets(p)
    if count == 0:
        raise UserError(f"video file contains no video frames: {p}")

    measured: Fraction | None = None
    span_s: float | None = None
    vfr = False
    tol = 0.002
    if tb is not None and len(pts) >= 2:
        diffs = np.diff(pts)
        diffs = diffs[diffs > 0]
        if diffs.size:
            med = int(np.median(diffs))
            end_dur = last_dur if last_dur > 0 else med
            span_ticks = int(pts[-1] - pts[0]) + end_dur
            if span_ticks > 0:
                measured = Fraction(len(pts)) / (span_ticks * tb)
                span_s = float(span_ticks * tb)
                tol = max(tol, 2.0 / span_ticks)
            spread = int(diffs.max() - diffs.min())
            vfr = spread > max(1, int(0.05 * float(diffs.mean())))
    elif tb is not None and len(pts) == 1 and last_dur > 0:
        span_s = float(last_dur * tb)

    fps = _choose_rate(v["fps"], v["tbr"], measured, tol)
    is_still = count == 1 and (
        any(x in d.container for x in _IMAGE_DEMUXERS) or d.container == "gif"
    )
    if span_s is None or count < 2:
        span_s = d.duration if (d.duration and not is_still) else count / float(fps)
    width, height = v["width"], v["height"]
    sample_aspect = v["sample_aspect"]
    if round(abs(v["rotation"])) % 180 == 90:  # ffmpeg autorotates while decoding
        width, height = height, width
        sample_aspect = 1 / sample_aspect
    return VideoInfo(
        path=p,
        width=width,
        height=height,
        fps=fps,
        frame_count=count,
        duration=float(span_s),
        has_alpha=bool(_ALPHA_PIX_FMT.match(v["pix_fmt"] or "")),
        pix_fmt=v["pix_fmt"],
        codec=v["codec"],
        container=d.container,
        is_still=is_still,
        variable_frame_rate=vfr and not is_still,
        audio=d.audio,
        sample_aspect=sample_aspect,
        language=v["language"],
        tags=d.tags,
        subtitles=d.subtitles,
    )


def is_video(path: PathLike) -> bool:
    """True for a path with a video extension (the CLI's test of what CONTENT or --style is)."""
    return Path(path).suffix.lower() in INPUT_VIDEO_EXTENSIONS


def is_video_content(path: PathLike) -> bool:
    """Whether CONTENT is stylized as a video: a video extension, except that a GIF of one frame
    is a still image (stylized and written as one). A GIF that cannot be read is a UserError."""
    if not is_video(path):
        return False
    if Path(path).suffix.lower() == ".gif" and Path(path).is_file():  # (a missing one: the video reader says so)
        try:
            with Image.open(path) as image:
                return getattr(image, "n_frames", 1) > 1
        except Exception as exc:  # (Pillow raises more than OSError: DecompressionBombError, say)
            with open(path, "rb") as f:
                if f.read(4) != b"GIF8":
                    return True  # another format under a .gif name: ffmpeg reads it as before
            # a broken GIF: ffprobe would take it for a still image
            raise UserError(f"cannot read {path}: not a readable GIF ({first_line(exc)})") from None
    return True


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _segment(info: VideoInfo, start: float, duration: float | None) -> tuple[int, int | None]:
    """(first output frame index on the CFR grid, number of frames or None for 'to the end')."""
    if start < 0:
        raise UserError(f"start time must be >= 0, got {start}")
    if duration is not None and duration <= 0:
        raise UserError(f"duration must be > 0, got {duration}")
    if info.is_still:
        return 0, 1
    rate = info.fps
    k0 = round(Fraction(start) * rate) if start else 0
    total = expected_frame_count(info)
    if k0 >= total:
        if start < info.duration:  # (a start goes to the nearest frame of the constant-rate grid)
            last = float(Fraction(total - 1) / rate)
            raise UserError(f"--start {start:g}s is nearer the end of {info.path} ({info.duration:.3f}s) than its "
                            f"last frame (at {last:.3f}s); use --start {math.floor(last * 1000) / 1000:.3f} or less")
        raise UserError(f"--start {start:g}s is at or past the end of {info.path} ({info.duration:.3f}s)")
    if duration is None:
        return k0, None
    n = max(1, round(Fraction(duration) * rate))
    return k0, min(n, total - k0)


def expected_frame_count(info: VideoInfo, start: float = 0.0, duration: float | None = None) -> int:
    """How many frames :func:`iter_frames` yields for this segment (exact for CFR input).

    For VFR input this is ``round(duration * fps)`` (best effort).
    """
    if info.is_still:
        return 1
    if start == 0 and duration is None:
        if info.variable_frame_rate:
            return max(1, round(Fraction(info.duration) * info.fps))
        return info.frame_count
    k0, n = _segment(info, start, duration)
    return n if n is not None else expected_frame_count(info) - k0


def _read_exact(stream: IO[bytes], buf: memoryview) -> int:
    got = 0
    while got < len(buf):
        n = stream.readinto(buf[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


def iter_frames(
    path: PathLike,
    info: VideoInfo | None = None,
    size: tuple[int, int] | None = None,
    start: float = 0.0,
    duration: float | None = None,
    batch: int | None = None,
    *,
    background: float = 0.0,
) -> Iterator[np.ndarray]:
    """Stream decoded frames as float32 RGB in [0, 1].

    Yields arrays of shape ``(H, W, 3)``, or ``(B, H, W, 3)`` when ``batch`` is given (the last
    batch may be shorter). ``size=(width, height)`` rescales in ffmpeg (area filter when
    shrinking, bicubic when enlarging). ``start``/``duration`` (seconds) select a segment; the
    first frame is the one on the constant-rate grid nearest to ``start``. Output is always
    constant-rate at ``info.fps`` (VFR input is resampled, see the module docstring). Frames with
    alpha are composited over a flat ``background`` gray level (0.0 = black).

    The ffmpeg process starts on the first ``next()`` and is killed and reaped when the
    generator finishes, is closed, or is garbage collected.
    """
    p = os.fspath(path)
    if info is None:
        info = probe(p)
    if batch is not None and batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    out_w, out_h = (info.width, info.height) if size is None else (int(size[0]), int(size[1]))
    if out_w < 1 or out_h < 1:
        raise UserError(f"invalid frame size {out_w}x{out_h}")
    k0, n_frames = _segment(info, start, duration)
    return _frame_generator(p, info, out_w, out_h, k0, n_frames, batch, float(background))


def _frame_generator(
    path: str,
    info: VideoInfo,
    out_w: int,
    out_h: int,
    k0: int,
    n_frames: int | None,
    batch: int | None,
    background: float,
) -> Iterator[np.ndarray]:
    channels = 4 if info.has_alpha else 3
    pix_fmt = "rgba" if info.has_alpha else "rgb24"
    shrinking = out_w * out_h < info.width * info.height
    flags = ("area" if shrinking else "bicubic") + "+accurate_rnd+full_chroma_int"
    filters = []
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]
    if not info.is_still:
        rate = info.fps
        if k0 > 0:
            # Seek a quarter frame before the wanted grid point so that frame lands on output 0.
            seek = max(0.0, float((k0 - Fraction(1, 4)) / rate))
            cmd += ["-ss", f"{seek:.6f}"]
        filters.append(f"fps=fps={fraction_str(rate)}")
    cmd += ["-i", ff_path(path), "-map", "0:V:0", "-an", "-sn", "-dn"]
    filters.append(f"scale={out_w}:{out_h}:flags={flags}")
    filters.append(f"format={pix_fmt}")
    cmd += ["-vf", ",".join(filters), "-fps_mode", "passthrough"]
    if n_frames is not None:
        cmd += ["-frames:v", str(n_frames)]
    cmd += ["-pix_fmt", pix_fmt, "-f", "rawvideo", "pipe:1"]

    frame_bytes = out_w * out_h * channels
    per_read = batch or 1
    errf = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf)
    finished = False
    try:
        assert proc.stdout is not None
        while True:
            buf = bytearray(frame_bytes * per_read)
            got = _read_exact(proc.stdout, memoryview(buf))
            nfull = got // frame_bytes
            if nfull:
                arr = np.frombuffer(buf, dtype=np.uint8, count=nfull * frame_bytes)
                arr = arr.reshape(nfull, out_h, out_w, channels)
                frames = _to_float_rgb(arr, background)
                if batch is None:
                    yield frames[0]
                else:
                    yield frames
            if got < frame_bytes * per_read:
                break
        proc.stdout.close()
        proc.wait()
        finished = True
        if proc.returncode != 0:
            errf.seek(0)
            err = errf.read().decode("utf-8", "replace")
            raise UserError(f"ffmpeg failed while decoding {path}: {last_error_line(err)}")
    finally:
        if not finished:
            if proc.poll() is None:
                proc.kill()
            if proc.stdout is not None:
                proc.stdout.close()
            proc.wait()
        errf.close()


def _to_float_rgb(frames_u8: np.ndarray, background: float) -> np.ndarray:
    """uint8 [..., 3|4] -> float32 RGB in [0, 1], compositing alpha over ``background``."""
    rgb = frames_u8[..., :3].astype(np.float32) * np.float32(1.0 / 255.0)
    if frames_u8.shape[-1] == 4:
        alpha = frames_u8[..., 3:4].astype(np.float32) * np.float32(1.0 / 255.0)
        rgb = rgb * alpha + np.float32(background) * (1.0 - alpha)
    return rgb


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _container_for(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in SUPPORTED_EXTENSIONS:
        known = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        raise UserError(f"unsupported output extension {ext or '(none)'!r} for {path}; use one of {known}")
    return SUPPORTED_EXTENSIONS[ext]


def dropped_subtitles_note(source: PathLike, output: PathLike, segment: bool = False) -> str | None:
    """One line for the user when ``output``'s format cannot hold some of ``source``'s subtitle
    streams (checked before the work starts; ``segment``: only part of the source is written), else None."""
    src, out = os.fspath(source), os.fspath(output)
    return dropped_note(src, out, _container_for(out), dump(src).subtitles, segment)


def _check_output_path(path: str) -> None:
    if os.path.isdir(path):
        raise UserError(f"output path is a directory: {path}")
    parent = os.path.dirname(os.path.realpath(path))
    if not os.path.isdir(parent):
        raise UserError(f"output directory does not exist: {parent}")
    if not os.access(parent, os.W_OK):
        raise UserError(f"output directory is not writable: {parent}")


def _audio_codec_args(
    container: str, streams: tuple[AudioStreamInfo, ...], reencode: bool, first_out_index: int = 0
) -> list[str]:
    args: list[str] = []
    for i, s in enumerate(streams):
        ok = s.codec in _AUDIO_COPY_OK[container] or (
            container in _PCM_COPY_OK and s.codec.startswith("pcm_")
        )
        spec = f"-c:a:{first_out_index + i}"
        if ok and not reencode:
            args += [spec, "copy"]
        else:
            enc = _AUDIO_ENCODER[container]
            args += [spec, enc[0]]
            for j in range(1, len(enc), 2):
                args += [f"{enc[j]}:{first_out_index + i}", enc[j + 1]]
    return args


# Tags a muxer writes for itself: copied from a source they would describe the source's file.
_MUXER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder"})


def _language_args(languages: Sequence[str | None], first_out_index: int = 0) -> list[str]:
    """``-metadata:s:a:N language=...`` for the added audio streams that have a tag."""
    return [arg for i, language in enumerate(languages) if language
            for arg in (f"-metadata:s:a:{first_out_index + i}", f"language={language}")]


def _tag_args(tags: Sequence[tuple[str, str]], container: str) -> list[str]:
    """``-metadata key=value`` for a file's tags, but the muxer's own (Matroska upper-cases keys);
    none for GIF."""
    if container == "gif":
        return []
    return [arg for key, value in tags if key.lower() not in _MUXER_TAGS for arg in ("-metadata", f"{key}={value}")]


def _mux(
    video_src: str,
    audio_src: str,
    out_tmp: str,
    container: str,
    streams: tuple[AudioStreamInfo, ...],
    audio_start: float,
    audio_duration: float | None,
    keep_video_audio: tuple[AudioStreamInfo, ...] = (),
    tag_args: Sequence[str] = (),
    subtitles: Sequence[tuple[SubtitleStreamInfo, str]] = (),
    cut_subtitles: Sequence[str] = (),
    keep_video_subtitles: bool = False,
) -> None:
    """Copy the first video stream of ``video_src``, all audio of ``audio_src`` (``streams``) and
    the ``subtitles`` of ``audio_src`` (each with its output codec; for a segment, read from the
    ``cut_subtitles`` files instead, one per stream) into ``out_tmp`` (``tag_args``: ``-metadata``
    options, given again because ffmpeg drops some tags, such as creation_time, from the metadata
    it copies)."""
    cut = audio_start > 0 or audio_duration is not None
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y"]
    cmd += ["-i", ff_path(video_src)]
    if audio_start > 0:
        cmd += ["-ss", f"{audio_start:.6f}"]
    if audio_duration is not None:
        cmd += ["-t", f"{audio_duration:.6f}"]
    cmd += ["-i", ff_path(audio_src)]
    for path in cut_subtitles:  # inputs 2, 3, ...
        cmd += ["-i", ff_path(path)]
    cmd += ["-map", "0:V:0"]
    if keep_video_audio:
        cmd += ["-map", "0:a"]
    if streams:
        cmd += ["-map", "1:a"]
    if keep_video_subtitles:  # the video file's own subtitles (same container, so copied)
        cmd += ["-map", "0:s?"]
    for j, (stream, _) in enumerate(subtitles):
        cmd += ["-map", f"{2 + j}:s:0" if cut_subtitles else f"1:s:{stream.index}"]
    if subtitles and container == "matroska":
        cmd += ["-map", "1:t?"]  # attached fonts, which styled (ASS) subtitles use
    cmd += ["-c:v", "copy", *tag_args]
    if cut_subtitles:
        cmd += cut_stream_args(subtitles)
    cmd += _audio_codec_args(container, keep_video_audio, False)
    cmd += _audio_codec_args(container, streams, cut, first_out_index=len(keep_video_audio))
    if keep_video_subtitles:
        cmd += ["-c:s", "copy"]
    for j, (_, codec) in enumerate(subtitles):
        cmd += [f"-c:s:{j}", codec]
    if container in ("mp4", "mov"):
        cmd += ["-movflags", "+faststart"]
    cmd += ["-f", container, ff_path(out_tmp)]
    what = "audio" if not subtitles else "subtitles" if not streams else "audio and subtitles"
    run_ffmpeg(cmd, f"Could not add {what} from {audio_src} to {out_tmp}")


class VideoWriter:
    """Stream frames into a video file, atomically.

    Use as a context manager::

        with VideoWriter("out.mp4", w, h, info.fps, audio_from="in.mp4") as vw:
            for frame in frames:
                vw.write(frame)

    ``write`` takes float frames in [0, 1] (values are clipped) or uint8 frames, shaped
    ``(H, W, 3)`` or ``(B, H, W, 3)``. The codec is chosen from the extension: H.264
    (``libx264``) for .mp4/.m4v/.mov/.mkv, VP9 for .webm, MJPEG for .avi, palette GIF for .gif.
    ``quality`` is the x264 CRF (0-51, lower is better); it is scaled to VP9's 0-63 CRF and to
    an MJPEG qscale, and ignored for GIF. ``pix_fmt`` defaults to ``yuv420p`` (``yuv444p`` for
    H.264 with an odd width or height, so the exact size is kept). The output rate is exactly
    ``fps`` (GIF stores centisecond delays, so GIF rates are approximate). ``sample_aspect`` and
    ``language`` (a source's :class:`VideoInfo` fields) are written into the stream, so a
    non-square-pixel source's output displays at the source's aspect (GIF has no pixel aspect), and
    ``tags`` (a source's file metadata: title, comment, creation time, ...) into the file.

    The file is written under a hidden temporary name in the same directory and moved onto
    ``path`` only when :meth:`close` succeeds. If the ``with`` block raises (or :meth:`abort` is
    called) the temporary files are deleted and an existing file at ``path`` is not touched.
    Audio and subtitles: see the module docstring (``audio_from=None`` means no audio,
    ``subtitles_from=None`` no subtitles; ``audio_start``/``audio_duration`` cut both to a segment).
    """

    def __init__(
        self,
        path: PathLike,
        width: int,
        height: int,
        fps: Fraction | int | float | str,
        quality: int = 18,
        codec: str | None = None,
        pix_fmt: str | None = None,
        *,
        audio_from: PathLike | None = None,
        audio_start: float = 0.0,
        audio_duration: float | None = None,
        preset: str = "medium",
        sample_aspect: Fraction | None = None,
        language: str | None = None,
        tags: Sequence[tuple[str, str]] = (),
        subtitles_from: PathLike | None = None,
    ):
        self.path = os.fspath(path)
        self.width, self.height = int(width), int(height)
        if self.width < 1 or self.height < 1:
            raise UserError(f"invalid output size {self.width}x{self.height}")
        if isinstance(fps, (Fraction, int, str)):
            rate = Fraction(fps)
        else:  # float-like (Python, NumPy or JAX scalar): snap to a sane rational
            rate = Fraction(float(fps)).limit_denominator(1001)
        if rate <= 0:
            raise UserError(f"invalid frame rate {fps}")
        self.fps = rate
        self.container = _container_for(self.path)
        _check_output_path(self.path)
        if audio_start < 0:
            raise UserError(f"audio start must be >= 0, got {audio_start}")
        if audio_duration is not None and audio_duration <= 0:
            raise UserError(f"audio duration must be > 0, got {audio_duration}")
        self.audio_from = os.fspath(audio_from) if audio_from is not None else None
        self.audio_start = float(audio_start)
        self.audio_duration = None if audio_duration is None else float(audio_duration)
        self._audio: tuple[AudioStreamInfo, ...] = ()
        if self.audio_from is not None and self.container != "gif":
            self._audio = audio_streams(self.audio_from)  # fail early on a bad audio source
        # Subtitles come from their own source (kept even without the audio), cut to the same segment.
        self.subtitles_from = os.fspath(subtitles_from) if subtitles_from is not None else None
        self._subtitles: list[tuple[SubtitleStreamInfo, str]] = []
        if self.subtitles_from is not None and self.container != "gif":
            segment = self.audio_start > 0 or self.audio_duration is not None
            self._subtitles = subtitle_plan(self.container, dump(self.subtitles_from).subtitles, segment)[0]
        if self._subtitles and self.audio_from is not None and self._audio \
                and os.path.abspath(self.audio_from) != os.path.abspath(self.subtitles_from):
            raise ValueError("audio_from and subtitles_from must be the same file")

        self.codec, self.pix_fmt, codec_args, vf = self._codec_settings(codec, pix_fmt, quality, preset)
        if sample_aspect is not None and Fraction(sample_aspect) != 1 and self.container != "gif":
            sar = Fraction(sample_aspect)
            if sar <= 0:
                raise UserError(f"invalid sample aspect ratio {sample_aspect}")
            vf += f",setsar=r={sar.numerator}/{sar.denominator}:max=65535"  # max: no rounding to 2 digits
        if language:  # the muxer keeps it when the audio is added (stream metadata is copied)
            codec_args = [*codec_args, "-metadata:s:v:0", f"language={language}"]
        self._tag_args = _tag_args(tags, self.container)
        codec_args = [*codec_args, *self._tag_args]
        self.frames_written = 0
        self._muxing = bool(self._audio or self._subtitles)  # a second ffmpeg pass adds them
        self._video_tmp = str(temp_path(self.path, "video" if self._muxing else "partial"))
        self._final_tmp: str | None = None
        self._closed = False
        self._errf = tempfile.TemporaryFile()
        cmd = [
            ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}",
            "-framerate", fraction_str(rate), "-i", "pipe:0",
            "-an", "-vf", vf, *codec_args, "-r", fraction_str(rate), "-fps_mode", "cfr",
        ]
        if self.container in ("mp4", "mov") and not self._muxing:
            cmd += ["-movflags", "+faststart"]
        cmd += ["-f", self.container, ff_path(self._video_tmp)]
        # A segment's subtitles are cut now, before the frames: a failure costs no work.
        self._cut_subtitles: list[str] = []
        try:
            if self._subtitles and (self.audio_start > 0 or self.audio_duration is not None):
                assert self.subtitles_from is not None
                for stream, _ in self._subtitles:
                    self._cut_subtitles.append(str(temp_path(self.path, "subtitles", suffix=".ass")))
                    write_cut_subtitles(self.subtitles_from, stream, self.audio_start, self.audio_duration,
                                        self._cut_subtitles[-1])
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._errf
            )
        except BaseException:
            for path in self._cut_subtitles:
                remove_quietly(path)
            self._errf.close()
            self._closed = True
            raise

    def _codec_settings(
        self, codec: str | None, pix_fmt: str | None, quality: int, preset: str
    ) -> tuple[str, str, list[str], str]:
        w, h = self.width, self.height
        odd = bool(w % 2 or h % 2)
        q = int(quality)
        tags_709 = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                    "-color_range", "tv"]
        yuv_vf = "scale=out_color_matrix=bt709:out_range=tv:flags=bicubic+accurate_rnd+full_chroma_int"
        c = self.container
        if c == "gif":
            vf = ("split[a][b];[a]palettegen=stats_mode=single[p];"
                  "[b][p]paletteuse=new=1:dither=sierra2_4a")
            return codec or "gif", "pal8", ["-c:v", codec or "gif", "-loop", "0"], vf
        if c == "avi" and codec in (None, "mjpeg"):
            pf = pix_fmt or "yuvj420p"
            qs = int(min(31, max(2, 1 + round(q / 9))))
            return "mjpeg", pf, ["-c:v", "mjpeg", "-q:v", str(qs), "-pix_fmt", pf], (
                f"scale=flags=bicubic+accurate_rnd+full_chroma_int,format={pf}")
        if c == "webm" and codec in (None, "libvpx-vp9"):
            pf = pix_fmt or "yuv420p"
            crf = int(min(63, max(0, round(q * 63 / 51))))
            args = ["-c:v", "libvpx-vp9", "-crf", str(crf), "-b:v", "0", "-row-mt", "1",
                    "-deadline", "good", "-cpu-used", "4", "-pix_fmt", pf, *tags_709]
            return "libvpx-vp9", pf, args, f"{yuv_vf},format={pf}"
        enc = codec or "libx264"
        if enc == "libx264rgb":
            pf = pix_fmt or "rgb24"
            args = ["-c:v", enc, "-crf", str(q), "-preset", preset, "-pix_fmt", pf]
            return enc, pf, args, f"format={pf}"
        pf = pix_fmt or ("yuv444p" if odd else "yuv420p")
        args = ["-c:v", enc, "-pix_fmt", pf, *tags_709]
        if enc in ("libx264", "libx265"):
            args += ["-crf", str(q), "-preset", preset]
        return enc, pf, args, f"{yuv_vf},format={pf}"

    # -- context manager ----------------------------------------------------------------------

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- writing ------------------------------------------------------------------------------

    def write(self, frames: Any) -> None:
        """Append one frame ``(H, W, 3)`` or a batch ``(B, H, W, 3)`` (float [0, 1] or uint8)."""
        if self._closed or self._proc is None:
            raise RuntimeError("VideoWriter is closed")
        arr = np.asarray(frames)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[1:] != (self.height, self.width, 3):
            raise ValueError(
                f"Expected frames of shape ({self.height}, {self.width}, 3) or a batch of them, "
                f"got {tuple(np.shape(frames))}"
            )
        if arr.dtype != np.uint8:
            arr = np.rint(np.clip(arr.astype(np.float32, copy=False), 0.0, 1.0) * 255.0)
            arr = arr.astype(np.uint8)
        data = np.ascontiguousarray(arr)
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write(memoryview(data).cast("B"))
        except (BrokenPipeError, OSError) as exc:
            err = self._stderr()
            self.abort()
            raise UserError(f"ffmpeg failed while writing {self.path}: {last_error_line(err)}") from exc
        self.frames_written += arr.shape[0]

    def _stderr(self) -> str:
        try:
            self._errf.seek(0)
            return self._errf.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def close(self) -> None:
        """Finish encoding, add audio, and move the result onto ``path``."""
        if self._closed:
            return
        proc = self._proc
        assert proc is not None
        try:
            try:
                assert proc.stdin is not None
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            proc.wait()
            if self.frames_written == 0:
                raise ValueError(f"No frames were written to {self.path}")
            if proc.returncode != 0:
                err = failure_reason(proc.returncode, self._stderr())
                raise UserError(f"ffmpeg failed while writing {self.path}: {err}")
            if self._muxing:
                source = self.audio_from if self._audio else self.subtitles_from
                assert source is not None
                self._final_tmp = str(temp_path(self.path, "partial"))
                _mux(
                    self._video_tmp, source, self._final_tmp, self.container,
                    self._audio, self.audio_start, self.audio_duration, tag_args=self._tag_args,
                    subtitles=self._subtitles, cut_subtitles=self._cut_subtitles,
                )
                remove_quietly(self._video_tmp)
                replace_into(self._final_tmp, self.path)
            else:
                replace_into(self._video_tmp, self.path)
        except BaseException:
            self.abort()
            raise
        finally:
            for path in self._cut_subtitles:
                remove_quietly(path)
            self._closed = True
            self._proc = None
            self._errf.close()

    def __del__(self) -> None:
        # A writer dropped without close()/abort() must not leave ffmpeg or temp files behind.
        if not getattr(self, "_closed", True):
            try:
                self.abort()
            except Exception:
                pass

    def abort(self) -> None:
        """Stop ffmpeg and delete the temporary files; ``path`` is left as it was."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            proc.wait()
        remove_quietly(self._video_tmp)
        remove_quietly(self._final_tmp)
        for path in self._cut_subtitles:
            remove_quietly(path)
        self._closed = True
        try:
            self._errf.close()
        except OSError:
            pass


def mux_audio(
    video_path: PathLike,
    audio_path: PathLike,
    out_path: PathLike,
    *,
    audio_start: float = 0.0,
    audio_duration: float | None = None,
    keep_original_audio: bool = False,
    languages: Sequence[str | None] = (),
) -> None:
    """Write ``out_path`` = the video stream of ``video_path`` plus all audio of ``audio_path``
    (``languages``: a language tag for each of those streams, e.g. the stream they were made from).

    The video stream is copied bit for bit (``-c:v copy``). By default the audio of
    ``video_path`` is replaced; with ``keep_original_audio=True`` it is kept and the new streams
    are added after it. Audio is copied where the container allows and re-encoded otherwise
    (and when ``audio_start``/``audio_duration`` cut a segment). The write is atomic, so
    ``out_path`` may be ``video_path`` itself.
    """
    vp, ap, op = os.fspath(video_path), os.fspath(audio_path), os.fspath(out_path)
    container = _container_for(op)
    if container == "gif":
        raise UserError(f"GIF files cannot carry audio: {op}")
    _check_output_path(op)
    vd = dump(vp)
    if vd.video is None:
        raise UserError(f"no video stream in {vp}")
    streams = audio_streams(ap)
    if not streams:
        raise UserError(f"no audio stream in {ap}")
    if audio_start < 0:
        raise UserError(f"audio start must be >= 0, got {audio_start}")
    if audio_duration is not None and audio_duration <= 0:
        raise UserError(f"audio duration must be > 0, got {audio_duration}")
    tmp = str(temp_path(op, "partial"))
    try:
        _mux(vp, ap, tmp, container, streams, float(audio_start),
             None if audio_duration is None else float(audio_duration),
             keep_video_audio=vd.audio if keep_original_audio else (),
             tag_args=[*_tag_args(vd.tags, container),
                       *_language_args(languages, first_out_index=len(vd.audio) if keep_original_audio else 0)],
             keep_video_subtitles=bool(vd.subtitles)
             and SUPPORTED_EXTENSIONS.get(os.path.splitext(vp)[1].lower()) == container)
        replace_into(tmp, op)
    except BaseException:
        remove_quietly(tmp)
        raise
