"""The lanes schedule: many frames of a video at once, each lane walking its segment in order.

The T frames are split into B contiguous segments, one per *lane*, B = frames-per-device x
devices (x processes). Step k optimizes frame k of every lane together, as one sharded batch.
Each lane walks its segment in order like Ruder et al.: its first frame gets the full preset
(coarse to fine); every later frame starts from the previous output warped by optical flow and
adds a temporal loss toward the warped earlier outputs (offsets ``long_term``, combined "closest
first") on the pixels the consistency check marks reliable. Lane i > 0 starts ``overlap`` frames
early; in that overlap both lanes produce the frame, and the output fades from lane i-1 to lane i
over ``fade`` frames (the overlap, then their difference carried by the flow: :mod:`.joins`), so
lanes join without a jump. ``--sequential`` is the special case B = 1.

Two stylizations of the same frame from the content differ by 0.06-0.10 RMS (L-BFGS amplifies the
small differences between neighbouring frames), several times a frame-to-frame error, and a
cross-fade spreads that difference over the overlap. So lanes are *anchored*: the clip's first
frame is stylized first, and a lane whose first frame that frame reaches by a reliable direct flow
(at least ``ANCHOR_MIN_RELIABLE`` of its pixels pass the consistency check, and no scene cut lies
between) starts from its output warped, like a later frame (init, temporal term, the later
iterations); neighbouring lanes then meet in nearly the same stylization. Other lanes (a moving
camera, another shot) start afresh.

After scene cuts are detected, joins move onto cuts near them (:func:`snap_to_cuts`): a lane that
starts at a cut needs no warm-up and the lane before it no restart.

The outputs a lane warps are the 8-bit frames it stored, and the lanes' short histories are
checkpointed after every step, so ``--resume`` after a kill gives the same frames as an
uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..errors import UserError
from ..hosts import any_process, broadcast_from_first, min_over_processes, spans_processes, sum_over_processes
from ..nets.vgg import Network
from ..objective import Temporal
from .cuts import Cuts
from .flow import FlowCache
from .source import VideoSource
from .step import stylize_step
from .temporal import from_u8, lane_inputs, to_u8, warped_pair
from .workdir import WorkDir

MIN_LANE_FRAMES = 4  # shorter lanes would leave most frames without a temporal loss
ANCHOR_MIN_RELIABLE = 0.5  # share of a lane's first frame the anchor's warp must cover to be used


@dataclass
class Lane:
    index: int
    start: int          # first frame (including the overlap warm-up)
    core_start: int     # first frame this lane owns outright
    stop: int           # one past the last frame

    @property
    def length(self) -> int:
        return self.stop - self.start


def plan_lanes(n_frames: int, n_lanes: int, overlap: int) -> list[Lane]:
    """Contiguous segments, one per lane, each but the first starting ``overlap`` frames early.

    Lanes own at least ``MIN_LANE_FRAMES`` frames (so a short clip gets fewer lanes than asked);
    the overlap is at most a segment - 1 and never reaches past the previous lane's own frames.
    All lanes run in lock step, so their lengths (warm-up included) are balanced where the clip
    allows: the first lane, which has no warm-up, owns up to ``overlap`` more frames than the
    others, so no batch slot idles while the other lanes warm up.
    """
    lanes_n = max(1, min(n_lanes, n_frames // MIN_LANE_FRAMES))
    size = math.ceil(n_frames / lanes_n)
    lanes_n = math.ceil(n_frames / size)
    if lanes_n == 1:
        return [Lane(0, 0, 0, n_frames)]
    ov = min(overlap, size - 1)
    # the largest overlap that stays inside the lane before's own frames (a longer one asked for
    # must not end up shorter than a shorter one would)
    while ov > 0 and ov > int(max((n_frames - ov) / lanes_n, MIN_LANE_FRAMES)):
        ov -= 1
    core = max((n_frames - ov) / lanes_n, MIN_LANE_FRAMES)   # frames owned by each lane after the first
    bounds = [0] + [int(round(n_frames - (lanes_n - i) * core)) for i in range(1, lanes_n)] + [n_frames]
    return [Lane(i, max(0, bounds[i] - (ov if i else 0)), bounds[i], bounds[i + 1]) for i in range(lanes_n)]


def _trace(metrics: dict) -> list[float]:
    return [float(np.mean(s["final"]["total"])) for s in metrics["scales"]]


def _padded(indices: list[int], size: int) -> list[int]:
    """``indices`` repeated up to ``size`` (the last one again), so every step's batch has one shape."""
    return indices + [indices[-1]] * (size - len(indices))


