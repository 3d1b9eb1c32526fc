"""What a loss term is, and what it may read to build its targets.

A term is a frozen dataclass whose fields are its static settings (layers, distance, variant): they
are hashable and part of the compiled program's key. Everything that changes from frame to frame or
from run to run without a recompile is either its *target* (a pytree with a leading frame axis,
built on the host by :meth:`Term.targets`) or its *weight* (a traced scalar, :meth:`Term.weight`).
One file per term (``content.py``, ``style.py``, ...) holds all of it: when the term is active
(:meth:`Term.select`), its weight, its targets, and its loss. :mod:`.objective` lists them in
:data:`~jaxstyle.objective.objective.TERMS` and sums ``weight * loss`` over the active ones.

Feature terms (those with ``layers``) also define the window protocol used by coupled tiles
(:mod:`.windowed`): ``window_setup`` (per frame, before the scan), ``window_sums`` (additive over
windows) and ``from_sums`` (the loss from the sums). A term without it cannot be windowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import jax
import numpy as np

from ..imaging import resize, resize_masks
from ..nets.taps import layer_shapes
from ..nets.vgg import Network


@dataclass
class ScaleInputs:
    """Everything the terms may build their targets from, at one scale (host side).

    ``frames`` are the content frames at the scale (after colour preservation); ``guides`` (the
    original colour contents, the matting Laplacian's guide) and every other full-size input
    (``regions``, ``temporal``, ``loss_weights``) are resized by the terms that use them.
    """

    network: Network
    frames: np.ndarray                              # [N, h, w, 3]
    full_guides: np.ndarray                         # [N, H, W, 3]
    styles: Sequence[np.ndarray]
    blend: np.ndarray                               # [S] style blend weights, summing to 1
    style_side: float                               # long side at which style statistics are taken
    frame_styles: Sequence[Sequence[np.ndarray]] | None = None  # style video: per frame, style images to average
    style_targets: dict[str, np.ndarray] | None = None         # given per-frame Gram targets {layer: [N, C, C]}
    regions: Any = None                             # jaxstyle.objective.regions.Regions (full size)
    temporal: Any = None                            # jaxstyle.objective.temporal.Temporal (full size)
    loss_weights: np.ndarray | None = None          # [N, H, W] position weights of the feature losses (tiles)
    loss_norms: dict[str, dict[str, np.ndarray]] | None = None  # {"content"|"style": {layer: [N]}}
    windows: tuple[int, int] | None = None          # (window, halo): features computed window by window
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    @property
    def guides(self) -> np.ndarray:
        """The original colour contents at this scale [N, h, w, 3]."""
        return self.once("guides", lambda: resize(self.full_guides, *self.size))

    def once(self, key: str, make: Callable[[], Any]) -> Any:
        """A value computed once per scale and shared by the batches (and the terms) of the scale."""
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    def loss_masks(self, layers: Sequence[str]) -> dict[str, np.ndarray]:
        """``loss_weights`` at this scale and at each layer's resolution: {layer: [N, h_l, w_l]}."""
        weights = self.once("loss_weights", lambda: resize_masks(
            np.asarray(self.loss_weights, np.float32)[..., None], *self.size))
        shapes = layer_shapes(self.network, tuple(layers), *self.size)
        return {k: self.once(f"loss_mask/{k}", lambda k=k: resize_masks(weights, *shapes[k])[..., 0]) for k in layers}


class Term:
    """Base of the loss terms (see the module docstring). Subclasses are frozen dataclasses."""

    name: ClassVar[str]        # key of its loss part, its target and its weight

    @property
    def layers(self) -> tuple[str, ...]:
        """The network taps the term reads (empty for pixel terms)."""
        return ()

    @classmethod
    def select(cls, config, inputs: ScaleInputs) -> "Term | None":
        """The term for this config and these inputs, or None when it is not part of the objective."""
        raise NotImplementedError

    def weight(self, config, inputs: ScaleInputs) -> float:
        raise NotImplementedError

    def targets(self, inputs: ScaleInputs, frames: slice) -> Any:
        """The term's target for frames ``frames`` of the scale: a pytree whose leaves have the frame
        axis first (``None`` for a term without one)."""
        return None

    def loss(self, image: jax.Array, features: dict[str, jax.Array] | None, target: Any) -> jax.Array:
        """The loss of ONE frame [H, W, 3] (features and target without the frame axis)."""
        raise NotImplementedError

    # ---- window protocol (feature terms that coupled tiles can evaluate window by window) ----
    windowed: ClassVar[bool] = False  # a term that implements it says so (a property where it depends)

    def window_setup(self, target: Any) -> Any:
        """Per-frame values the window sums need (computed once, outside the scan over windows)."""
        return None

    def window_sums(self, features: dict[str, jax.Array], masks: dict[str, jax.Array], target: Any, setup: Any,
                    ys: jax.Array, xs: jax.Array) -> Any:
        """Additive sums over a batch of windows: ``features`` {layer: [b, h, w, C]}, ``masks``
        {layer: [b, h, w]} (1 at the positions of each window's own block), windows at pixel
        offsets ``ys``, ``xs`` [b] of the frame."""
        raise NotImplementedError

    def from_sums(self, sums: Any, target: Any, setup: Any, layer_sizes: dict[str, int]) -> jax.Array:
        """The frame's loss from the window sums; ``layer_sizes``: positions per layer in the frame."""
        raise NotImplementedError


def frame_slices(tree: Any, frames: slice) -> Any:
    """The frames ``frames`` of every leaf of a per-frame pytree (NumPy or JAX leaves)."""
    return jax.tree.map(lambda a: a[frames], tree)
