"""Subtitle streams of a source video, kept in its stylized output.

Which streams an output container can hold (:func:`subtitle_plan`): each muxer takes some codecs
as they are, and text subtitles (SubRip, ASS, WebVTT, MP4's mov_text) convert into the text format
it has an encoder for. Picture subtitles (DVD, Blu-ray, DVB) only copy, so MP4, MOV and WebM cannot
keep them, and AVI and GIF keep no subtitles at all.

A segment (``--start``/``--duration``) needs its subtitles cut: ffmpeg's input seeking does not
move subtitle events, so each text stream is read as ASS (ffmpeg's own subtitle model, so styling
survives), its events shifted to the segment's time, clipped to it or dropped, and the result muxed
(:func:`write_cut_subtitles`) with the stream's language, title and dispositions set again.
Picture subtitles are not cut; a segment drops them, with a note. Matroska outputs also take the
source's attachments (the fonts of styled subtitles). ffmpeg writes ASS times up to 9:59:59.99, so
events of a source past ten hours cannot be cut.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence

from ..errors import UserError
from .ffmpeg import SubtitleStreamInfo, failure_reason, ff_path, ffmpeg_exe

TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"})
_COPY_OK: dict[str, frozenset[str]] = {
    "mp4": frozenset({"mov_text"}),
    "mov": frozenset({"mov_text"}),
    "matroska": frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "dvd_subtitle", "hdmv_pgs_subtitle",
                           "dvb_subtitle"}),
    "webm": frozenset({"webvtt"}),
}
_TEXT_ENCODER = {"mp4": "mov_text", "mov": "mov_text", "matroska": "srt", "webm": "webvtt"}
# The encoder that gives a text codec back after the cut (the cut stream is ASS, not a copy).
_SAME_TEXT_ENCODER = {"subrip": "srt", "srt": "srt", "ass": "ass", "ssa": "ass", "webvtt": "webvtt",
                      "mov_text": "mov_text", "text": "srt"}


def subtitle_plan(container: str, streams: Sequence[SubtitleStreamInfo], segment: bool = False
                  ) -> tuple[list[tuple[SubtitleStreamInfo, str]], list[SubtitleStreamInfo]]:
    """Which of a source's subtitle streams an output ``container`` keeps, each with its ffmpeg
    subtitle codec ("copy" or an encoder), and which it cannot keep. ``segment``: only part of the
    source is written, so the streams are cut (text only) and re-encoded."""
    kept, dropped = [], []
    for stream in streams:
        text = stream.codec in TEXT_SUBTITLES
        if stream.codec in _COPY_OK.get(container, ()) and (text or not segment):
            kept.append((stream, _SAME_TEXT_ENCODER[stream.codec] if segment else "copy"))
        elif text and container in _TEXT_ENCODER:
            kept.append((stream, _TEXT_ENCODER[container]))
        else:
            dropped.append(stream)
    return kept, dropped


def dropped_note(source: str, output: str, container: str, streams: Sequence[SubtitleStreamInfo],
                 segment: bool = False) -> str | None:
    """One line for the user when ``output`` cannot hold some of ``source``'s subtitle streams."""
    _, dropped = subtitle_plan(container, streams, segment)
    if not dropped:
        return None
    kinds = ", ".join(sorted({s.codec for s in dropped}))
    why = ""
    if container not in ("gif", "avi") and all(s.codec in _COPY_OK["matroska"] for s in dropped):
        # picture subtitles: only Matroska holds them, and only whole (they are not cut)
        if container == "matroska":
            why = " (picture subtitles are not cut to a segment)"
        else:
            why = "; a .mkv output keeps them" + (" without --start/--duration" if segment else "")
    return f"note: {len(dropped)} subtitle stream(s) of {source} ({kinds}) cannot be stored in {output}{why}"


_ASS_TIME = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def _ass_seconds(text: str) -> float:
    m = _ASS_TIME.match(text.strip())
    if not m:
        raise ValueError(f"not an ASS time: {text!r}")
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def _ass_time(seconds: float) -> str:
    cs = max(0, round(seconds * 100))
    return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


def cut_ass(script: str, start: float, duration: float | None) -> str:
    """An ASS script's events moved ``start`` seconds earlier, clipped to ``[0, duration]``, and
    those wholly outside dropped; everything else (styles, header) unchanged."""
    out, fields = [], None
    end_of_cut = float("inf") if duration is None else duration
    for line in script.splitlines():
        key, _, rest = line.partition(":")
        if key.strip() == "Format" and fields is None and "Start" in rest:
            fields = [f.strip() for f in rest.split(",")]
        if key.strip() in ("Dialogue", "Comment") and fields is not None:  # both are timed events
            values = rest.lstrip().split(",", len(fields) - 1)
            i0, i1 = fields.index("Start"), fields.index("End")
            t0 = max(0.0, _ass_seconds(values[i0]) - start)
            t1 = min(end_of_cut, _ass_seconds(values[i1]) - start)
            if t1 <= t0:
                continue
            values[i0], values[i1] = _ass_time(t0), _ass_time(t1)
            line = f"{key}: {','.join(values)}"
        out.append(line)
    return "\n".join(out) + "\n"


def write_cut_subtitles(source: str, stream: SubtitleStreamInfo, start: float, duration: float | None,
                        path: str) -> None:
    """Write ``source``'s text subtitle ``stream`` cut to a segment as an ASS file at ``path``."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", ff_path(source),
           "-map", f"0:s:{stream.index}", "-c:s", "ass", "-f", "ass", "-"]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if res.returncode != 0:
        raise UserError(f"could not read the subtitles of {source}: "
                        f"{failure_reason(res.returncode, res.stderr.decode('utf-8', 'replace'))}")
    with open(path, "w", encoding="utf-8") as f:
        f.write(cut_ass(res.stdout.decode("utf-8", "replace"), start, duration))


def cut_stream_args(subtitles: Sequence[tuple[SubtitleStreamInfo, str]]) -> list[str]:
    """``-metadata`` and ``-disposition`` options that give each output subtitle stream its source
    stream's language, title and dispositions (default, forced), for streams muxed from a cut file
    rather than copied from the source (``-map_metadata`` would turn off the copying of every other
    stream's tags)."""
    args: list[str] = []
    for j, (stream, _) in enumerate(subtitles):
        if stream.language:
            args += [f"-metadata:s:s:{j}", f"language={stream.language}"]
        if stream.title:
            args += [f"-metadata:s:s:{j}", f"title={stream.title}"]
        args += [f"-disposition:s:{j}", "+".join(stream.dispositions) or "0"]
    return args
