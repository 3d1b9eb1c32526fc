"""A video through a trained network: frames streamed from ffmpeg at the working size in batches of
``frames_per_device`` per device, stylized, optionally carried along the optical flow
(:mod:`.carry`), put back at the input's exact size and written at its frame rate with its audio
(the same I/O as the optimizer's video jobs)."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import jax
import numpy as np
from tqdm import tqdm

from .. import imaging
from ..imaging import target_size
from ..io.images import frame_png, write_image
from ..io.video import VideoWriter, expected_frame_count, iter_frames, probe
from .carry import FlowCarry
from .model import Model


def stylize_video_with_model(model: Model, cond: np.ndarray, source: Path, output: Path, *, size: int | None,
                             frames_per_device: int = 1, start: float = 0.0, duration: float | None = None,
                             audio: bool = True, quality: int = 18, frames_dir: str | None = None,
                             devices: Sequence[jax.Device] | None = None, progress: bool = False,
                             carry: float = 0.0, flow: str = "dis", scene_cuts: bool = True) -> dict:
    """Write ``output`` (atomically) and return frames, sizes and timings. ``carry`` > 0 blends each
    frame with the previous output warped by the content's flow, whose flows also give e_stab
    (``stability_error``; without a carry no flow is computed: the network's pass alone)."""
    info = probe(source)
    h, w = target_size(info.height, info.display_width, size)  # square pixels, as the optimizer's
    n_frames = expected_frame_count(info, start, duration)
    devices = list(devices or jax.local_devices())
    devices = devices[:max(1, min(len(devices), -(-n_frames // frames_per_device)))]  # as many as the clip can use
    per_batch = frames_per_device * len(devices)
    audio_duration = float(Fraction(n_frames) / info.fps) if (start or duration) else None
    flow_carry = FlowCarry(carry, flow, scene_cuts) if carry else None
    written, network_seconds, carry_seconds = 0, 0.0, 0.0
    t0 = time.perf_counter()
    bar = tqdm(total=n_frames, unit="frame", desc="network", dynamic_ncols=True) if progress else None
    with VideoWriter(output, info.width, info.height, info.fps, quality=quality,
                     audio_from=source if audio else None, audio_start=start,
                     audio_duration=audio_duration, sample_aspect=info.sample_aspect,
                     language=info.language, tags=info.tags, subtitles_from=source) as writer:
        for batch in iter_frames(source, info, size=(w, h), start=start, duration=duration, batch=per_batch):
            t1 = time.perf_counter()
            out = model.stylize(batch, cond, frames_per_device=frames_per_device, devices=devices)
            network_seconds += time.perf_counter() - t1
            if flow_carry is not None:  # (in order: each frame carries the one before)
                t1 = time.perf_counter()
                out = np.stack([flow_carry(content, frame) for content, frame in zip(batch, out)])
                carry_seconds += time.perf_counter() - t1
            full = imaging.resize(out, info.height, info.width) if (h, w) != (info.height, info.width) else out
            writer.write(full)
            if frames_dir is not None:
                for i, frame in enumerate(full):
                    write_image(frame_png(frames_dir, written + i), frame)
            written += len(batch)
            if bar is not None:
                bar.update(len(batch))
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - t0
    return {"frames": written, "working_size": [h, w], "output_size": [info.height, info.width],
            "wall_seconds": wall, "network_seconds": network_seconds, "frames_per_second": written / max(wall, 1e-9),
            "network_frames_per_second": written / max(network_seconds, 1e-9), "devices": len(devices),
            **({} if flow_carry is None else {**flow_carry.metrics(), "carry_seconds": carry_seconds})}

