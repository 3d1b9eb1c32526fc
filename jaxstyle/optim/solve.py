"""Solving one scale: many frames at once, each with its own optimizer state.

:func:`solve` owns everything between an objective and its optimized images: compilation (one
compile per problem and shape, ahead of time so its cost is measured apart), the iteration chunks,
the sharding over devices, progress, and the stop on a non-finite loss.

A per-frame loss and gradient is ``jax.vmap``-ed over a leading frame axis, so frames never couple
(each L-BFGS has its own line search). A compiled chunk runs ``chunk`` iterations in
``lax.fori_loop``; Python only runs between chunks to update the progress bar and check for
non-finite losses. With several devices the frame axis is sharded over a ('frames',) mesh from
``jax.make_mesh`` with ``NamedSharding``; ``jax.jit`` partitions the step. The iteration count of a
chunk is a traced argument, so remainders do not recompile. :func:`clear_caches` drops the
compiled programs.

Several processes (hosts): the mesh may span every process's devices (:func:`global_frame_mesh`).
Each process then passes only its own frames; they become rows of one global array
(``jax.make_array_from_process_local_data``), every process runs the same compiled program on it,
and each gets its own rows back. Decisions that end the loop (a non-finite loss) are agreed by all
processes, so they stay in lock step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from ..nets.vgg import Network
from ..objective import Objective, Windows
from .optimizers import make

# Compiled programs, shared by every Problem with the same network layout, objective, optimizer,
# shape and devices (the weights are arguments, not constants, so they need no recompile).
_COMPILED: dict[tuple, tuple] = {}
_EVALUATORS: dict[tuple, Callable] = {}
_COMPILES = [0]  # optimization problems compiled by this process (batch jobs report it)


def compile_count() -> int:
    """How many optimization problems (one per shape and objective) this process has compiled."""
    return _COMPILES[0]


def clear_caches() -> None:
    """Forget every compiled optimization and evaluation program."""
    _COMPILED.clear()
    _EVALUATORS.clear()


@dataclass(frozen=True)
class Problem:
    """What is solved at one scale: the objective on a network, by an optimizer, evaluated whole or
    window by window, on one device or sharded over ``mesh``."""

    objective: Objective
    network: Network
    optimizer: str
    learning_rate: float
    windows: Windows | None = None
    mesh: jax.sharding.Mesh | None = None

    def _parts(self, variables, image, target, weights):
        return self.objective.parts(self.network, variables, image, target, weights, self.windows)

    # The three programs: init, a chunk of iterations, and evaluation of the loss terms.
    def _programs(self):
        opt = make(self.optimizer, self.learning_rate)

        def batched_value_and_grad(variables, targets, weights):
            def one(x, t):
                return jax.value_and_grad(lambda y: self._parts(variables, y, t, weights)["total"])(x)

            return lambda xs: jax.vmap(one)(xs, targets)

        def init(variables, images, targets, weights):
            return opt.init(images, batched_value_and_grad(variables, targets, weights))

        def chunk(variables, images, state, targets, weights, n_iters):
            vg = batched_value_and_grad(variables, targets, weights)
            return jax.lax.fori_loop(0, n_iters, lambda _, carry: opt.step(*carry, vg), (images, state))

        def evaluate(variables, images, targets, weights):
            return jax.vmap(lambda x, t: self._parts(variables, x, t, weights))(images, targets)

        return init, chunk, evaluate

    def compiled(self, variables, images: jax.Array, targets, weights):
        """AOT-compile the programs for this shape once.

        Returns (initial optimizer state, chunk program, evaluation program, compile seconds); the
        compile seconds are 0 when the shape was compiled before.
        """
        key = (self.network.module, self.objective, self.windows, self.optimizer, float(self.learning_rate),
               images.shape, jax.tree.structure(targets),
               None if self.mesh is None else tuple(d.id for d in self.mesh.devices.flat))
        t0 = time.perf_counter()
        state = None
        if key not in _COMPILED:
            init, chunk, evaluate = self._programs()
            # Every leaf of the optimizer state has the frame axis first: pin it (and the images)
            # to the frame sharding, so that a chunk's outputs are valid inputs of the next chunk
            # (left to propagation, tiny frames may come out replicated).
            out_init = out_chunk = None
            if self.mesh is not None:
                frames = NamedSharding(self.mesh, P("frames"))
                out_init, out_chunk = frames, (frames, frames)
            init_c = jax.jit(init, out_shardings=out_init).lower(variables, images, targets, weights).compile()
            state = init_c(variables, images, targets, weights)
            # the optimizer state is donated: its buffers become the next state's (at 4K the L-BFGS
            # memory alone is 2 GiB per frame); the images are not (a non-finite chunk keeps them)
            chunk_c = jax.jit(chunk, out_shardings=out_chunk, donate_argnums=(2,)).lower(
                variables, images, state, targets, weights, jnp.int32(1)).compile()
            eval_c = jax.jit(evaluate).lower(variables, images, targets, weights).compile()
            _COMPILED[key] = (init_c, chunk_c, eval_c)
            _COMPILES[0] += 1
            seconds = time.perf_counter() - t0
        else:
            seconds = 0.0
        init_c, chunk_c, eval_c = _COMPILED[key]
        if state is None:
            state = init_c(variables, images, targets, weights)
        return state, chunk_c, eval_c, seconds


def frame_mesh(n_frames: int, frames_per_device: int, devices: Sequence[jax.Device] | None = None):
    """A ('frames',) mesh over as many devices as the batch can use (None for one device)."""
    devices = list(devices or jax.local_devices())  # a program over other processes is asked for explicitly
    use = max(1, min(len(devices), math.ceil(n_frames / frames_per_device)))
    if use == 1:
        return None
    # Auto axis: jit's partitioner propagates the frame sharding through the vmapped step.
    return jax.make_mesh((use,), ("frames",), devices=devices[:use], axis_types=(jax.sharding.AxisType.Auto,))


def window_mesh(devices: Sequence[jax.Device]):
    """A ('windows',) mesh: a single frame's windows sharded over the devices."""
    return jax.make_mesh((len(devices),), ("windows",), devices=list(devices),
                         axis_types=(jax.sharding.AxisType.Auto,))


