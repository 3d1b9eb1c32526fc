"""A video job: many frames at once, temporally consistent, audio kept, resumable.

:func:`stylize_video` runs the parts in order: the work directory is made this run's
(:mod:`.workdir`), mask labels are decoded, pass 1 runs the lanes (:mod:`.lanes`), passes 2.. refine
(:mod:`.refine`), and process 0 assembles the output at the input's exact size and frame rate with
its audio (:mod:`.assemble`). Frames stream from ffmpeg (:mod:`.source`); flows are cached per
frame pair in the work directory (:mod:`.flow`).

Flow: OpenCV DIS (``medium`` preset) between content frames at the working size. Masks:
forward-backward consistency and motion boundaries (Ruder et al.), see
:func:`jaxstyle.video.flow.consistency_mask`.

Style videos: ``--style`` may be a video: frame t uses the style frame at the same time, looped when
the style video is shorter, and its Gram target is the average over ``style_window`` style frames
around it (the style video is read at the content's working size once and held in memory).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from ..config import StyleConfig, setting
from ..errors import UserError, counted
from ..hosts import broadcast_from_first, check_same_inputs, file_digest
from ..nets.vgg import Network
from .assemble import assemble
from .cuts import Cuts, detect_cuts
from .flow import FlowCache
from .joins import write_joined
from .lanes import Lane, plan_lanes, run_lanes, snap_to_cuts
from .refine import refine
from .source import VideoSource
from .workdir import WorkDir


@dataclass(frozen=True)
class VideoOptions:
    """How a video job reads and writes (not part of what it computes, so not of its fingerprint)."""

    frames_dir: str | None = setting(None, "also write the output frames as PNGs into DIR (frame_000000.png, ...; "
                                        "frame PNGs numbered past this video's, from an earlier run, are removed at the end)",
                                        metavar="DIR")
    start: float = setting(0.0, "process a segment (of a video or a sound file) starting here", metavar="SEC")
    duration: float | None = setting(None, "length of the segment to process (a video or a sound file)", metavar="SEC")
    audio: bool = setting(True, "drop the audio (by default every audio stream is kept)", flag="--no-audio")
    quality: int = setting(18, "H.264 CRF, lower is better", metavar="CRF")
    resume: bool = setting(False, "continue an interrupted run from its checkpoints")
    work_dir: str | None = setting(None, "where finished frames and checkpoints go (default: beside the output)",
                                   metavar="DIR")
    keep_work: bool = setting(False, "keep the work directory after success")

    def check(self) -> None:
        if not (math.isfinite(self.start) and self.start >= 0):
            raise UserError(f"--start must be a time >= 0 in seconds, not {self.start}")
        if self.duration is not None and not (math.isfinite(self.duration) and self.duration > 0):
            raise UserError(f"--duration must be a time > 0 in seconds, not {self.duration}")
        if not 0 <= self.quality <= 51:
            raise UserError(f"--quality must be an H.264 CRF from 0 (lossless) to 51, not {self.quality}")


@dataclass(frozen=True)
class Processes:
    """Multi-host runs: the processes of one job (``jax.distributed``)."""

    coordinator: str | None = setting(None, "multi-host: address of process 0 (jax.distributed)", metavar="HOST:PORT")
    num_processes: int = setting(1, "multi-host: number of processes", metavar="N")
    process_id: int = setting(0, "multi-host: this process's index", metavar="I")


@dataclass
class VideoJob:
    input: Path
    styles: list[Path]
    output: Path
    config: StyleConfig
    options: VideoOptions = field(default_factory=VideoOptions)
    processes: Processes = field(default_factory=Processes)
    progress: bool = True
    # --init network: frames [B, H, W, 3] -> the trained network's output, every frame's initial image
    warm_start: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def work_path(self) -> Path:
        return Path(self.options.work_dir) if self.options.work_dir else \
            self.output.with_name(f".{self.output.name}.jaxstyle-work")


def _config_record(config) -> dict:
    """The settings that decide the optimizer's frames: ``video.carry`` is the trained network's
    (always 0 here), left out so that work directories from before it existed still resume."""
    record = dataclasses.asdict(config)
    record["video"].pop("carry", None)
    return record


def _fingerprint(job: VideoJob, source: VideoSource, network: Network, lanes) -> dict:
    """What a work directory belongs to: ``--resume`` needs the same (the same command, and inputs
    of the same content: the digests, not the times, so that every host's own copy agrees)."""
    return {"input": str(job.input.resolve()), "input_digest": file_digest(job.input),
            "styles": [str(p.resolve()) for p in job.styles], "style_digests": [file_digest(p) for p in job.styles],
            "config": _config_record(job.config),
            "start": job.options.start, "duration": job.options.duration, "network": network.sha256,
            "lanes": [dataclasses.astuple(lane) for lane in lanes], "frames": source.n_frames,
            "work_size": [source.height, source.width], "processes": job.processes.num_processes}


def frames_at_once(n_frames: int, cfg, n_devices: int, num_processes: int) -> int:
    """The most frames one step of a process stylizes together (what its memory must hold): its
    lanes (a short clip gets fewer than asked), or a refinement pass's batch."""
    lanes = 1 if cfg.video.sequential else len(plan_lanes(n_frames, cfg.frames_per_device * n_devices * num_processes,
                                                          cfg.video.overlap))
    at_once = -(-lanes // num_processes)
    if cfg.video.passes > 1:
        at_once = max(at_once, min(cfg.frames_per_device * n_devices, -(-n_frames // num_processes)))
    return at_once


def plan_job_lanes(n_frames: int, cfg, n_devices: int, procs: Processes) -> tuple[list[Lane], list[Lane]]:
    """All lanes of a job, and this process's share of them."""
    n_lanes = 1 if cfg.video.sequential else cfg.frames_per_device * n_devices * procs.num_processes
    lanes = plan_lanes(n_frames, n_lanes, cfg.video.overlap)
    if len(lanes) < procs.num_processes:
        raise UserError(f"the clip gives {len(lanes)} lane(s) for {procs.num_processes} processes, and every "
                        "process needs one: use fewer processes or a longer segment"
                        + (" (--sequential is one lane)" if cfg.video.sequential else ""))
    # balanced: the processes' lane counts differ by at most one
    bounds = [len(lanes) * p // procs.num_processes for p in range(procs.num_processes + 1)]
    return lanes, lanes[bounds[procs.process_id]:bounds[procs.process_id + 1]]


def agreed_cuts(cuts: Cuts, n_frames: int, procs: Processes) -> Cuts:
    """Process 0's cuts on every process: each computes its own flows, and lanes planned on
    different cuts would run different programs."""
    marks = np.zeros(n_frames, np.int8)
    marks[cuts.frames] = 1
    agreed = broadcast_from_first(marks, procs.num_processes)
    return dataclasses.replace(cuts, frames=[int(t) for t in np.flatnonzero(agreed)])


def run_passes(source: VideoSource, work: WorkDir, flows: FlowCache, cfg, network: Network, devices,
               lanes: list[Lane], my_lanes: list[Lane], cuts: Cuts, *, resume: bool = False,
               progress: bool = False, log=print) -> dict:
    """Pass 1 (this process's lanes) and the refinement passes; the frames go to ``work``, the
    statistics of the lanes are returned."""
    stats = run_lanes(source, work, flows, cfg, network, devices, lanes, my_lanes, resume=resume,
                      progress=progress, log=log, cuts=cuts) if my_lanes else \
        {"iterations_first": 0, "iterations_later": 0, "steps": 0, "compile_seconds": 0.0}
    work.barrier("pass1")
    if cfg.video.passes > 1:  # the refinement passes start from pass 1's joined frames
        if work.process_id == 0:
            write_joined(source, work, flows, cfg, lanes, cuts)
        work.barrier("joined")
    for p in range(2, cfg.video.passes + 1):
        refine(source, work, flows, cfg, network, devices, p, cuts)
        work.barrier(f"pass{p}")
    return stats


def iterations_per_frame(stats: dict, lanes: list[Lane], cuts: Cuts, n_frames: int, cfg) -> float | None:
    """The optimizer iterations actually spent, overlap frames included, per output frame (None after
    a --resume that ran no first frame or no later frame of its own: their iterations are unknown)."""
    restarts = sum(1 for lane in lanes for c in cuts.frames if lane.start < c < lane.stop)  # lanes restarted at a cut
    firsts = len(lanes) - stats.get("anchored_lanes", 0) + restarts  # (an anchored start costs a later frame's)
    later = sum(lane.length for lane in lanes) - firsts
    if stats.get("resumed_at_step") and ((firsts and not stats["iterations_first"])
                                         or (later and not stats["iterations_later"])):
        return None
    return (stats["iterations_first"] * firsts + stats["iterations_later"] * later) / n_frames \
        + (cfg.video.passes - 1) * cfg.video.iterations


def stylize_video(job: VideoJob, network: Network, log=print) -> dict:
    """Run ``job`` (a resolved config) and return its metrics; process 0 writes the output."""
    cfg = job.config
    if cfg.video.carry:  # (the CLI refuses --carry here before; the Python API comes this way)
        raise UserError("carry is for a trained network's video frames (--model); the optimizer's frames start from "
                        "the warped previous output already (the temporal weight keeps them to it)")
    network = network.configured(cfg.pooling, cfg.precision)
    source = VideoSource(job.input, job.styles, cfg, job.options.start, job.options.duration)
    source.warm_start = job.warm_start
    devices = jax.local_devices()
    procs = job.processes
    if procs.num_processes > 1:
        devices = jax.devices()  # one program over every process's devices (tiled frames too)
    lanes, my_lanes = plan_job_lanes(source.n_frames, cfg, len(jax.local_devices()), procs)
    work = WorkDir(job.work_path, procs.process_id, procs.num_processes)
    flows = FlowCache(work.flows)

    t0 = time.perf_counter()
    fingerprint = _fingerprint(job, source, network, lanes)
    check_same_inputs({k: v for k, v in fingerprint.items() if not k.endswith("digest") and not k.endswith("digests")},
                      [job.input, *job.styles], procs.num_processes, "video job")
    if work.prepare(fingerprint, job.options.resume):
        # the flows it cached are reused (scene-cut detection computes them all before the first step)
        cached = len(list(work.flows.glob("*.npz"))) if work.flows.is_dir() else 0
        log(f"resuming the work directory {work.path} ({cached} cached flow file(s))")
    elif job.options.resume:
        log(f"note: --resume: no earlier run of this video in {work.path}; starting from the beginning")
    if procs.process_id == 0:
        source.prepare_masks(work.masks)
    work.barrier("masks")
    cuts = agreed_cuts(detect_cuts(source, flows, cfg.video.flow), source.n_frames, procs) if cfg.video.scene_cuts \
        else Cuts()
    # joins move onto nearby cuts (the plan in the fingerprint is the one before: cuts follow from the inputs)
    lanes = snap_to_cuts(lanes, cuts)
    my_lanes = [lanes[lane.index] for lane in my_lanes]
    steps = max(lane.length for lane in lanes)
    log(f"video {source.info.width}x{source.info.height} @ {float(source.fps):.3f} fps, "
        f"{counted(source.n_frames, 'frame')} -> working size {source.width}x{source.height}; {len(lanes)} "
        f"lane(s) ({len(my_lanes)} here), {counted(steps, 'step')}"
        + (f"; scene cuts before frames {', '.join(map(str, cuts.frames))}" if cuts.frames else ""))
    stats = run_passes(source, work, flows, cfg, network, devices, lanes, my_lanes, cuts,
                       resume=job.options.resume, progress=job.progress, log=log)
    metrics: dict[str, Any] = {"lanes": [dataclasses.asdict(lane) for lane in lanes], **stats, **cuts.metrics()}
    if procs.process_id == 0:
        metrics.update(assemble(source, work, flows, cfg, lanes, cfg.video.passes, output=job.output,
                                options=job.options, cuts=cuts))
        if not job.options.keep_work:
            work.remove()
    wall = time.perf_counter() - t0
    metrics.update({
        "frames": source.n_frames, "fps": str(source.fps), "start": job.options.start, "duration": job.options.duration,
        "work_size": [source.height, source.width],
        "output_size": [source.info.height, source.info.width], "wall_seconds": wall,
        # (a resumed run's time covers only its own steps: no rate for the whole clip)
        "frames_per_second": None if stats.get("resumed_at_step") else source.n_frames / wall,
        "network": network.describe(),
        "devices": len(devices), "processes": procs.num_processes,
        "iterations_per_frame": iterations_per_frame(stats, lanes, cuts, source.n_frames, cfg),
        "lane_frames_computed": sum(lane.length for lane in lanes),
        "config": dataclasses.asdict(cfg),
    })
    return metrics
