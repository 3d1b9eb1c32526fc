"""``python cli.py IN --model MODEL_DIR -o OUT``: an image or a video through a trained network (one
pass per frame), and ``--init network``: the optimizer's warm start from the network's output."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import imaging
from ..api import model_conditioning
from ..config import StyleConfig
from ..errors import UserError, counted
from ..feedforward import Model, load_model
from ..feedforward.video import stylize_video_with_model
from ..imaging import target_size
from ..io.audio import is_audio
from ..io.files import write_json_atomic
from ..io.images import check_output_path, read_image, write_image
from ..io.video import VIDEO_OUTPUT_EXTENSIONS, is_video_content, probe
from ..video import VideoOptions
from .common import (check_frames_dir, check_metrics_path, check_output_file, claimed, finish_frames_dir, log,
                     note_dropped_streams, staged_frames)
from .flags import from_flags
from .image import image_main
from .video import check_video_style_audio, video_main, with_stylized_sound


def _default_output(content: Path, model_dir: Path, suffix: str) -> Path:
    Path("outputs").mkdir(exist_ok=True)
    return Path("outputs") / f"{content.stem}_{model_dir.name}{suffix}"


def check_model_use(args, config: StyleConfig, model: Model) -> None:
    """What the command asks of the network fits it (the styles it needs, the blend it allows)."""
    if config.init == "network":
        if not args.style:
            raise UserError("--init network optimizes toward --style STYLE: give the style image(s)")
        return
    if model.spec.kind == "styles" and args.style:
        raise UserError(f"the model {args.model} has its styles built in ({len(model.styles)}): blend them with "
                        "--style-mix instead of --style (or add --init network to optimize toward --style)")
    if model.spec.kind == "predicted" and len(args.style or []) != 1:
        raise UserError(f"the model {args.model} predicts a style from one --style STYLE image: give exactly one")
    if args.style_mix is not None:
        model.mix(args.style_mix)


def check_model_content(content_path) -> None:
    """A sound file is not the network's: said first, before any flag is judged against it."""
    if is_audio(content_path):
        raise UserError(f"--model stylizes images and videos, not sound: {content_path} is audio "
                        "(stylize it with --style-audio instead)")


def model_main(args, config: StyleConfig, model: Model | None = None) -> int:
    """``model``: the network of ``--model``, when the caller (a batch job) has loaded it already."""
    model = model or load_model(args.model)
    content_path = Path(args.content)
    if not content_path.is_file():
        raise UserError(f"{content_path} does not exist" if not content_path.exists() else f"{content_path} is not a file")
    check_model_content(content_path)
    check_model_use(args, config, model)
    if args.style_audio and not is_video_content(content_path):
        raise UserError("--style-audio stylizes a video's sound: give a video with sound as CONTENT")
    styles = [read_image(p) for p in (args.style or [])]
    if config.init == "network":  # the optimizer, from the network's output
        cond = model_conditioning(model, args.style_mix, styles[0] if model.spec.kind == "predicted" else None,
                                  config)

        def warm_start(frames: np.ndarray) -> np.ndarray:
            return model.stylize(frames, cond, frames_per_device=config.frames_per_device)

        return video_main(args, config, warm_start) if is_video_content(content_path) else image_main(args, config, warm_start)
    cond = model_conditioning(model, args.style_mix, styles[0] if styles else None, config)
    if is_video_content(content_path):
        return _video(args, config, model, cond, content_path)
    return _image(args, config, model, cond, content_path)


def _image(args, config: StyleConfig, model: Model, cond: np.ndarray, content_path: Path) -> int:
    output = Path(args.output) if args.output else _default_output(content_path, Path(args.model), ".png")
    check_output_path(output, [content_path, *(args.style or [])])
    check_output_file(output, "output")
    check_metrics_path(args.metrics_json, [content_path, output])
    content = read_image(content_path)
    h, w = target_size(content.shape[0], content.shape[1], config.size)
    with claimed(output):
        image = model.stylize(imaging.resize(content, h, w)[None], cond)[0]
        write_image(output, image)
        if args.metrics_json:
            write_json_atomic(args.metrics_json, {"content": str(content_path), "model": str(args.model),
                                                  "output": str(output), "size": [h, w]})
    log(f"wrote {output} ({w}x{h}) with the network {args.model}")
    return 0


def _video(args, config: StyleConfig, model: Model, cond: np.ndarray, content_path: Path) -> int:
    options = from_flags(VideoOptions, args)
    options.check()
    output = Path(args.output) if args.output else _default_output(content_path, Path(args.model), ".mp4")
    check_output_path(output, [content_path, *(args.style or [])], VIDEO_OUTPUT_EXTENSIONS, temp_depth=2)
    check_output_file(output, "output")
    check_metrics_path(args.metrics_json, [content_path, output])
    probe(content_path)
    if options.frames_dir:
        check_frames_dir(options.frames_dir, [content_path, *(args.style or [])])
    if args.style_audio:
        check_video_style_audio(args, content_path, output, options)
    note_dropped_streams(content_path, output, options.audio and not args.style_audio,
                         bool(options.start or options.duration))

    frames_to = None  # (the staging folder of --frames-dir, once claimed)

    def frames(path: Path, audio: bool = False) -> dict:
        return stylize_video_with_model(model, cond, content_path, path, size=config.size,
                                        frames_per_device=config.frames_per_device, start=options.start,
                                        duration=options.duration, audio=audio, quality=options.quality,
                                        frames_dir=frames_to, progress=not args.quiet,
                                        carry=config.video.carry, flow=config.video.flow,
                                        scene_cuts=config.video.scene_cuts)

    with claimed(output, *([options.frames_dir] if options.frames_dir else [])):
        with staged_frames(options.frames_dir) as frames_to:
            metrics = with_stylized_sound(args, content_path, output, options, config, frames) if args.style_audio \
                else frames(output, audio=options.audio)
        if options.frames_dir:
            finish_frames_dir(options.frames_dir, metrics["frames"])
        if args.metrics_json:
            write_json_atomic(args.metrics_json, {**metrics, "content": str(content_path), "model": str(args.model),
                                                  "output": str(output), "start": options.start,
                                                  "duration": options.duration, "style_mix": args.style_mix})
    steadiness = "" if not config.video.carry else "; no frame pair to measure e_stab on" \
        if metrics["stability_error"] is None else f"; e_stab {metrics['stability_error']:.4f} carried"
    log(f"wrote {output}: {counted(metrics['frames'], 'frame')} in {metrics['wall_seconds']:.1f} s "
        f"({metrics['frames_per_second']:.2f} frames/s; the network alone {metrics['network_frames_per_second']:.1f}"
        f" frames/s on {metrics['devices']} device(s){steadiness})")
    return 0
