"""Photorealism term (Luan et al.): the matting-Laplacian energy of the output per pixel, with the
Laplacian of the original colour content frame (:mod:`.matting`, matrix-free)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp

from . import matting
from .term import ScaleInputs, Term

_precompute = jax.jit(matting.precompute)  # window statistics of the guides, once per frame and scale


@dataclass(frozen=True)
class PhotorealTerm(Term):
    name: ClassVar[str] = "photoreal"

    @classmethod
    def select(cls, config, inputs: ScaleInputs) -> "PhotorealTerm | None":
        return cls() if config.photoreal > 0 else None

    def weight(self, config, inputs: ScaleInputs) -> float:
        return config.photoreal

    def targets(self, inputs: ScaleInputs, frames: slice):
        return _precompute(jnp.asarray(inputs.guides[frames], jnp.float32))

    def loss(self, image, features, target) -> jax.Array:
        # per pixel, so LAMBDA does not depend on the frame size
        return target.energy(image) / (image.shape[0] * image.shape[1])
