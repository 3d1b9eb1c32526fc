"""Temporal inputs of a frame from its neighbours' outputs: earlier (or neighbouring) outputs warped
onto the frame by optical flow, with Ruder et al.'s reliability masks, combined closest first.
The jitted helpers compile once per frame size."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import imaging
from . import flow as flowlib


@jax.jit
def pair_terms(prev_out: jax.Array, forward: jax.Array, backward: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Warp an earlier output onto the current frame and its reliability mask."""
    return flowlib.warp(prev_out, backward), flowlib.consistency_mask(forward, backward)


@jax.jit
def combine(warped: jax.Array, masks: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Closest-first combination of several warped earlier outputs into one target and mask."""
    weights = flowlib.long_term_masks(masks)
    total = jnp.sum(weights, axis=0)
    target = jnp.sum(weights[..., None] * warped, axis=0) / jnp.maximum(total, 1e-6)[..., None]
    return target, total


def to_u8(image: np.ndarray) -> np.ndarray:
    return imaging.to_uint8(image)


def from_u8(image: np.ndarray) -> np.ndarray:
    return imaging.from_uint8(image)


def warped_pair(flows: flowlib.FlowCache, method: str, source_content: np.ndarray, content: np.ndarray,
                source_output: np.ndarray):
    """(the output of the source frame warped onto this frame, its reliability mask)."""
    forward, backward = flows.get(np.stack([source_content, content]), method)
    return pair_terms(jnp.asarray(source_output), jnp.asarray(forward[0]), jnp.asarray(backward[0]))


def lane_inputs(t: int, offsets: Sequence[int], contents: dict[int, np.ndarray], outputs: dict[int, np.ndarray],
                flows: flowlib.FlowCache, method: str):
    """(init, target, mask) for frame t of a lane from its history of contents and 8-bit outputs:
    the previous output warped (the init), and the earlier outputs at ``offsets`` combined closest
    first (the temporal target and mask)."""
    warped, masks = [], []
    for j in offsets:
        if t - j not in outputs:
            continue
        w_, m_ = warped_pair(flows, method, contents[t - j], contents[t], from_u8(outputs[t - j]))
        warped.append(w_)
        masks.append(m_)
    target, mask = combine(jnp.stack(warped), jnp.stack(masks))
    return np.asarray(warped[0]), np.asarray(target), np.asarray(mask)


def neighbour_inputs(t: int, contents: dict[int, np.ndarray], previous: dict[int, np.ndarray],
                     flows: flowlib.FlowCache, method: str):
    """(target, mask) for a refinement pass: both neighbours of the previous pass warped onto frame
    t, averaged by their reliability masks."""
    warped, masks = [], []
    for u in (t - 1, t + 1):
        if u in previous:
            w_, m_ = warped_pair(flows, method, contents[u], contents[t], previous[u])
            warped.append(np.asarray(w_))
            masks.append(np.asarray(m_))
    if not masks:  # no neighbour in the same shot: no temporal pull
        return previous[t], np.zeros(previous[t].shape[:2], np.float32)
    total = np.sum(masks, axis=0)
    target = np.sum([m[..., None] * w for m, w in zip(masks, warped)], axis=0) / np.maximum(total, 1e-6)[..., None]
    return target, total
