"""Temporal term (video): the masked squared difference to the warped earlier output(s)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ..imaging import resize
from .term import ScaleInputs, Term


@dataclass
class Temporal:
    """Temporal-consistency inputs for a batch of frames (at the frames' full size)."""

    targets: np.ndarray        # [N, H, W, 3] warped previous outputs
    masks: np.ndarray          # [N, H, W] reliability masks (0 disables the term for a pixel)
    weight: float = 0.0


@dataclass(frozen=True)
class TemporalTerm(Term):
    """Always part of the objective (weight 0 and an empty mask without temporal inputs), so a
    video's first frames and its later frames share the compiled program of a shape."""

    name: ClassVar[str] = "temporal"

    @classmethod
    def select(cls, config, inputs: ScaleInputs) -> "TemporalTerm":
        return cls()

    def weight(self, config, inputs: ScaleInputs) -> float:
        return inputs.temporal.weight if inputs.temporal is not None else 0.0

    def targets(self, inputs: ScaleInputs, frames: slice):
        def scaled():
            h, w = inputs.size
            if inputs.temporal is None:
                n = inputs.frames.shape[0]
                return np.zeros((n, h, w, 3), np.float32), np.zeros((n, h, w), np.float32)
            return resize(inputs.temporal.targets, h, w), resize(inputs.temporal.masks[..., None], h, w)[..., 0]

        targets, masks = inputs.once("temporal", scaled)
        return {"target": jnp.asarray(targets[frames]), "mask": jnp.asarray(masks[frames])}

    def loss(self, image, features, target) -> jax.Array:
        diff = image - target["target"]
        mask = target["mask"][..., None]
        return jnp.sum(mask * diff * diff) / diff.size
