"""Style term: Gram matrices of the output against the style's, per style layer, each layer's error
relative to the target Gram's rms, summed with the style layer weights.

The target is the blend of the style images' Grams at the scale's style size; with a style video,
each frame's average over its window of style frames; or Grams given per frame (independent tiles).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..nets import taps
from ..nets.vgg import Network
from .distances import distance, gram, rms
from .term import ScaleInputs, Term


def blended_grams(network: Network, layers: tuple[str, ...], styles: Sequence[np.ndarray], blend: Sequence[float],
                  long_side: float) -> dict[str, jax.Array]:
    """The style images' Gram matrices at a long side, blended: {layer: [C, C]}."""
    total: dict[str, jax.Array] = {}
    for image, weight in zip(styles, blend):
        grams = taps.image_grams(network, layers, image, long_side)
        for name in layers:
            g = grams[name] * weight
            total[name] = total[name] + g if name in total else g
    return total


def gram_distance(grams, target_grams, layers: Sequence[str], layer_weights: Sequence[float], kind: str,
                  norms=None) -> jax.Array:
    """Weighted sum over layers of the normalized distance between Gram matrices; ``norms`` replaces
    ``rms(target)`` per layer."""
    total = jnp.float32(0.0)
    for name, weight in zip(layers, layer_weights):
        target = target_grams[name]
        scale = rms(target) if norms is None else norms[name]
        total = total + weight * distance((grams[name] - target) / scale, kind)
    return total


@dataclass(frozen=True)
class StyleTerm(Term):
    """``weighted``: the Grams weight positions by the run's loss weights and each layer is normalized
    by the style's rms given for the frame (independent tiles)."""

    name: ClassVar[str] = "style"

    style_layers: tuple[str, ...]
    layer_weights: tuple[float, ...]
    distance: str = "mse"
    weighted: bool = False

    @property
    def layers(self) -> tuple[str, ...]:
        return self.style_layers

    @property
    def windowed(self) -> bool:
        return not self.weighted

    @classmethod
    def select(cls, config, inputs: ScaleInputs) -> "StyleTerm | None":
        if inputs.regions is not None:  # semantic masks: the region style term replaces this one
            return None
        return cls(tuple(config.style_layers), tuple(config.style_layer_weights), config.distance,
                   weighted=inputs.loss_weights is not None)

    def weight(self, config, inputs: ScaleInputs) -> float:
        return config.style_weight

    def targets(self, inputs: ScaleInputs, frames: slice):
        n = len(range(*frames.indices(inputs.frames.shape[0])))
        if inputs.style_targets is not None:
            grams = {k: jnp.asarray(inputs.style_targets[k][frames]) for k in self.style_layers}
        elif inputs.frame_styles is not None:
            per_frame = [self._frame_grams(inputs, images) for images in inputs.frame_styles[frames]]
            grams = {k: jnp.stack([g[k] for g in per_frame]) for k in self.style_layers}
        else:
            blend = inputs.once("style_grams", lambda: blended_grams(inputs.network, self.style_layers, inputs.styles,
                                                                     inputs.blend, inputs.style_side))
            grams = {k: jnp.broadcast_to(v, (n,) + v.shape) for k, v in blend.items()}
        if not self.weighted:
            return grams
        masks = inputs.loss_masks(self.style_layers)
        norms = (inputs.loss_norms or {}).get("style")
        return {"grams": grams, "masks": {k: jnp.asarray(v[frames]) for k, v in masks.items()},
                "norms": None if norms is None else {k: jnp.asarray(norms[k][frames]) for k in self.style_layers}}

    def _frame_grams(self, inputs: ScaleInputs, images) -> dict[str, jax.Array]:
        """A style video frame's target: the average Gram of its window of style frames."""
        per_image = [taps.image_grams(inputs.network, self.style_layers, image, inputs.style_side) for image in images]
        return {k: sum(g[k] for g in per_image) / len(per_image) for k in self.style_layers}

    def loss(self, image, features, target) -> jax.Array:
        if not self.weighted:
            grams = {name: gram(features[name]) for name in self.style_layers}
            return gram_distance(grams, target, self.style_layers, self.layer_weights, self.distance)
        grams = {name: gram(features[name], target["masks"][name]) for name in self.style_layers}
        return gram_distance(grams, target["grams"], self.style_layers, self.layer_weights, self.distance,
                             target["norms"])

    # ---- window protocol: the frame's Gram is the sum of the windows' masked Gram sums ----
    def window_sums(self, features, masks, target, setup, ys, xs):
        sums = {}
        for name in self.style_layers:
            f = features[name]
            b, _, _, c = f.shape
            flat = f.reshape(b, -1, c)
            sums[name] = jnp.einsum("bpi,bpj->ij", flat * masks[name].reshape(b, -1, 1), flat)
        return sums

    def from_sums(self, sums, target, setup, layer_sizes):
        grams = {k: sums[k] / layer_sizes[k] for k in self.style_layers}
        return gram_distance(grams, target, self.style_layers, self.layer_weights, self.distance)
