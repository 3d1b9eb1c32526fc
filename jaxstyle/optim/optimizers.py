"""The optimizers by name, all behind one protocol (what :func:`jaxstyle.optim.solve.solve` calls).

A *batched optimizer* works on a leading frame axis, every frame with its own state, through

- ``init(x, value_and_grad) -> state``
- ``step(x, state, value_and_grad) -> (x, state)``

where ``value_and_grad(x) -> ([N], [N, ...])`` evaluates all frames at once. The L-BFGS
(:class:`jaxstyle.optim.lbfgs.BatchedLBFGS`) implements it with its own batched line search; any
optax gradient transformation gets it from :class:`PerFrame` (vmapped over frames). ``OPTIMIZERS``
maps each name to its factory and default learning rate; :func:`make` builds one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Protocol

import jax
import optax

from .lbfgs import BatchedLBFGS


class BatchedOptimizer(Protocol):
    def init(self, x: jax.Array, value_and_grad: Callable) -> Any: ...

    def step(self, x: jax.Array, state: Any, value_and_grad: Callable) -> tuple[jax.Array, Any]: ...


@dataclass(frozen=True)
class PerFrame:
    """An optax transformation applied to every frame on its own (its state vmapped over frames)."""

    transformation: optax.GradientTransformation

    def init(self, x: jax.Array, value_and_grad: Callable) -> Any:
        return jax.vmap(self.transformation.init)(x)  # needs no evaluation

    def step(self, x: jax.Array, state: Any, value_and_grad: Callable) -> tuple[jax.Array, Any]:
        _, grad = value_and_grad(x)
        updates, state = jax.vmap(self.transformation.update)(grad, state, x)
        return optax.apply_updates(x, updates), state


class Entry(NamedTuple):
    factory: Callable[[float], BatchedOptimizer]
    learning_rate: float   # the default step size


OPTIMIZERS: dict[str, Entry] = {
    "lbfgs": Entry(lambda lr: BatchedLBFGS(memory_size=10, max_linesearch_steps=20, learning_rate=lr), 1.0),
    "adam": Entry(lambda lr: PerFrame(optax.adam(lr)), 0.02),
    "sgd": Entry(lambda lr: PerFrame(optax.sgd(lr, momentum=0.9)), 0.02),
    "adagrad": Entry(lambda lr: PerFrame(optax.adagrad(lr)), 0.05),
    "rmsprop": Entry(lambda lr: PerFrame(optax.rmsprop(lr)), 0.005),
}


def make(name: str, learning_rate: float | None = None) -> BatchedOptimizer:
    """The optimizer ``name`` at ``learning_rate`` (default: the table's)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    entry = OPTIMIZERS[name]
    return entry.factory(entry.learning_rate if learning_rate is None else learning_rate)
