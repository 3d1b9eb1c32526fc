"""Scene cuts: where a video's content jumps to another shot, so that no lane warps across it.

Frame t starts a new shot when the optical flow from frame t-1 explains almost none of it: the
share of pixels that Ruder et al.'s forward-backward consistency check marks reliable
(:func:`jaxstyle.video.flow.consistency_mask`) is below ``RELIABLE_CUT``, or below
``RELIABLE_CUT_WITH_COLOURS`` while the colour histograms of the two frames also overlap little
(intersection of 8x8x8-bin RGB histograms below ``HISTOGRAM_CUT``). Measured at 128 px on the three
clips in ``../shared/media/video`` (no cuts): reliable share 0.84 or more, histogram intersection
0.957 or more, for every pair; at the join of two of them: reliable 0.004-0.021, histogram
0.36-0.51. The flows are the ones the lanes use anyway (cached in the work directory).

At a cut a lane restarts as a first frame: the full preset from the content, no warp, no temporal
term; the refinement passes and the stability measure do not look across it, and lanes are not
faded across it (:mod:`.joins`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np

from . import flow as flowlib
from .flow import FlowCache
from .source import VideoSource

RELIABLE_CUT = 0.3
RELIABLE_CUT_WITH_COLOURS = 0.5
HISTOGRAM_CUT = 0.75
HISTOGRAM_BINS = 8


@dataclass
class Cuts:
    """The frames that start a new shot, and the measures of every consecutive pair."""

    frames: list[int] = field(default_factory=list)
    reliable: list[float] = field(default_factory=list)     # pair (t-1, t) at index t-1
    histogram: list[float] = field(default_factory=list)

    def __contains__(self, t: int) -> bool:
        return t in self.frames

    def between(self, a: int, b: int) -> bool:
        """Whether a cut separates frames a and b (a shot starts after a, at or before b)."""
        lo, hi = min(a, b), max(a, b)
        return any(lo < c <= hi for c in self.frames)

    def metrics(self) -> dict:
        return {"scene_cuts": list(self.frames), "cut_reliable_share": self.reliable,
                "cut_histogram_intersection": self.histogram}


def colour_histogram(frame: np.ndarray) -> np.ndarray:
    q = np.clip((np.asarray(frame) * HISTOGRAM_BINS).astype(np.int64), 0, HISTOGRAM_BINS - 1)
    index = (q[..., 0] * HISTOGRAM_BINS + q[..., 1]) * HISTOGRAM_BINS + q[..., 2]
    counts = np.bincount(index.ravel(), minlength=HISTOGRAM_BINS ** 3).astype(np.float64)
    return counts / counts.sum()


def pair_measures(mask, histogram_before: np.ndarray, histogram: np.ndarray) -> tuple[float, float]:
    """(the share of reliable pixels in the pair's consistency mask, the intersection of the two
    frames' colour histograms): what :func:`is_cut` judges."""
    return float(jnp.mean(jnp.asarray(mask))), float(np.minimum(histogram_before, histogram).sum())


def is_cut(reliable: float, histogram: float) -> bool:
    return reliable < RELIABLE_CUT or (reliable < RELIABLE_CUT_WITH_COLOURS and histogram < HISTOGRAM_CUT)


def detect_cuts(source: VideoSource, flows: FlowCache, method: str) -> Cuts:
    """One pass over the content frames at the working size."""
    cuts = Cuts()
    previous = previous_histogram = None
    for t, frame in enumerate(source.reader(0, source.n_frames)):
        histogram = colour_histogram(frame)
        if previous is not None:
            forward, backward = flows.get(np.stack([previous, frame]), method)
            mask = flowlib.consistency_mask(jnp.asarray(forward[0]), jnp.asarray(backward[0]))
            reliable, overlap = pair_measures(mask, previous_histogram, histogram)
            cuts.reliable.append(round(reliable, 4))
            cuts.histogram.append(round(overlap, 4))
            if is_cut(reliable, overlap):
                cuts.frames.append(t)
        previous, previous_histogram = frame, histogram
    return cuts
