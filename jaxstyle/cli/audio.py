"""``python cli.py CONTENT.wav --style-audio STYLE.wav -o OUT.wav``: stylize a sound file (see
:mod:`jaxstyle.audio`); also the sound-stylizing step of a video's ``--style-audio``."""

from __future__ import annotations

import resource
import time
from pathlib import Path

from ..audio import check_signal, stylize_audio
from ..audio.metrics import audio_metrics
from ..config import StyleConfig
from ..errors import UserError
from ..io.audio import AUDIO_EXTENSIONS, check_audio_output, read_audio, write_audio
from ..io.images import check_output_path
from ..io.files import write_json_atomic
from ..video import VideoOptions
from .common import check_metrics_path, check_output_file, claimed, default_output, log
from .flags import from_flags


def stylize_sound(content, sr: int, style_path, config: StyleConfig, what: str, quiet: bool):
    """Read the style sound at the content's rate, check both, stylize: (style, output, info)."""
    style, _ = read_audio(style_path, sample_rate=sr, channels=1, what="style audio")
    check_signal(content, sr, what)
    check_signal(style, sr, f"style audio {style_path}")
    log(f"audio: {content.shape[0] / sr:.2f} s, {sr} Hz, {content.shape[1]} channel(s); variant {config.audio.variant}")
    out, info = stylize_audio(content, style, sr, config.audio, seed=config.seed, log=None if quiet else log)
    return style, out, info


def sound_metrics(content, style, out, sr, config: StyleConfig, info, t0) -> dict:
    return {**info, **audio_metrics(content, style, out, sr, config.audio, info, seed=config.seed),
            "wall_seconds": time.perf_counter() - t0,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def audio_main(args, config: StyleConfig) -> int:
    t0 = time.perf_counter()
    content_path = Path(args.content)
    if args.style:
        raise UserError("--style takes images; give the style sound of an audio CONTENT with --style-audio")
    if not args.style_audio:
        raise UserError("an audio CONTENT needs --style-audio STYLE (a sound file)")
    style_path = Path(args.style_audio)
    output = Path(args.output) if args.output else default_output(content_path, style_path, ".wav")
    check_output_path(output, [content_path, style_path], AUDIO_EXTENSIONS)
    check_output_file(output, "output")
    check_metrics_path(args.metrics_json, [content_path, style_path, output])
    segment = from_flags(VideoOptions, args)  # --start/--duration cut a segment of the sound too
    segment.check()
    content, sr = read_audio(content_path, start=segment.start, duration=segment.duration, what="content audio")
    what = f"content audio {content_path}" + (" in the selected segment" if segment.start or segment.duration else "")
    check_signal(content, sr, what)
    check_audio_output(output, sr, content.shape[1])
    with claimed(output):
        style, out, info = stylize_sound(content, sr, style_path, config, what, args.quiet)
        # (the metrics take seconds: computed before the output appears, so that an interrupt while
        # they run leaves no output behind an exit 130)
        metrics = sound_metrics(content, style, out, sr, config, info, t0) if args.metrics_json else None
        write_audio(output, out, sr)
        if metrics is not None:
            metrics.update(start=segment.start, duration=segment.duration)
            write_json_atomic(args.metrics_json, {**metrics, "content": str(content_path),
                                                  "style_audio": str(style_path), "output": str(output)})
    log(f"wrote {output} ({out.shape[0]} samples, {sr} Hz, {out.shape[1]} channel(s)) in {info['seconds']:.1f} s")
    return 0
