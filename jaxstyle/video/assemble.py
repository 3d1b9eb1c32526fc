"""The final video: the last pass's frames at the input's size and frame rate, the audio copied
(or a segment of it), and the stability measures of what was written."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from .. import imaging
from ..io.video import VideoWriter
from . import flow as flowlib
from .cuts import Cuts
from .flow import FlowCache
from .lanes import Lane
from .refine import assembled_frame
from .source import VideoSource
from .temporal import from_u8, to_u8, warped_pair
from .workdir import WorkDir


def assemble(source: VideoSource, work: WorkDir, flows: FlowCache, config, lanes: list[Lane], last_pass: int, *,
             output: Path, options, cuts: Cuts | None = None) -> dict:
    """Write ``output`` (atomically) and return the per-pair temporal errors and e_stab (the pairs
    across a scene cut left out)."""
    errors: list[float] = []
    prev = prev_content = None
    reader = source.reader(0, source.n_frames)
    audio_from = source.path if options.audio else None
    audio_start = options.start if options.start else 0.0
    audio_duration = float(Fraction(source.n_frames) / source.fps) if (options.start or options.duration) else None
    out_size = (source.info.height, source.info.width)
    with VideoWriter(output, source.info.width, source.info.height, source.fps, quality=options.quality,
                     audio_from=audio_from, audio_start=audio_start, audio_duration=audio_duration) as writer:
        for t in range(source.n_frames):
            frame = from_u8(assembled_frame(work, lanes, t, last_pass, cuts))
            content = next(reader)
            if prev is not None and (cuts is None or t not in cuts):
                warped, mask = warped_pair(flows, config.video.flow, prev_content, content, prev)
                errors.append(float(flowlib.temporal_loss(jnp.asarray(frame), warped, mask)))
            full = imaging.resize(frame, *out_size) if frame.shape[:2] != out_size else frame
            writer.write(full)
            if options.frames_dir is not None:
                work.save_png(Path(options.frames_dir) / f"frame_{t:06d}.png", to_u8(full))
            prev, prev_content = frame, content
    errs = np.asarray(errors)
    return {"pair_temporal_errors": errs.tolist(),
            "stability_error": float(np.sqrt(errs.mean())) if len(errs) else 0.0,
            "max_pair_over_median": float(errs.max() / max(np.median(errs), 1e-12)) if len(errs) else 0.0}