def _anchored_lanes(source: VideoSource, flows: FlowCache, config, lanes: list[Lane], my_lanes: list[Lane],
                   cuts: Cuts) -> dict[int, np.ndarray]:
    """{lane index: the content of the clip's first frame} for this process's lanes that start from
    the first frame's output warped (see the module docstring)."""
    if not config.video.anchor or len(lanes) == 1:
        return {}
    first = next(iter(source.reader(0, 1)))
    anchored = {}
    for lane in my_lanes:
        if lane.index == 0 or cuts.between(0, lane.start):
            continue
        content = next(iter(source.reader(lane.start, 1)))
        _, mask = warped_pair(flows, config.video.flow, first, content, np.zeros_like(first))
        if float(np.mean(np.asarray(mask))) >= ANCHOR_MIN_RELIABLE:
            anchored[lane.index] = first
    return anchored


def run_lanes(source: VideoSource, work: WorkDir, flows: FlowCache, config, network: Network, devices,
              lanes: list[Lane], my_lanes: list[Lane], *, resume: bool, progress: bool, log,
              cuts: Cuts | None = None) -> dict:
    """Pass 1: this process's lanes, step by step; finished frames go to the work directory. A lane
    whose next frame starts a new shot (``cuts``) restarts there as a first frame."""
    video = config.video
    cuts = cuts or Cuts()
    history = max(video.long_term)
    steps = max(lane.length for lane in lanes)
    start_step = 0
    contents: list[dict[int, np.ndarray]] = [dict() for _ in my_lanes]
    outputs: list[dict[int, np.ndarray]] = [dict() for _ in my_lanes]
    procs = work.num_processes
    rows = -(-len(lanes) // procs)  # lanes per process (the processes' counts differ by at most one)
    checkpoints = work.checkpoints(rows, history, (source.height, source.width))
    # every process resumes at the same step (Orbax commits a step for all processes or for none)
    latest = checkpoints.latest_step() if resume else None
    common = min_over_processes(-1 if latest is None else latest, procs)
    if common >= 0:
        outputs = checkpoints.restore(common, len(my_lanes))
        for i in range(len(my_lanes)):
            if outputs[i]:  # the contents of the history are decoded again, not stored
                first, last_t = min(outputs[i]), max(outputs[i])
                for t, frame in zip(range(first, last_t + 1), source.reader(first, last_t + 1 - first)):
                    contents[i][t] = frame
        start_step = common + 1
        log(f"resuming at step {start_step} of {steps}")
    readers = [source.reader(lane.start + start_step, lane.length - start_step)
               if start_step < lane.length else iter(()) for lane in my_lanes]
    later = dataclasses.replace(config, start_size=0, iterations=video.iterations)
    # (after --resume the statistics cover the steps from ``resumed_at_step`` on: the losses and
    # iterations of the earlier run's steps are not known here)
    stats = {"iterations_first": 0, "iterations_later": 0, "steps": steps, "first_frame_losses": [],
             "later_frame_losses": [], "compile_seconds": 0.0, "restarts": 0, "resumed_at_step": start_step}
    bar = tqdm(total=steps, initial=start_step, unit="step", desc=f"lanes x{len(lanes)}", dynamic_ncols=True) \
        if progress else None
    t0 = time.perf_counter()
    size = len(my_lanes)
    if spans_processes(devices):  # one program over every process: each brings as many rows
        size = math.ceil(len(lanes) / procs)
    anchored = _anchored_lanes(source, flows, config, lanes, my_lanes, cuts)  # (used at step 0)
    stats["anchored_lanes"] = sum_over_processes(len(anchored), procs)  # (every process: a collective)
    for k in range(start_step, steps):
        batch, frames_t, temporal_inputs, fresh = [], [], [], []
        for i, lane in enumerate(my_lanes):
            t = lane.start + min(k, lane.length - 1)
            active = k < lane.length
            if active:
                frame = next(readers[i], None)
                if frame is None:
                    raise UserError(f"{source.path} ended early (frame {t} of {source.n_frames})")
                contents[i][t] = frame
            frames_t.append(t)
            batch.append(contents[i][t])
            restart = (k == 0 and lane.index not in anchored) or (k > 0 and active and t in cuts)
            fresh.append(restart)
            if restart or k == 0:  # a first frame: the lane forgets the shot before
                outputs[i] = {}
                contents[i] = {t: contents[i][t]}
                temporal_inputs.append(None)  # (an anchored lane's: once the anchor is done)
            elif active:
                temporal_inputs.append(lane_inputs(t, video.long_term, contents[i], outputs[i], flows, video.flow))
            else:  # a finished lane idles on its last frame (nothing of it is kept)
                still = from_u8(outputs[i][t])
                temporal_inputs.append((still, still, np.zeros(batch[-1].shape[:2], np.float32)))
        frames = np.stack(batch)
        images: dict[int, np.ndarray] = {}
        first = [i for i in range(len(my_lanes)) if fresh[i]]
        # (with several processes a program runs when any process needs it; one that does not
        # brings stand-in rows and drops their results)
        if any_process(bool(first), procs):  # first frames: the whole preset, coarse to fine
            idx = _padded(first or [0], size)
            warm = None if source.warm_start is None else source.warm_start(frames[idx])
            result = stylize_step(source, work, config, network, devices, frames[idx], [frames_t[j] for j in idx],
                                  init=warm)
            images.update({i: result.images[pos] for pos, i in enumerate(first)})
            stats["compile_seconds"] += result.metrics["compile_seconds"]
            stats["iterations_first"] = result.metrics["iterations"]
            if k == 0:
                stats["first_frame_losses"] = list(result.metrics["final"]["total"])[:len(first)]  # (not the padding)
                stats["first_frame_trace"] = _trace(result.metrics)
            else:
                stats["restarts"] += len(first)
        if k == 0 and stats["anchored_lanes"]:  # the clip's first frame (lane 0's) is done: warp it onto the anchored lanes
            mine = images[0] if my_lanes and my_lanes[0].index == 0 else np.zeros_like(frames[0])
            anchor = broadcast_from_first(to_u8(mine), procs)
            for i, lane in enumerate(my_lanes):
                if lane.index in anchored:
                    warped, mask = (np.asarray(a) for a in warped_pair(flows, video.flow, anchored[lane.index],
                                                                        frames[i], from_u8(anchor)))
                    # where the warp is unreliable (disoccluded, out of view) the lane starts from the content
                    init = mask[..., None] * warped + (1 - mask[..., None]) * frames[i]
                    temporal_inputs[i] = (init, warped, mask)
        rest = [i for i in range(len(my_lanes)) if not fresh[i]]
        # later frames: from the warped previous output (or the network's, a warm start)
        if any_process(any(k < my_lanes[i].length for i in rest), procs):
            if rest:
                idx = _padded(rest, size)
                inits, targets, masks = (np.stack([temporal_inputs[j][n] for j in idx]) for n in range(3))
            else:  # stand-in rows (this process's lanes are all at a first frame)
                idx = [0] * size
                inits, targets, masks = frames[idx], frames[idx], np.zeros(frames[idx].shape[:3], np.float32)
            if source.warm_start is not None:  # from the network's output; the temporal term still holds it
                inits = source.warm_start(frames[idx])
            temporal = Temporal(targets, masks, video.temporal_weight)
            result = stylize_step(source, work, later, network, devices, frames[idx], [frames_t[j] for j in idx],
                                  init=inits, temporal=temporal)
            images.update({i: result.images[pos] for pos, i in enumerate(rest)})
            stats["compile_seconds"] += result.metrics["compile_seconds"]
            stats["iterations_later"] = result.metrics["iterations"]
            final = result.metrics["final"]["total"]
            stats["later_frame_losses"] += [[int(frames_t[i]), float(final[pos])] for pos, i in enumerate(rest)
                                            if k < my_lanes[i].length]  # (a finished lane idles on its last frame)
            if k == 1:
                stats["second_frame_trace"] = _trace(result.metrics)
        for i, lane in enumerate(my_lanes):
            if k < lane.length:
                t = frames_t[i]
                out = to_u8(images[i])
                outputs[i][t] = out
                work.save_png(work.frame_path(t, lane.index), out)
                for old in [x for x in outputs[i] if x <= t - history]:
                    outputs[i].pop(old)
                    contents[i].pop(old, None)
        checkpoints.save(k, outputs)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(frames_per_s=f"{(k + 1 - start_step) * len(my_lanes) / (time.perf_counter() - t0):.2f}")
    if bar is not None:
        bar.close()
    checkpoints.close()
    stats["lane_seconds"] = time.perf_counter() - t0
    stats["later_frame_losses"].sort()  # [frame, final loss] of this process's later frames (an overlap frame once per lane)
    return stats


def snap_to_cuts(lanes: list[Lane], cuts: Cuts) -> list[Lane]:
    """``lanes`` with each join moved onto a scene cut near it, where that lengthens no lane past the
    plan's longest: the later lane then starts at the cut with no warm-up (a first frame, as the
    cut makes it anyway) and the earlier one stops there, so no frame is computed twice and neither
    lane restarts at the cut. A join can move onto a cut in the later lane's warm-up for free
    (both lanes get shorter); past the old join only as far as the earlier lane has room."""
    if len(lanes) == 1 or not cuts.frames:
        return list(lanes)
    steps = max(lane.length for lane in lanes)
    out = list(lanes)  # (lanes are replaced, not changed in place)
    for i in range(1, len(out)):
        before, lane = out[i - 1], out[i]
        next_start = out[i + 1].start if i + 1 < len(out) else lane.stop
        usable = [c for c in cuts.frames
                  if lane.start <= c and c - before.start <= steps                        # no lane longer
                  and c - before.core_start >= MIN_LANE_FRAMES and lane.stop - c >= MIN_LANE_FRAMES and next_start >= c]
        if usable:
            c = min(usable, key=lambda c: (abs(c - lane.core_start), c))
            out[i - 1] = dataclasses.replace(before, stop=c)
            out[i] = dataclasses.replace(lane, start=c, core_start=c)
    return out
