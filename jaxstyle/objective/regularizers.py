"""Pixel regularizers: total variation, and a soft range penalty that keeps unconstrained optimizers
near [0, 1] (the output is clipped to [0, 1] at the end)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp

from .term import ScaleInputs, Term

RANGE_WEIGHT = 10.0


def tv_loss(image: jax.Array) -> jax.Array:
    """Mean squared difference of vertically and horizontally neighbouring pixels ([H, W, C])."""
    dy = image[1:, :, :] - image[:-1, :, :]
    dx = image[:, 1:, :] - image[:, :-1, :]
    return jnp.mean(dy * dy) + jnp.mean(dx * dx)


def range_loss(image: jax.Array) -> jax.Array:
    """Mean squared distance of the pixels outside [0, 1] to the range."""
    over = jnp.maximum(image - 1.0, 0.0) + jnp.maximum(-image, 0.0)
    return jnp.mean(over * over)


@dataclass(frozen=True)
class TVTerm(Term):
    name: ClassVar[str] = "tv"

    @classmethod
    def select(cls, config, inputs: ScaleInputs) -> "TVTerm":
        return cls()

    def weight(self, config, inputs: ScaleInputs) -> float:
        return config.tv_weight

    def loss(self, image, features, target) -> jax.Array:
        return tv_loss(image)


@dataclass(frozen=True)
class RangeTerm(Term):
    name: ClassVar[str] = "range"

    @classmethod
    def select(cls, config, inputs: ScaleInputs) -> "RangeTerm":
        return cls()

    def weight(self, config, inputs: ScaleInputs) -> float:
        return RANGE_WEIGHT

    def loss(self, image, features, target) -> jax.Array:
        return range_loss(image)