def global_frame_mesh(devices: Sequence[jax.Device]):
    """A ('frames',) mesh over every process's devices, each process's devices contiguous (so a
    process's frames are one block of rows)."""
    ordered = sorted(devices, key=lambda d: (d.process_index, d.id))
    return jax.make_mesh((len(ordered),), ("frames",), devices=ordered, axis_types=(jax.sharding.AxisType.Auto,))


def spans_processes(mesh) -> bool:
    """Whether ``mesh`` holds devices of other processes (a global program)."""
    return mesh is not None and any(d.process_index != jax.process_index() for d in mesh.devices.flat)


def local_device_count(mesh) -> int:
    if mesh is None:
        return 1
    return sum(d.process_index == jax.process_index() for d in mesh.devices.flat)


def shard_frames(tree, mesh):
    """Place a pytree whose leaves have a leading frame axis on the mesh (frames sharded); across
    processes each process's leaves are its own rows."""
    if mesh is None:
        return jax.tree.map(jnp.asarray, tree)
    sharding = NamedSharding(mesh, P("frames"))
    if spans_processes(mesh):
        return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), tree)
    return jax.tree.map(lambda a: jax.device_put(a, sharding), tree)


def replicate(tree, mesh):
    if mesh is None:
        return tree
    sharding = NamedSharding(mesh, P())
    if spans_processes(mesh):  # every process holds the same values
        return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a), np.shape(a)),
                            tree)
    return jax.tree.map(lambda a: jax.device_put(a, sharding), tree)


def local_rows(array) -> np.ndarray:
    """This process's rows of a frame-sharded array (all of it on one process)."""
    if array.is_fully_addressable:
        return np.asarray(array)
    shards = sorted(array.addressable_shards, key=lambda sh: sh.index[0].start or 0)
    return np.concatenate([np.asarray(sh.data) for sh in shards])


