"""Refinement passes (``--passes 2`` and more): every frame, in parallel batches, pulled toward both
neighbours of the previous pass warped onto it."""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from ..hosts import spans_processes
from ..nets.vgg import Network
from ..objective import Temporal
from .cuts import Cuts
from .flow import FlowCache
from .source import VideoSource
from .step import stylize_step
from .temporal import from_u8, neighbour_inputs, to_u8
from .workdir import WorkDir


def previous_pass_frame(work: WorkDir, t: int, pass_index: int) -> np.ndarray:
    """Frame t of an earlier pass at the working size, uint8 (pass 1's lanes as joined by
    :func:`.joins.write_joined`)."""
    return work.load_png(work.joined_path(t) if pass_index == 1 else work.frame_path(t, 0, pass_index))


def refine(source: VideoSource, work: WorkDir, flows: FlowCache, config, network: Network, devices,
           pass_index: int, cuts: Cuts | None = None) -> None:
    """Pass ``pass_index``: this process's frames (every num_processes-th), written to the work
    directory; a neighbour across a scene cut is left out."""
    video = config.video
    cfg = dataclasses.replace(config, start_size=0, iterations=video.iterations)
    n = source.n_frames
    procs = work.num_processes
    spans = spans_processes(devices)
    local = [d for d in devices if d.process_index == jax.process_index()]
    # (no more rows than this process has frames: a short clip needs no padding)
    batch = max(1, min(config.frames_per_device * len(local), math.ceil(n / procs)))
    mine = [t for t in range(n) if t % procs == work.process_id]
    # one program over every process: all run as many batches (the last may be stand-in rows)
    rounds = math.ceil(math.ceil(n / procs) / batch) if spans else math.ceil(len(mine) / batch)
    for s in range(0, rounds * batch, batch):
        ts = mine[s:s + batch]
        keep = len(ts)
        ts = ts or mine[-1:]
        reader = source.reader(max(0, ts[0] - 1), min(n, ts[-1] + 2) - max(0, ts[0] - 1))
        contents = {max(0, ts[0] - 1) + i: f for i, f in enumerate(reader)}
        previous = {t: from_u8(previous_pass_frame(work, t, pass_index - 1)) for t in contents}
        inits, targets, masks = [], [], []
        for t in ts:
            same_shot = {u: v for u, v in previous.items() if cuts is None or not cuts.between(u, t)}
            target, mask = neighbour_inputs(t, contents, same_shot, flows, video.flow)
            inits.append(previous[t])
            targets.append(target)
            masks.append(mask)
        frames = np.stack([contents[t] for t in ts])
        pad = batch - len(ts)
        if pad:
            frames = np.concatenate([frames, np.repeat(frames[-1:], pad, 0)])
            inits += [inits[-1]] * pad
            targets += [targets[-1]] * pad
            masks += [masks[-1]] * pad
        temporal = Temporal(np.stack(targets), np.stack(masks), video.temporal_weight)
        result = stylize_step(source, work, cfg, network, devices, frames, ts + [ts[-1]] * pad, init=np.stack(inits),
                              temporal=temporal)
        for i, t in enumerate(ts[:keep]):
            work.save_png(work.frame_path(t, 0, pass_index), to_u8(result.images[i]))
