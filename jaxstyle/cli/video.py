"""``python cli.py IN.mp4 --style STYLE.jpg -o OUT.mp4``: stylize a video (see :mod:`jaxstyle.video`),
optionally with its sound track stylized by ``--style-audio`` and muxed in."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Callable

import jax
import numpy as np

from .. import schedules
from ..audio import check_signal
from ..config import INIT_WORDS, StyleConfig
from ..errors import UserError, counted
from ..imaging import target_size
from ..io.audio import read_audio, write_audio
from ..io.ffmpeg import audio_streams
from ..io.files import check_output_dir, temp_path, write_json_atomic
from ..io.images import check_output_path, read_image
from ..io.video import VIDEO_OUTPUT_EXTENSIONS, expected_frame_count, is_video, mux_audio, probe
from ..api import network_for
from ..video import Processes, VideoJob, VideoOptions, frames_at_once, stylize_video
from ..video.source import load_content_mask
from .audio import sound_metrics, stylize_sound
from .common import (check_frames_dir, check_memory, check_metrics_path, check_output_file, claimed,
                     default_output, finish_frames_dir, log, note_dropped_streams, note_tiled_iterations,
                     staged_frames)
from .flags import from_flags


def check_video_style_audio(args, content_path: Path, output: Path, options: VideoOptions) -> None:
    """Fail early: --style-audio on a video needs a sound track long enough in the segment, and a
    readable style sound."""
    if not options.audio:
        raise UserError("--style-audio and --no-audio contradict each other")
    if output.suffix.lower() == ".gif":
        raise UserError("a GIF output cannot carry the stylized audio; choose .mp4, .mkv, .mov, .webm or .avi")
    if not audio_streams(content_path):
        raise UserError(f"--style-audio: the video {content_path} has no audio stream")
    style_path = Path(args.style_audio)
    if os.path.realpath(style_path) == os.path.realpath(output):
        raise UserError(f"output {output} is the same file as the input {style_path}; choose another output path")
    style, sr = read_audio(style_path, channels=1, what="style audio")
    check_signal(style, sr, f"style audio {style_path}")
    sound, sr = read_audio(content_path, start=options.start, duration=options.duration, what="video")
    check_signal(sound, sr, f"the audio of {content_path} in the selected segment")


def stylize_video_and_audio(job: VideoJob, network, args) -> dict:
    """The optimizer's frames, then the sound (:func:`with_stylized_sound`)."""
    def frames(path: Path) -> dict:
        options = dataclasses.replace(job.options, audio=False, work_dir=str(job.work_path))
        return stylize_video(dataclasses.replace(job, output=path, options=options), network, log=log)

    return with_stylized_sound(args, job.input, job.output, job.options, job.config, frames,
                               first_process=job.processes.process_id == 0)


def with_stylized_sound(args, content: Path, output: Path, options: VideoOptions, config: StyleConfig,
                        stylize_frames: Callable[[Path], dict], first_process: bool = True) -> dict:
    """``stylize_frames(path)`` writes the frames (no audio) into a hidden file; then the first audio
    stream of the segment is stylized into a wav and both are muxed into ``output`` (video copied).
    The optimizer's video job and a trained network's pass share it."""
    frames_tmp = temp_path(output, "frames")
    sound_tmp = temp_path(output, "audio", suffix=".wav")
    try:
        metrics = stylize_frames(frames_tmp)
        if not first_process:
            return metrics
        t0 = time.perf_counter()
        sound, sr = read_audio(content, start=options.start, duration=options.duration, what="video")
        style, out, info = stylize_sound(sound, sr, args.style_audio, config, f"the audio of {content}", args.quiet)
        if args.metrics_json:  # (before the output appears: they take seconds, see audio_main)
            metrics = {**metrics, "audio": sound_metrics(sound, style, out, sr, config, info, t0)}
            metrics["audio"]["style_audio"] = str(args.style_audio)
        write_audio(sound_tmp, out, sr)
        mux_audio(frames_tmp, sound_tmp, output, languages=[audio_streams(content)[0].language])
        return metrics
    finally:
        for tmp in (frames_tmp, sound_tmp):
            if tmp.exists():
                tmp.unlink()


_DISTRIBUTED: list[Processes] = []  # set once jax.distributed runs (a batch job's video items reuse it)


def init_distributed(processes: Processes) -> Processes:
    """jax.distributed for multi-host runs: explicit flags, or a detected TPU pod environment.
    Once it runs, later calls (the items of a batch job, each a job of this process alone) return
    ``processes`` unchanged."""
    if _DISTRIBUTED:
        return processes
    processes = _start_distributed(processes)
    if processes.num_processes > 1:
        _DISTRIBUTED.append(processes)
    return processes


def _start_distributed(processes: Processes) -> Processes:
    # JAX's preemption service would take SIGTERM over (its own C++ handler, which only notes it):
    # a multi-host job ends on SIGTERM as on Ctrl-C, every process with its one line
    jax.config.update("jax_enable_preemption_service", False)
    if processes.coordinator:
        if not (0 <= processes.process_id < processes.num_processes):
            raise UserError(f"--process-id must be in [0, {processes.num_processes})")
        jax.distributed.initialize(coordinator_address=processes.coordinator, num_processes=processes.num_processes,
                                   process_id=processes.process_id)
    elif "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""):
        jax.distributed.initialize()
        return dataclasses.replace(processes, num_processes=jax.process_count(), process_id=jax.process_index())
    elif processes.num_processes != 1:
        raise UserError("--num-processes needs --coordinator HOST:PORT")
    return processes


