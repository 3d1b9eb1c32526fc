"""The final video: the last pass's frames at the input's size and frame rate, the audio copied
(or a segment of it), and the stability measures of what was written."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from .. import imaging
from ..io.images import frame_png
from ..io.video import VideoWriter
from . import flow as flowlib
from .cuts import Cuts
from .flow import FlowCache
from .lanes import Lane
from .joins import pass_frames
from .source import VideoSource
from .temporal import from_u8, to_u8, warped_pair
from .workdir import WorkDir


class StabilityMeter:
    """The temporal error of each consecutive pair of output frames (the previous output warped by the
    content's flow, occlusions masked), pairs across a scene cut left out; e_stab is their RMS."""

    def __init__(self, flows: FlowCache, method: str, cuts: Cuts | None = None):
        self.flows, self.method, self.cuts = flows, method, cuts
        self.errors: list[float] = []
        self._prev = self._prev_content = None

    def add(self, t: int, frame: np.ndarray, content: np.ndarray) -> None:
        if self._prev is not None and (self.cuts is None or t not in self.cuts):
            warped, mask = warped_pair(self.flows, self.method, self._prev_content, content, self._prev)
            self.errors.append(float(flowlib.temporal_loss(jnp.asarray(frame), warped, mask)))
        self._prev, self._prev_content = frame, content

    def metrics(self) -> dict:
        errs = np.asarray(self.errors)
        return {"pair_temporal_errors": errs.tolist(),
                # (None: no pair to measure, a single frame or every pair across a cut; not "perfectly steady")
                "stability_error": float(np.sqrt(errs.mean())) if len(errs) else None,
                "max_pair_over_median": float(errs.max() / max(np.median(errs), 1e-12)) if len(errs) else None}


def measure_stability(source: VideoSource, work: WorkDir, flows: FlowCache, config, lanes: list[Lane],
                      last_pass: int, cuts: Cuts | None = None) -> dict:
    """The stability measures of the frames :func:`assemble` would write, without writing a video
    (the benchmarks; a machine without ffmpeg)."""
    meter = StabilityMeter(flows, config.video.flow, cuts)
    for t, content, frame in pass_frames(source, work, flows, config, lanes, last_pass, cuts):
        meter.add(t, from_u8(frame), content)
    return meter.metrics()


def assemble(source: VideoSource, work: WorkDir, flows: FlowCache, config, lanes: list[Lane], last_pass: int, *,
             output: Path, options, cuts: Cuts | None = None) -> dict:
    """Write ``output`` (atomically) and return the per-pair temporal errors and e_stab (the pairs
    across a scene cut left out)."""
    meter = StabilityMeter(flows, config.video.flow, cuts)
    audio_from = source.path if options.audio else None
    audio_start = options.start if options.start else 0.0
    audio_duration = float(Fraction(source.n_frames) / source.fps) if (options.start or options.duration) else None
    out_size = (source.info.height, source.info.width)
    with VideoWriter(output, source.info.width, source.info.height, source.fps, quality=options.quality,
                     audio_from=audio_from, audio_start=audio_start, audio_duration=audio_duration,
                     sample_aspect=source.info.sample_aspect, language=source.info.language,
                     tags=source.info.tags, subtitles_from=source.path) as writer:
        for t, content, frame_u8 in pass_frames(source, work, flows, config, lanes, last_pass, cuts):
            frame = from_u8(frame_u8)
            meter.add(t, frame, content)
            full = imaging.resize(frame, *out_size) if frame.shape[:2] != out_size else frame
            writer.write(full)
            if options.frames_dir is not None:
                work.save_png(frame_png(options.frames_dir, t), to_u8(full))
    return meter.metrics()
