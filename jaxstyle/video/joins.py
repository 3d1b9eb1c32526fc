"""Lane joins: pass 1's output frames in order, each lane taking over from the one before it
gradually.

Two lanes meet in different stylizations: where they meet, the earlier lane's walk has drifted
0.1-0.15 RMS away from the later lane's fresh (or anchored) start (benchmarks/README, "Where a join's
difference comes from"). A cross-fade spreads that difference D over the pairs it covers, adding
about D / (R + 1) to each of R + 1 pairs, so its cost falls with its length R; the overlap sets how
many frames both lanes compute, and computing more costs steps.

So a join fades over ``fade`` frames (at least the overlap) without computing more: the output is the
later lane's frame plus (1 - r) of the difference, r rising linearly from the later lane's first
frame to 1 at ``fade`` + 1 frames. In the overlap the difference is measured (the earlier lane's
output, itself joined, minus the later lane's frame); past it the earlier lane is gone, so the last
difference is carried forward by the content's optical flow (the backward warp the lanes use),
dropped where the forward-backward consistency check fails (disoccluded pixels are the later lane's
own) and from a scene cut on. With ``fade`` equal to the overlap this is the plain cross-fade.
With no overlap (``--overlap 0``) the difference is the previous output warped onto the later lane's
first frame, minus that frame.
"""

from __future__ import annotations

from typing import Iterator

import jax.numpy as jnp
import numpy as np

from .cuts import Cuts
from .flow import FlowCache
from .lanes import Lane
from .source import VideoSource
from .temporal import from_u8, pair_terms, to_u8
from .workdir import WorkDir


def fade_length(lane: Lane, fade: int) -> int:
    """Frames over which ``lane`` takes over from the lane before it (never shorter than its overlap)."""
    return max(fade, lane.core_start - lane.start)


def join_weight(t: int, lane: Lane, fade: int) -> float:
    """Share of frame t that is ``lane``'s own (1 - the share of the carried difference)."""
    if lane.index == 0:
        return 1.0
    return min(1.0, (t - lane.start + 1) / (fade_length(lane, fade) + 1))


class LaneJoiner:
    """Pass 1's output, one frame after another (``frame`` must be called for t = 0, 1, ... with
    each content frame at the working size). It keeps a difference field only for the lanes that
    hold the current frame (at most two), so its memory does not grow with the clip or the lanes."""

    def __init__(self, work: WorkDir, lanes: list[Lane], flows: FlowCache, method: str, cuts: Cuts | None, fade: int):
        self.work, self.lanes, self.flows, self.method = work, lanes, flows, method
        self.cuts, self.fade = cuts or Cuts(), fade
        self.t = 0
        self.differences: dict[int, np.ndarray] = {}
        self._previous_content = self._previous_output = None

    def _carried(self, field: np.ndarray, content: np.ndarray) -> np.ndarray:
        """``field`` (at frame t - 1) warped onto frame t, zero where the flow is unreliable."""
        forward, backward = self.flows.get(np.stack([self._previous_content, content]), self.method)
        warped, mask = pair_terms(jnp.asarray(field), jnp.asarray(forward[0]), jnp.asarray(backward[0]))
        return np.asarray(mask)[..., None] * np.asarray(warped)

    def frame(self, t: int, content: np.ndarray) -> np.ndarray:
        """Output frame t at the working size, uint8."""
        if t != self.t:
            raise ValueError(f"frames are joined in order: expected frame {self.t}, got {t}")
        owners = [lane for lane in self.lanes if lane.start <= t < lane.stop]
        outputs: dict[int, np.ndarray] = {}
        for lane in owners:
            own = from_u8(self.work.load_png(self.work.frame_path(t, lane.index)))
            r = join_weight(t, lane, self.fade)
            before = lane.index - 1
            difference = None
            if r < 1 and not self.cuts.between(lane.start, t):
                if before in outputs:                       # the overlap: both lanes have the frame
                    difference = outputs[before] - own
                elif t in self.cuts or self._previous_output is None:
                    difference = None
                elif lane.index in self.differences:        # past it: carried by the flow
                    difference = self._carried(self.differences[lane.index], content)
                elif t == lane.start:                       # no overlap: the previous output, warped
                    difference = self._carried(self._previous_output, content) - own
            if difference is None:
                self.differences.pop(lane.index, None)
                outputs[lane.index] = own
            else:
                self.differences[lane.index] = difference
                # (in the overlap written as the cross-fade itself, so --fade 0 gives its frames bit for bit)
                outputs[lane.index] = (1 - r) * outputs[before] + r * own if before in outputs \
                    else own + (1 - r) * difference
        for index in [i for i in self.differences if i not in outputs]:
            del self.differences[index]
        output = to_u8(outputs[owners[-1].index])
        self.t += 1
        self._previous_content, self._previous_output = content, from_u8(output)
        return output


def pass_frames(source: VideoSource, work: WorkDir, flows: FlowCache, config, lanes: list[Lane], pass_index: int,
                cuts: Cuts | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(t, content, output frame at the working size as uint8) for every frame of a pass, in order:
    pass 1's lanes joined, or a refinement pass's frames."""
    joiner = LaneJoiner(work, lanes, flows, config.video.flow, cuts, config.video.fade) if pass_index == 1 else None
    for t, content in zip(range(source.n_frames), source.reader(0, source.n_frames)):
        if joiner is not None:
            yield t, content, joiner.frame(t, content)
        else:
            yield t, content, work.load_png(work.frame_path(t, 0, pass_index))


def write_joined(source: VideoSource, work: WorkDir, flows: FlowCache, config, lanes: list[Lane],
                 cuts: Cuts | None = None) -> None:
    """Pass 1's joined frames into the work directory, for a refinement pass to read in any order."""
    for t, _, frame in pass_frames(source, work, flows, config, lanes, 1, cuts):
        work.save_png(work.joined_path(t), frame)
