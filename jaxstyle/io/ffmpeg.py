"""The ffmpeg binary that imageio-ffmpeg ships (never a system ffmpeg, no ffprobe), shared by the
video and audio I/O: its path, safe file arguments, the parsed stream dump of ``ffmpeg -i``, its
error lines, and hidden temporary names beside an output.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..errors import UserError

PathLike = str | os.PathLike[str]


def ffmpeg_exe() -> str:
    """Path of imageio-ffmpeg's bundled ffmpeg binary (imported here, where ffmpeg is needed: the
    rest of the package runs without it, as on the accelerator machine of benchmarks/device_check.sh)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ff_path(path: PathLike) -> str:
    """An absolute ``file:`` URL so names with ':' or a leading '-' are never misread."""
    return "file:" + os.path.abspath(os.fspath(path))


def fraction_str(rate: Fraction) -> str:
    return f"{rate.numerator}/{rate.denominator}"


@dataclass(frozen=True)
class AudioStreamInfo:
    """One audio stream of a file, as ffmpeg reports it."""

    index: int  #: index among the file's audio streams (``0:a:index``)
    codec: str  #: ffmpeg codec name, e.g. "aac", "opus", "pcm_s16le"
    sample_rate: int  #: Hz (0 if unknown)
    channels: int  #: channel count (0 if unknown)
    layout: str  #: channel layout as printed, e.g. "mono", "stereo", "5.1(side)"
    language: str | None = None  #: ISO 639 tag, if it has one


@dataclass(frozen=True)
class SubtitleStreamInfo:
    """One subtitle stream of a file, as ffmpeg reports it."""

    index: int  #: index among the file's subtitle streams (``0:s:index``)
    codec: str  #: ffmpeg codec name, e.g. "subrip", "mov_text", "hdmv_pgs_subtitle"
    language: str | None = None  #: ISO 639 tag, if it has one
    title: str | None = None  #: the stream's title, e.g. "English SDH"
    dispositions: tuple[str, ...] = ()  #: of "default", "forced", "hearing_impaired"


@dataclass(frozen=True)
class MediaDump:
    """Parsed ``ffmpeg -i`` stream dump (no frame counting)."""

    container: str
    duration: float | None
    video: dict[str, Any] | None
    audio: tuple[AudioStreamInfo, ...]
    tags: tuple[tuple[str, str], ...] = ()  #: the file's own metadata (title, comment, ...), in order
    subtitles: tuple[SubtitleStreamInfo, ...] = ()


def _file_tags(dump_text: str) -> tuple[tuple[str, str], ...]:
    """The ``Metadata:`` block of ``Input #0`` (the file's, not a stream's): ``key : value`` lines,
    a value's further lines printed as ``: more``."""
    lines = dump_text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Input #0")), None)
    if start is None or start + 1 >= len(lines) or lines[start + 1].strip() != "Metadata:":
        return ()
    tags: list[list[str]] = []
    for line in lines[start + 2:]:
        if not line.startswith("    "):  # back at the input's level ("  Duration: ...")
            break
        more = re.match(r"^ {4}\s*: ?(.*)$", line)
        if more and tags:
            tags[-1][1] += "\n" + more.group(1)
            continue
        kv = re.match(r"^ {4}([^ :][^:]*?)\s*: ?(.*)$", line)
        if kv:
            tags.append([kv.group(1), kv.group(2)])
    return tuple((k, v) for k, v in tags)


def _split_fields(text: str) -> list[str]:
    """Split on commas that are not inside parentheses or brackets."""
    fields: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            fields.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if cur:
        fields.append("".join(cur).strip())
    return fields


_LAYOUT_CHANNELS = {
    "mono": 1,
    "stereo": 2,
    "downmix": 2,
    "quad": 4,
    "hexagonal": 6,
    "octagonal": 8,
    "hexadecagonal": 16,
    "22.2": 24,
}


def _layout_channels(layout: str) -> int:
    base = layout.split("(")[0].strip()
    if base in _LAYOUT_CHANNELS:
        return _LAYOUT_CHANNELS[base]
    m = re.fullmatch(r"(\d+) channels?", base)
    if m:
        return int(m.group(1))
    m = re.fullmatch(r"(\d+)\.(\d+)", base)
    if m:
        return int(m.group(1)) + int(m.group(2))
    return 0


def failure_reason(returncode: int, stderr: str) -> str:
    """Why an ffmpeg run failed: its most informative error line, or the signal that killed it
    (SIGXFSZ: the file-size limit, as a full disk)."""
    if returncode < 0:
        if returncode == -signal.SIGXFSZ:
            return "the file is larger than allowed"
        return f"ffmpeg was killed by {signal.Signals(-returncode).name}"
    return last_error_line(stderr)


def check_not_cut_short(path: PathLike, stderr: str, readable: str = "") -> None:
    """ffmpeg read an MP4/MOV whose index (written first) names more data than the file holds: a
    cut download or a recording that stopped. It reads on without failing, so the run's stderr is
    the only sign; refuse the file rather than stylize part of it unawares."""
    if "partial file" in stderr:
        raise UserError(f"{os.fspath(path)} is cut short (damaged, or still being written): its index names more "
                        f"data than the file holds{readable}")


def last_error_line(stderr: str, fallback: str = "ffmpeg failed") -> str:
    """The most informative line of ffmpeg's stderr, without ``[demuxer @ 0x...]`` prefixes."""
    lines = [re.sub(r"^(\[[^\]]*\]\s*)+", "", ln).strip() for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln]
    for ln in reversed(lines):
        m = re.match(r"Error opening (?:input|output) files?: (.+)", ln)
        if m:
            return m.group(1)
    for ln in reversed(lines):
        low = ln.lower()
        if any(w in low for w in ("error", "invalid", "could not", "no such", "failed", "denied")):
            return ln
    return lines[-1] if lines else fallback


