"""Semantic masks: style matched region by region (Gatys et al. 2017, "guided" transfer).

A mask is a label image: every distinct colour is one region (reading and snapping the colours is
:mod:`jaxstyle.io.labels`). The content mask labels the output's pixels, each style mask labels its
style image; regions correspond by colour. Region k of the output is matched to the Gram statistics
of region k of the style image(s) only; a content region whose colour appears in no style mask gets
no style loss (it keeps the content, held by the content loss). Colours that appear only in a style
mask are ignored.

Masks are resized to every scale and, inside the loss, to every style layer's resolution with an
antialiased (area-like) filter, so region borders become soft weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import UserError
from ..imaging import resize_labels, resize_masks
from ..nets import taps
from ..nets.vgg import Network, layer_stride
from .distances import distance, region_grams, rms
from .term import ScaleInputs, Term


@dataclass
class Regions:
    """One-hot region masks of the content frames and of every style image (float32)."""

    content: np.ndarray               # [N, H, W, K]
    styles: list[np.ndarray]          # per style image [h, w, K]
    codes: tuple[int, ...]            # the K label colours

    @property
    def count(self) -> int:
        return len(self.codes)

    def style_presence(self) -> np.ndarray:
        """[S, K]: 1 where style image s has any pixel of region k."""
        return np.stack([(s.reshape(-1, self.count).sum(0) > 0).astype(np.float32) for s in self.styles])


def one_hot(labels: np.ndarray, codes: Sequence[int]) -> np.ndarray:
    return np.stack([(labels == c) for c in codes], axis=-1).astype(np.float32)


def build_regions(content_labels: np.ndarray, style_labels: Sequence[np.ndarray], frame_shape: tuple[int, int],
                  style_shapes: Sequence[tuple[int, int]]) -> Regions:
    """Regions from label arrays: ``content_labels`` [H, W] (one for all frames) or [N, H, W]; one
    [h, w] label array per style image. Each is resized (nearest) to the frames' / style image's size."""
    content_labels = np.asarray(content_labels)
    if content_labels.ndim == 2:
        content_labels = content_labels[None]
    codes = tuple(int(c) for c in np.unique(content_labels))
    if len(style_labels) != len(style_shapes):
        raise UserError(f"{len(style_labels)} style masks given for {len(style_shapes)} style images")
    content = one_hot(resize_labels(content_labels, *frame_shape), codes)
    styles = [one_hot(resize_labels(np.asarray(lab)[None], *shape)[0], codes)
              for lab, shape in zip(style_labels, style_shapes)]
    regions = Regions(content, styles, codes)
    if not regions.style_presence().any():
        raise UserError("no colour of the content mask appears in a style mask: the masks' labels must match by colour")
    return regions


def region_targets(network: Network, layers: tuple[str, ...], styles: Sequence[np.ndarray], blend: np.ndarray,
                   long_side: float, regions: Regions) -> tuple[dict[str, jax.Array], np.ndarray]:
    """Per-region blended style Grams {layer: [K, C, C]} and the [K] presence of each region in the
    styles (a region's target averages only the styles that have it)."""
    presence = regions.style_presence() * np.asarray(blend)[:, None]          # [S, K]
    norm = presence.sum(0)
    total: dict[str, jax.Array] = {}
    for s, image in enumerate(styles):
        grams = taps.image_grams(network, layers, image, long_side, regions.styles[s])
        coef = jnp.asarray(presence[s] / np.maximum(norm, 1e-12), jnp.float32)[:, None, None]
        for name in layers:
            g = grams[name] * coef
            total[name] = total[name] + g if name in total else g
    return total, (norm > 0).astype(np.float32)


def region_distance(grams, target_grams, region_weights, layers: Sequence[str], layer_weights: Sequence[float],
                    kind: str) -> jax.Array:
    """Per layer, the regions' normalized Gram distances summed with ``region_weights`` [K]."""
    total = jnp.float32(0.0)
    for name, weight in zip(layers, layer_weights):
        per_region = jax.vmap(lambda g, t: distance((g - t) / rms(t), kind))(grams[name], target_grams[name])
        total = total + weight * jnp.sum(region_weights * per_region)
    return total


@dataclass(frozen=True)
class RegionStyleTerm(Term):
    """The style term with semantic masks: for each layer, ``masks`` [h_l, w_l, K] are the output's
    soft regions and the target [K, C, C] the style's Gram over its own region k. Region k's Gram of
    the output is compared with region k's target; the regions are summed with their content area
    (0 where no style has the region)."""

    name: ClassVar[str] = "style"
    windowed: ClassVar[bool] = True

    style_layers: tuple[str, ...]
    layer_weights: tuple[float, ...]
    distance: str = "mse"

    @property
    def layers(self) -> tuple[str, ...]:
        return self.style_layers

    @classmethod
    def select(cls, config, inputs: ScaleInputs) -> "RegionStyleTerm | None":
        if inputs.regions is None:
            return None
        return cls(tuple(config.style_layers), tuple(config.style_layer_weights), config.distance)

    def weight(self, config, inputs: ScaleInputs) -> float:
        return config.style_weight

    def _scale(self, inputs: ScaleInputs):
        """Once per scale: the targets, the regions' areas and the masks at every layer."""
        grams, present = region_targets(inputs.network, self.style_layers, inputs.styles, inputs.blend,
                                        inputs.style_side, inputs.regions)
        masks = resize_masks(inputs.regions.content, *inputs.size)                  # [N, h, w, K]
        shapes = taps.layer_shapes(inputs.network, self.style_layers, *inputs.size)
        return grams, masks.mean((1, 2)) * present, {k: resize_masks(masks, *shapes[k]) for k in self.style_layers}

    def targets(self, inputs: ScaleInputs, frames: slice):
        grams, area, layer_masks = inputs.once("regions", lambda: self._scale(inputs))
        n = len(range(*frames.indices(inputs.frames.shape[0])))
        return {"grams": {k: jnp.broadcast_to(v, (n,) + v.shape) for k, v in grams.items()},
                "masks": {k: jnp.asarray(v[frames]) for k, v in layer_masks.items()},
                "area": jnp.asarray(area[frames])}

    def loss(self, image, features, target) -> jax.Array:
        grams = {name: region_grams(features[name], target["masks"][name]) for name in self.style_layers}
        return region_distance(grams, target["grams"], target["area"], self.style_layers, self.layer_weights,
                               self.distance)

    # ---- window protocol: region Gram sums and region weight sums, per layer ----
    def window_sums(self, features, masks, target, setup, ys, xs):
        grams, weights = {}, {}
        for name in self.style_layers:
            f = features[name]
            b, lh, lw, c = f.shape
            st = layer_stride(name)
            k = target["masks"][name].shape[-1]
            flat = f.reshape(b, -1, c)
            w = jax.vmap(lambda y, x: jax.lax.dynamic_slice(target["masks"][name], (y // st, x // st, 0),
                                                            (lh, lw, k)))(ys, xs)
            w = (w * masks[name][..., None]).reshape(b, -1, k)
            grams[name] = jnp.einsum("bpk,bpi,bpj->kij", w, flat, flat)
            weights[name] = w.sum((0, 1))
        return {"grams": grams, "weights": weights}

    def from_sums(self, sums, target, setup, layer_sizes):
        grams = {k: sums["grams"][k] / jnp.maximum(sums["weights"][k], 1e-3)[:, None, None] for k in self.style_layers}
        return region_distance(grams, target["grams"], target["area"], self.style_layers, self.layer_weights,
                               self.distance)