def video_main(args, config: StyleConfig, warm_start: Callable[[np.ndarray], np.ndarray] | None = None) -> int:
    """``warm_start`` (--init network): frames -> the trained network's output, every frame's initial image."""
    if config.init == "network" and warm_start is None:
        raise UserError("--init network starts from a trained network's output: give its --model MODEL_DIR")
    options, processes = from_flags(VideoOptions, args), from_flags(Processes, args)
    options.check()
    content_path = Path(args.content)
    style_paths = [Path(s) for s in args.style]
    output = Path(args.output) if args.output else default_output(content_path, style_paths[0], ".mp4")
    masks = [Path(config.content_mask), *map(Path, config.style_mask)] if config.content_mask else []
    masks += [] if config.init in INIT_WORDS else [Path(config.init)]  # (an --init image: an input too)
    check_output_path(output, [content_path, *style_paths, *masks], VIDEO_OUTPUT_EXTENSIONS, temp_depth=2)
    check_output_file(output, "output")
    if not content_path.is_file():
        raise UserError(f"{content_path} does not exist" if not content_path.exists() else f"{content_path} is not a file")
    info = probe(content_path)
    style_images = [probe(style) if is_video(style) else read_image(style) for style in style_paths]
    if config.content_mask is not None:  # (its size and colours, before any work)
        if any(is_video(style) for style in style_paths):
            raise UserError("semantic masks cannot be combined with a style video")
        load_content_mask(config, info, style_images, options.start, options.duration)
    if options.frames_dir:
        check_frames_dir(options.frames_dir, [content_path, *style_paths, *masks])
    check_metrics_path(args.metrics_json, [content_path, *style_paths, output])
    job = VideoJob(content_path, style_paths, output, config, options, processes, progress=not args.quiet,
                   warm_start=warm_start)
    check_output_dir(job.work_path, "--work-dir")
    if options.frames_dir:
        frames, work = os.path.realpath(options.frames_dir), os.path.realpath(job.work_path)
        if frames == work or frames.startswith(work + os.sep):
            raise UserError(f"--frames-dir {options.frames_dir} is inside the work directory {job.work_path}, which "
                            "jaxstyle clears on a fresh run and removes when the video is done; choose a --frames-dir "
                            "outside it")
    if args.style_audio:
        check_video_style_audio(args, content_path, output, options)
    note_dropped_streams(content_path, output, options.audio and not args.style_audio,
                         bool(options.start or options.duration))
    # jax.distributed starts before anything asks JAX for its devices
    job = dataclasses.replace(job, processes=init_distributed(processes))
    processes = job.processes
    h, w = target_size(info.height, info.width, config.size)
    schedules.check_frame_size(h, w, (info.height, info.width))
    note_tiled_iterations(args, config, h, w)
    n_frames = max(1, expected_frame_count(info, options.start, options.duration))
    check_memory(config, h, w, frames=frames_at_once(n_frames, config, len(jax.local_devices()), processes.num_processes))
    # process 0 writes the output; every process shares the work directory
    # (--frames-dir too: a second job writing into it would overwrite and remove this one's frames)
    held = (output, job.work_path, *([options.frames_dir] if options.frames_dir else []))
    with claimed(*(held if processes.process_id == 0 else ())):
        network = network_for(config)
        schedules.check_network(config, network)
        log(f"network: {network.describe()}; devices: {len(jax.local_devices())} x {jax.devices()[0].platform}"
            f" (process {processes.process_id + 1} of {processes.num_processes})")
        # (process 0 writes the frames: into a staging folder that replaces --frames-dir's on success)
        with staged_frames(options.frames_dir if processes.process_id == 0 else None) as frames_to:
            staged = dataclasses.replace(job, options=dataclasses.replace(options, frames_dir=frames_to))
            metrics = stylize_video_and_audio(staged, network, args) if args.style_audio else \
                stylize_video(staged, network, log=log)
        if options.frames_dir and processes.process_id == 0:
            finish_frames_dir(options.frames_dir, metrics["frames"])
        if args.metrics_json and processes.process_id == 0:
            write_json_atomic(args.metrics_json, {**metrics, "content": str(content_path),
                                                  "styles": [str(p) for p in style_paths], "output": str(output)})
    if processes.process_id == 0:
        steadiness = "no frame pair to measure stability on" if metrics["stability_error"] is None else \
            f"stability error {metrics['stability_error']:.4f}"
        rate = f"resumed at step {metrics['resumed_at_step']}" if metrics.get("frames_per_second") is None \
            else f"{metrics['frames_per_second']:.2f} frames/s"
        log(f"wrote {output}: {counted(metrics['frames'], 'frame')} in {metrics['wall_seconds']:.1f} s ({rate}), "
            f"{steadiness}")
    return 0
