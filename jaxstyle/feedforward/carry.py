"""Carrying a network's output along the optical flow from frame to frame (``--carry``).

A trained network has no memory: each frame is stylized alone, so whatever it answers to the
content's small changes between frames (noise, light, a one-pixel motion) shows as flicker. The
optimizer's frames are steady because each starts from the previous output warped by the content's
flow. This gives the network's video the same memory after the fact: frame t's output is blended
with the previous (already carried) output warped onto it,

    O'_t = N_t + carry * M_t * (warp(O'_{t-1}) - N_t),

where N_t is the network's output and M_t Ruder et al.'s reliability mask of the content's flow
(occluded, disoccluded and out-of-frame pixels take the network's output alone). A scene cut
(:mod:`jaxstyle.video.cuts`' test on the same flows) starts afresh. The flows are the engine's
(OpenCV's DIS unless ``--flow`` says otherwise), computed on the CPU between consecutive content
frames at the working size, one pair at a time (a stream: nothing cached).

The same warped previous output and mask give each pair's temporal error, so the carried video's
e_stab (:func:`jaxstyle.video.flow.stability_error`) costs nothing more.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import UserError
from ..video import flow as flowlib
from ..video.cuts import colour_histogram, is_cut, pair_measures
from ..video.temporal import pair_terms


@jax.jit
def _carried(network_out: jax.Array, warped: jax.Array, mask: jax.Array, carry: jax.Array):
    """(the blended frame, its temporal error against the warped previous output)."""
    out = network_out + carry * mask[..., None] * (warped - network_out)
    return out, flowlib.temporal_loss(out, warped, mask)


class FlowCarry:
    """Feed frames in order; ``carry`` in [0, 1) is the share of the warped previous output (0: the
    network's output unchanged, but the flows still measure e_stab); ``scene_cuts`` False carries
    across what looks like a cut too (``--no-scene-cuts``, for a false one)."""

    def __init__(self, carry: float, method: str = "dis", scene_cuts: bool = True):
        if not 0.0 <= carry < 1.0:
            raise UserError(f"carry must be a share from 0 (off) up to, not including, 1; not {carry}")
        flowlib.check_flow_method(method)
        self.carry, self.method, self.scene_cuts = carry, method, scene_cuts
        self.pair_errors: list[float] = []
        self.cuts: list[int] = []
        self._t = 0
        self._content = self._output = self._histogram = None

    def __call__(self, content: np.ndarray, network_out: np.ndarray) -> np.ndarray:
        """The output of the next frame (``content`` and ``network_out`` [H, W, 3] at the working size)."""
        t, self._t = self._t, self._t + 1
        histogram = colour_histogram(content)
        out = np.asarray(network_out, np.float32)
        if self._content is not None:
            forward, backward = flowlib.compute_flows(np.stack([self._content, content]), self.method)
            warped, mask = pair_terms(jnp.asarray(self._output), jnp.asarray(forward[0]), jnp.asarray(backward[0]))
            if self.scene_cuts and is_cut(*pair_measures(mask, self._histogram, histogram)):
                self.cuts.append(t)
            else:
                blended, error = _carried(jnp.asarray(out), warped, mask, jnp.float32(self.carry))
                out = np.asarray(blended)
                self.pair_errors.append(float(error))
        self._content, self._output, self._histogram = content, out, histogram
        return out

    def metrics(self) -> dict:
        errors = np.asarray(self.pair_errors)
        return {"carry": self.carry, "flow": self.method, "scene_cuts": self.cuts,
                "pair_temporal_errors": errors.tolist(),
                "stability_error": float(np.sqrt(errors.mean())) if errors.size else None}