def check_readable(path: PathLike, what: str = "video file") -> str:
    p = os.fspath(path)
    if not os.path.exists(p):
        raise UserError(f"{what} not found: {p}")
    if os.path.isdir(p):
        raise UserError(f"{what} is a directory, not a file: {p}")
    if not os.access(p, os.R_OK):
        raise UserError(f"{what} is not readable (permission denied): {p}")
    if os.path.getsize(p) == 0:
        raise UserError(f"{what} is empty (0 bytes): {p}")
    return p


def dump(path: PathLike, what: str = "video file") -> MediaDump:
    """Run ``ffmpeg -i path`` and parse the stream dump it prints."""
    p = check_readable(path, what)
    try:
        res = subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", ff_path(p)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    except subprocess.TimeoutExpired as exc:
        raise UserError(f"timed out reading {p}") from exc
    err = res.stderr.decode("utf-8", "replace")
    m = re.search(r"^Input #0, (.+?), from ", err, re.M)
    if not m:
        raise UserError(
            f"cannot read {p}: not a readable video or image ({last_error_line(err)})"
        )
    container = m.group(1)
    duration: float | None = None
    dm = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", err)
    if dm:
        duration = int(dm.group(1)) * 3600 + int(dm.group(2)) * 60 + float(dm.group(3))

    video: dict[str, Any] | None = None
    audio: list[AudioStreamInfo] = []
    subtitles: list[SubtitleStreamInfo] = []
    stream_re = re.compile(
        r"^\s*Stream #0:(\d+)(?:\[[^\]]*\])?(?:\(([^)]*)\))?: (Video|Audio|Subtitle|Data|Attachment): (.*)$"
    )
    in_video = in_subtitle = False
    for line in err.splitlines():
        sm = stream_re.match(line)
        if sm:
            in_video = in_subtitle = False
            language, kind, rest = sm.group(2), sm.group(3), sm.group(4)
            language = language if language and language != "und" else None  # ("und": no tag)
            fields = _split_fields(rest)
            codec = fields[0].split()[0] if fields and fields[0] else "unknown"
            if kind == "Video" and video is None and "(attached pic)" not in rest:
                width = height = 0
                pix_fmt = ""
                fps_txt = tbr_txt = None
                sample_aspect = Fraction(1)
                for i, f in enumerate(fields[1:], start=1):
                    size = re.match(r"(\d+)x(\d+)", f)
                    if size and not width:
                        width, height = int(size.group(1)), int(size.group(2))
                    elif i == 1:
                        pix_fmt = re.match(r"[A-Za-z0-9_]*", f).group(0)  # type: ignore[union-attr]
                    # "32x24 [SAR 128:117 DAR 1408:1053]" or a field of its own, "SAR 35:32 DAR 35:24"
                    sar = re.search(r"\bSAR (\d+):(\d+)", f)
                    if sar and width and int(sar.group(1)) > 0 and int(sar.group(2)) > 0:  # 0:1: unknown
                        sample_aspect = Fraction(int(sar.group(1)), int(sar.group(2)))
                    fm = re.fullmatch(r"([\d.]+k?) fps", f)
                    if fm:
                        fps_txt = fm.group(1)
                    tm = re.fullmatch(r"([\d.]+k?) tbr", f)
                    if tm:
                        tbr_txt = tm.group(1)
                video = {
                    "codec": codec,
                    "pix_fmt": pix_fmt,
                    "width": width,
                    "height": height,
                    "fps": fps_txt,
                    "tbr": tbr_txt,
                    "rotation": 0.0,
                    "sample_aspect": sample_aspect,  # the pixels' width over their height
                    "language": language,
                }
                in_video = True
            elif kind == "Audio":
                rate = 0
                layout = ""
                for i, f in enumerate(fields):
                    hz = re.fullmatch(r"(\d+) Hz", f)
                    if hz:
                        rate = int(hz.group(1))
                        if i + 1 < len(fields):
                            layout = fields[i + 1]
                        break
                audio.append(
                    AudioStreamInfo(
                        index=len(audio),
                        codec=codec,
                        sample_rate=rate,
                        channels=_layout_channels(layout),
                        layout=layout,
                        language=language,
                    )
                )
            elif kind == "Subtitle":
                flags = tuple(name.replace(" ", "_") for name in ("default", "forced", "hearing impaired")
                              if f"({name})" in rest)
                subtitles.append(SubtitleStreamInfo(len(subtitles), codec,
                                                    language,
                                                    dispositions=flags))
                in_subtitle = True
            continue
        if in_subtitle:  # the stream's own Metadata block follows its line
            tm = re.match(r"^\s+title\s*: (.*)$", line)
            if tm:
                subtitles[-1] = dataclasses.replace(subtitles[-1], title=tm.group(1).strip())
        if in_video and video is not None:
            rm = re.search(r"rotation of (-?[\d.]+) degrees", line)
            if rm:
                video["rotation"] = float(rm.group(1))
    return MediaDump(container=container, duration=duration, video=video, audio=tuple(audio), tags=_file_tags(err),
                     subtitles=tuple(subtitles))


def audio_streams(path: PathLike) -> tuple[AudioStreamInfo, ...]:
    """The audio streams of any media file (video or audio-only); empty if it has none."""
    return dump(path, "Media file").audio


def remove_quietly(path: str | None) -> None:
    if path:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def run_ffmpeg(cmd: list[str], what: str) -> None:
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if res.returncode != 0:
        raise UserError(f"{what}: {failure_reason(res.returncode, res.stderr.decode('utf-8', 'replace'))}")