def all_processes(flag: bool, mesh) -> bool:
    """``flag`` held by every process of a global program (one process: ``flag``)."""
    if not spans_processes(mesh):
        return flag
    return bool(np.all(multihost_utils.process_allgather(np.asarray(flag, np.int32))))


def pad_frames(tree, count: int):
    """Repeat the last frame of every leaf ``count`` times (one shape for an uneven last batch)."""
    if not count:
        return tree
    return jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], count, axis=0)]), tree)


@dataclass
class ScaleResult:
    images: np.ndarray
    losses_initial: dict[str, np.ndarray]
    losses_final: dict[str, np.ndarray]
    iterations: int
    compile_seconds: float
    run_seconds: float
    nonfinite: bool = False


def solve(problem: Problem, images: np.ndarray | jax.Array, targets, weights: dict[str, jax.Array], iterations: int,
          *, chunk: int = 10, progress: Callable[[int, dict], None] | None = None,
          on_chunk: Callable[[int, dict[str, np.ndarray], float], None] | None = None) -> ScaleResult:
    """Optimize a batch of frames [N, H, W, 3] for ``iterations`` steps.

    ``progress(n_done, losses)`` is called between chunks (for the progress bar); ``on_chunk``
    receives (iterations so far, per-frame losses, seconds since the start of the scale).
    A non-finite loss stops the run and keeps the last finite images (``nonfinite`` is set).
    """
    n = images.shape[0]  # this process's frames
    mesh = problem.mesh
    pad = (-n) % local_device_count(mesh)
    images = pad_frames(jnp.asarray(images, jnp.float32), pad)
    targets = pad_frames(targets, pad)
    images = shard_frames(images, mesh)
    targets = shard_frames(targets, mesh)
    variables = replicate(problem.network.variables, mesh)
    weights = replicate({k: jnp.asarray(v, jnp.float32) for k, v in weights.items()}, mesh)
    state, chunk_c, eval_c, compile_seconds = problem.compiled(variables, images, targets, weights)

    def losses_of(x):
        parts = eval_c(variables, x, targets, weights)
        return {k: local_rows(v)[:n] for k, v in parts.items()}

    t0 = time.perf_counter()
    initial = losses_of(images)
    done = 0
    last_good, last_losses = images, initial
    nonfinite = not all_processes(bool(np.all(np.isfinite(initial["total"]))), mesh)
    while done < iterations and not nonfinite:
        step = min(chunk, iterations - done)
        new_images, state = chunk_c(variables, images, state, targets, weights, jnp.int32(step))
        current = losses_of(new_images)
        done += step
        finite = bool(np.all(np.isfinite(current["total"]))) and bool(jnp.all(jnp.isfinite(new_images)))
        if not all_processes(finite, mesh):
            nonfinite = True
            break
        images, last_good, last_losses = new_images, new_images, current
        if progress is not None:
            progress(step, current)
        if on_chunk is not None:
            on_chunk(done, current, time.perf_counter() - t0)
    out = local_rows(last_good)[:n]
    return ScaleResult(out, initial, last_losses, done, compile_seconds, time.perf_counter() - t0, nonfinite)


def evaluate(objective: Objective, network: Network, images, targets, weights: dict[str, jax.Array],
             windows: Windows | None = None) -> dict[str, np.ndarray]:
    """The loss parts {name: [N]} of images [N, H, W, 3] (no optimization); one compile per
    objective, network layout and shape."""
    key = (network.module, objective, windows)
    if key not in _EVALUATORS:
        _EVALUATORS[key] = jax.jit(lambda v, x, t, w: jax.vmap(
            lambda xi, ti: objective.parts(network, v, xi, ti, w, windows))(x, t))
    parts = _EVALUATORS[key](network.variables, jnp.asarray(images, jnp.float32), targets,
                             {k: jnp.asarray(v, jnp.float32) for k, v in weights.items()})
    return {k: np.asarray(v) for k, v in parts.items()}
