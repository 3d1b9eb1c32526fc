"""The training loss of a feed-forward network: the engine's own objective (content, style, TV,
temporal and range terms of :mod:`jaxstyle.objective`, the same layers, normalization and weights)
evaluated on the network's outputs, with targets built inside the step: the content features of the
batch's crops, the Gram matrices of each sample's style, and (video pairs) the network's output for
the earlier frame warped by the content's flow with the engine's occlusion mask. The gradient
reaches the network through both outputs of a pair, as in Huang et al. and ReCoNet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import imaging
from ..config import StyleConfig
from ..errors import UserError
from ..nets import taps
from ..nets.transformer import Stylizer
from ..nets.vgg import Network
from ..objective import Objective, ScaleInputs
from ..objective.style import blended_grams
from ..video.flow import consistency_mask, warp

TRAINABLE_TERMS = ("content", "style", "tv", "temporal", "range")


def training_objective(config: StyleConfig, network: Network, crop: int) -> tuple[Objective, dict[str, jax.Array]]:
    """The engine's objective for crops of ``crop`` px and its weights (the temporal weight is the
    training's own and is set by :func:`loss_parts`' caller)."""
    if config.photoreal or config.content_mask:
        raise UserError("training a network takes the content, style, TV and temporal terms; "
                        "--photoreal and semantic masks are for the optimizer")
    dummy = np.zeros((1, crop, crop, 3), np.float32)
    inputs = ScaleInputs(network, dummy, dummy, [dummy[0]], np.ones(1), style_side=float(crop))
    objective = Objective.select(config, inputs)
    unknown = [name for name in objective.names if name not in TRAINABLE_TERMS]
    if unknown:
        raise UserError(f"the loss terms {unknown} cannot train a network")
    return objective, objective.weights(config, inputs)


def style_statistics(network: Network, layers: Sequence[str], image: np.ndarray, long_side: float) -> np.ndarray:
    """Ghiasi et al.'s style input, from the engine's VGG: the mean and standard deviation of every
    channel of the style layers, the style image at ``long_side`` [sum of 2 x channels]."""
    h, w = taps.style_image_size(image.shape[0], image.shape[1], long_side)
    from_image = taps.features(network, tuple(layers), imaging.resize(image, h, w)[None])
    parts = []
    for name in layers:
        f = np.asarray(from_image[name][0]).reshape(-1, from_image[name].shape[-1])
        parts += [f.mean(0), f.std(0)]
    return np.concatenate(parts).astype(np.float32)


@dataclass
class StyleBank:
    """The training styles: each one's Gram targets {layer: [S, C, C]} and conditioning [S, D]."""

    grams: dict[str, np.ndarray]
    conds: np.ndarray

    @classmethod
    def build(cls, network: Network, config: StyleConfig, styles: Sequence[np.ndarray], kind: str,
              style_side: float) -> "StyleBank":
        layers = tuple(config.style_layers)
        per_style = [blended_grams(network, layers, [s], [1.0], style_side) for s in styles]
        grams = {k: np.stack([np.asarray(g[k]) for g in per_style]) for k in layers}
        if kind == "styles":
            conds = np.eye(len(styles), dtype=np.float32)
        else:
            conds = np.stack([style_statistics(network, layers, s, style_side) for s in styles])
        return cls(grams, conds)

    def for_samples(self, styles: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        return {k: v[styles] for k, v in self.grams.items()}, self.conds[styles]


def loss_parts(module: Stylizer, objective: Objective, network: Network, params, variables, batch: dict,
               weights: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """The batch's mean loss parts and ``total``; ``batch`` holds ``contents`` [B, s, s, 3],
    ``cond`` [B, D], ``grams`` {layer: [B, C, C]} and, for pairs, ``previous``, ``forward``,
    ``backward`` and ``paired``."""
    outputs = module.apply({"params": params}, batch["contents"], batch["cond"])
    content_layers = next(term.layers for term in objective.terms if term.name == "content")
    content = jax.lax.stop_gradient(network.module.apply(variables, batch["contents"], content_layers))
    if "previous" in batch:
        earlier = module.apply({"params": params}, batch["previous"], batch["cond"])
        mask = consistency_mask(batch["forward"], batch["backward"]) * batch["paired"][:, None, None]
        temporal = {"target": warp(earlier, batch["backward"]), "mask": mask}
    else:
        temporal = {"target": jnp.zeros_like(outputs), "mask": jnp.zeros(outputs.shape[:3], outputs.dtype)}
    targets = {"content": content, "style": batch["grams"], "tv": None, "temporal": temporal, "range": None}
    targets = {name: targets[name] for name in objective.names}
    parts = jax.vmap(lambda x, t: objective.parts(network, variables, x, t, weights))(outputs, targets)
    return {k: jnp.mean(v) for k, v in parts.items()}
