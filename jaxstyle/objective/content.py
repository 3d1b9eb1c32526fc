"""Content term: the normalized distance between the output's features and the content's, summed
over the content layers (``relu4_2`` by default)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp

from ..nets import taps
from ..nets.vgg import layer_stride
from . import windowed
from .distances import distance, elementwise, rms
from .term import ScaleInputs, Term


@dataclass(frozen=True)
class ContentTerm(Term):
    """``weighted``: positions weighted by the run's loss weights and each layer normalized by its
    whole frame's rms (independent tiles; see :mod:`jaxstyle.schedules.independent`)."""

    name: ClassVar[str] = "content"

    content_layers: tuple[str, ...]
    distance: str = "mse"
    weighted: bool = False

    @property
    def layers(self) -> tuple[str, ...]:
        return self.content_layers

    @property
    def windowed(self) -> bool:
        return not self.weighted

    @classmethod
    def select(cls, config, inputs: ScaleInputs) -> "ContentTerm":
        return cls(tuple(config.content_layers), config.distance,
                   weighted=inputs.loss_weights is not None and inputs.regions is None)

    def weight(self, config, inputs: ScaleInputs) -> float:
        return config.content_weight

    def targets(self, inputs: ScaleInputs, frames: slice):
        batch = inputs.frames[frames]
        if inputs.windows is not None:  # a large frame's features, one window's memory at a time
            features = {k: jnp.asarray(v) for k, v in
                        windowed.content_features(inputs.network, self.content_layers, batch, *inputs.windows).items()}
        else:
            features = taps.features(inputs.network, self.content_layers, batch)
        if not self.weighted:
            return features
        masks = inputs.loss_masks(self.content_layers)
        norms = (inputs.loss_norms or {}).get("content")
        return {"features": features, "masks": {k: jnp.asarray(v[frames]) for k, v in masks.items()},
                "norms": None if norms is None else {k: jnp.asarray(norms[k][frames]) for k in self.content_layers}}

    def loss(self, image, features, target) -> jax.Array:
        total = jnp.float32(0.0)
        if not self.weighted:
            for name in self.content_layers:
                t = target[name]
                total = total + distance((features[name] - t) / rms(t), self.distance)
            return total
        norms = target["norms"]
        for name in self.content_layers:
            t, m = target["features"][name], target["masks"][name][..., None]
            d = (features[name] - t) / (rms(t) if norms is None else norms[name])
            per_pos = elementwise(d, self.distance)
            total = total + jnp.sum(m * per_pos) / (jnp.maximum(jnp.sum(m), 1e-6) * d.shape[-1])
        return total

    # ---- window protocol: a masked sum of the per-position distances per layer ----
    def window_setup(self, target):
        return {k: rms(target[k]) for k in self.content_layers}

    def window_sums(self, features, masks, target, setup, ys, xs):
        sums = {}
        for name in self.content_layers:
            f = features[name]
            _, lh, lw, c = f.shape
            st = layer_stride(name)
            p = jax.vmap(lambda y, x: jax.lax.dynamic_slice(target[name], (y // st, x // st, 0), (lh, lw, c)))(ys, xs)
            per_pos = elementwise((f - p) / setup[name], self.distance)
            sums[name] = jnp.sum(masks[name][..., None] * per_pos)
        return sums

    def from_sums(self, sums, target, setup, layer_sizes):
        total = jnp.float32(0.0)
        for k in self.content_layers:
            total = total + sums[k] / (layer_sizes[k] * target[k].shape[-1])
        return total
