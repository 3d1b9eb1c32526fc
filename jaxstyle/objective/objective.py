"""The objective: the active loss terms, their weighted sum, and how it is evaluated.

``TERMS`` lists every term class in summation order. For a config and a scale's inputs,
:meth:`Objective.select` keeps the terms that apply (each term decides, see
:meth:`jaxstyle.objective.term.Term.select`); :meth:`Objective.parts` evaluates them on ONE frame
and returns every part and ``total = sum(weight[name] * part[name])``. The network runs once for
all feature terms: on the whole frame, or window by window (:class:`.windowed.Windows`) with the
same result. A new term is a new file with its class, added to ``TERMS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from ..nets import taps
from ..nets.vgg import Network
from . import windowed
from .content import ContentTerm
from .photoreal import PhotorealTerm
from .regions import RegionStyleTerm
from .regularizers import RangeTerm, TVTerm
from .style import StyleTerm
from .temporal import TemporalTerm
from .term import ScaleInputs, Term

TERMS: tuple[type[Term], ...] = (ContentTerm, StyleTerm, RegionStyleTerm, TVTerm, TemporalTerm, RangeTerm,
                                 PhotorealTerm)


@dataclass(frozen=True)
class Objective:
    """The active terms (static and hashable: part of the compiled program's key)."""

    terms: tuple[Term, ...]

    @classmethod
    def select(cls, config, inputs: ScaleInputs) -> "Objective":
        chosen = (term_class.select(config, inputs) for term_class in TERMS)
        return cls(tuple(term for term in chosen if term is not None))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(term.name for term in self.terms)

    @property
    def layers(self) -> tuple[str, ...]:
        """The network taps of all feature terms, in term order."""
        return tuple(dict.fromkeys(name for term in self.terms for name in term.layers))

    def weights(self, config, inputs: ScaleInputs) -> dict[str, jax.Array]:
        """{term name: weight} as float32 scalars (traced arguments: changing one never recompiles)."""
        return {term.name: jnp.float32(term.weight(config, inputs)) for term in self.terms}

    def targets(self, inputs: ScaleInputs, frames: slice) -> dict[str, Any]:
        """{term name: target} for frames ``frames`` of the scale (leading frame axis)."""
        return {term.name: term.targets(inputs, frames) for term in self.terms}

    def parts(self, network: Network, variables, image: jax.Array, targets: Mapping[str, Any],
              weights: Mapping[str, jax.Array], windows: windowed.Windows | None = None) -> dict[str, jax.Array]:
        """Every term's loss of ONE frame [H, W, 3] (targets without the frame axis) and the weighted
        ``total``. ``variables`` is ``network.variables`` (the weights and their flipped kernels)."""
        feature_terms = [term for term in self.terms if term.layers]
        features = None
        values: dict[str, jax.Array] = {}
        if feature_terms and windows is not None:
            not_windowed = [term.name for term in feature_terms if not term.windowed]
            if not_windowed:
                raise ValueError(f"terms {not_windowed} cannot be evaluated window by window")
            shapes = taps.layer_shapes(network, self.layers, image.shape[0], image.shape[1])
            values = windowed.feature_parts(feature_terms, lambda x, layers: network.module.apply(variables, x, layers),
                                            windows, image, targets, {k: hw[0] * hw[1] for k, hw in shapes.items()})
        elif feature_terms:
            features = {k: v[0] for k, v in network.module.apply(variables, image[None], self.layers).items()}
        total = None
        for term in self.terms:
            if term.name not in values:
                values[term.name] = term.loss(image, features, targets[term.name])
            weighted = weights[term.name] * values[term.name]
            total = weighted if total is None else total + weighted
        return {"total": total, **{term.name: values[term.name] for term in self.terms}}

    def total(self, network: Network, variables, image, targets, weights, windows=None) -> jax.Array:
        return self.parts(network, variables, image, targets, weights, windows)["total"]
