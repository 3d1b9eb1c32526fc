"""The optimization core: many frames at once, each with its own optimizer state.

A per-frame step (loss, gradient, optax update) is ``jax.vmap``-ed over a leading frame axis, so
frames never couple (each L-BFGS has its own line search). A compiled chunk runs ``chunk``
iterations in ``lax.fori_loop``; Python only runs between chunks to update the progress bar and
check for non-finite losses. With several devices the frame axis is sharded over a ('frames',)
mesh from ``jax.make_mesh`` with ``NamedSharding``; ``jax.jit`` partitions the step.

Each (frame count, height, width) shape compiles once (ahead of time, so the compile time is
measured on its own); the iteration count of a chunk is a traced argument, so remainders do not
recompile.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from . import losses
from .config import StyleConfig
from .errors import NonFiniteLoss
from .lbfgs import BatchedLBFGS
from .vgg import Network

RANGE_WEIGHT = 10.0  # soft penalty that keeps pixels near [0, 1] during optimization


class FrameTargets(NamedTuple):
    """Per-frame targets (every leaf has a leading frame axis)."""

    content: dict[str, jax.Array]          # content features per content layer
    style: dict[str, jax.Array]            # target Gram matrices per style layer
    temporal: jax.Array                    # [N, H, W, 3] warped previous output (zeros if unused)
    temporal_mask: jax.Array               # [N, H, W] reliability mask (zeros disable the term)
    # semantic masks (LossSpec.regions > 0): style[name] is then [N, K, C, C], one Gram per region
    style_masks: dict[str, jax.Array] | None = None   # per style layer [N, H_l, W_l, K] output regions
    region_weights: jax.Array | None = None            # [N, K] content area of each region (0: no style)
    matting: Any = None                                # photorealism: per-frame matting statistics
    loss_masks: dict[str, jax.Array] | None = None     # LossSpec.loss_mask: per layer [N, H_l, W_l] weights
    loss_norms: dict[str, dict[str, jax.Array]] | None = None  # LossSpec.loss_mask: {'content'|'style': {layer: [N]}}


class Weights(NamedTuple):
    content: jax.Array
    style: jax.Array
    tv: jax.Array
    temporal: jax.Array
    photoreal: jax.Array | float = 0.0


@dataclass(frozen=True)
class LossSpec:
    """The static (hashable) part of the loss: layers and distance."""

    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    style_layer_weights: tuple[float, ...]
    distance: str
    regions: int = 0          # > 0: style loss per semantic region (masks in FrameTargets)
    photoreal: bool = False   # add the matting-Laplacian term (statistics in FrameTargets.matting)
    loss_mask: bool = False   # weight positions in the content and style losses (tiles' inner parts)
    windows: Any = None       # a jaxstyle.windowed.Plan: feature losses of the whole frame, window by window
    window_batch: int = 1     # windows evaluated at once (vmapped) ...
    window_mesh: Any = None   # ... and sharded over this ('windows',) mesh

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.content_layers + self.style_layers))


def make_optimizer(name: str, learning_rate: float):
    """The optimizer for ``name``: a :class:`BatchedLBFGS` or a (per-frame) optax transformation."""
    if name == "lbfgs":
        return BatchedLBFGS(memory_size=10, max_linesearch_steps=20, learning_rate=learning_rate)
    if name == "adam":
        return optax.adam(learning_rate)
    if name == "sgd":
        return optax.sgd(learning_rate, momentum=0.9)
    if name == "adagrad":
        return optax.adagrad(learning_rate)
    if name == "rmsprop":
        return optax.rmsprop(learning_rate)
    raise ValueError(f"unknown optimizer {name!r}")


def _norms(targets: FrameTargets, term: str):
    return None if targets.loss_norms is None else targets.loss_norms.get(term)


def loss_parts(network: Network, spec: LossSpec, net_params, image: jax.Array, targets: FrameTargets,
               weights: Weights) -> dict[str, jax.Array]:
    """Loss terms of ONE frame ([H, W, 3]; targets without the frame axis)."""
    # net_params is ``network.variables``: the weights and their precomputed flipped kernels
    if spec.windows is not None:
        from . import windowed
        from .stylize import layer_shapes

        shapes = layer_shapes(network, spec.layers, image.shape[0], image.shape[1])
        content, style = windowed.feature_losses(lambda x, layers: network.module.apply(net_params, x, layers),
                                                 spec.windows, image, spec, targets,
                                                 {k: hw[0] * hw[1] for k, hw in shapes.items()})
        return _total(spec, image, targets, weights, content, style)
    feats = network.module.apply(net_params, image[None], spec.layers)
    feats = {k: v[0] for k, v in feats.items()}
    if spec.loss_mask:
        content = losses.masked_content_loss(feats, targets.content, targets.loss_masks, spec.content_layers,
                                             spec.distance, _norms(targets, 'content'))
    else:
        content = losses.content_loss(feats, targets.content, spec.content_layers, spec.distance)
    if spec.loss_mask:
        style = losses.masked_gram_style_loss(feats, targets.style, targets.loss_masks, spec.style_layers,
                                              spec.style_layer_weights, spec.distance, _norms(targets, 'style'))
    elif spec.regions:
        style = losses.masked_style_loss(feats, targets.style, targets.style_masks, targets.region_weights,
                                         spec.style_layers, spec.style_layer_weights, spec.distance)
    else:
        style = losses.style_loss(feats, targets.style, spec.style_layers, spec.style_layer_weights, spec.distance)
    return _total(spec, image, targets, weights, content, style)


def _total(spec: LossSpec, image, targets: FrameTargets, weights: Weights, content, style) -> dict[str, jax.Array]:
    """Every loss term and the weighted total, from the feature losses."""
    tv = losses.tv_loss(image)
    diff = image - targets.temporal
    mask = targets.temporal_mask[..., None]
    temporal = jnp.sum(mask * diff * diff) / diff.size
    total = (weights.content * content + weights.style * style + weights.tv * tv
             + weights.temporal * temporal + RANGE_WEIGHT * losses.range_loss(image))
    parts = {"content": content, "style": style, "tv": tv, "temporal": temporal}
    if spec.photoreal:
        # per pixel, so LAMBDA does not depend on the frame size
        parts["photoreal"] = targets.matting.energy(image) / (image.shape[0] * image.shape[1])
        total = total + weights.photoreal * parts["photoreal"]
    return {"total": total, **parts}


def frame_loss(network: Network, spec: LossSpec, net_params, image, targets, weights) -> jax.Array:
    return loss_parts(network, spec, net_params, image, targets, weights)["total"]


# Compiled programs, shared by every Problem with the same network layout, loss, optimizer, shape
# and devices (the weights are arguments, not constants, so they need no recompile).
_COMPILED: dict[tuple, tuple] = {}


@dataclass
class Problem:
    """Everything needed to optimize a batch of frames at one scale."""

    network: Network
    spec: LossSpec
    optimizer_name: str
    learning_rate: float
    weights: Weights
    mesh: jax.sharding.Mesh | None = None

    def _optimizer(self):
        return make_optimizer(self.optimizer_name, self.learning_rate)

    # The three compiled programs: init, a chunk of iterations, and evaluation of the loss terms.
    def _fns(self):
        network, spec, opt = self.network, self.spec, self._optimizer()

        def batched_value_and_grad(net_params, targets, weights):
            def one(x, t):
                return jax.value_and_grad(lambda y: frame_loss(network, spec, net_params, y, t, weights))(x)

            return lambda xs: jax.vmap(one)(xs, targets)

        def init(net_params, images, targets, weights):
            if isinstance(opt, BatchedLBFGS):
                return opt.init(images, batched_value_and_grad(net_params, targets, weights))
            return jax.vmap(opt.init)(images)

        def chunk(net_params, images, state, targets, weights, n_iters):
            vg = batched_value_and_grad(net_params, targets, weights)

            def body(_, carry):
                x, s = carry
                if isinstance(opt, BatchedLBFGS):
                    return opt.step(x, s, vg)
                _, grad = vg(x)
                updates, s = jax.vmap(opt.update)(grad, s, x)
                return optax.apply_updates(x, updates), s

            return jax.lax.fori_loop(0, n_iters, body, (images, state))

        def evaluate(net_params, images, targets, weights):
            return jax.vmap(lambda x, t: loss_parts(network, spec, net_params, x, t, weights))(images, targets)

        return init, chunk, evaluate

    def compiled(self, params, images: jax.Array, targets: FrameTargets, weights: Weights):
        """AOT-compile the programs for this shape once.

        Returns (initial optimizer state, chunk program, evaluation program, compile seconds); the
        compile seconds are 0 when the shape was compiled before.
        """
        net = self.network
        weights = Weights(*(jnp.asarray(v, jnp.float32) for v in weights))
        key = (net.arch, net.pooling, net.preprocessing, self.spec, self.optimizer_name, float(self.learning_rate),
               images.shape, None if self.mesh is None else tuple(d.id for d in self.mesh.devices.flat))
        t0 = time.perf_counter()
        state = None
        if key not in _COMPILED:
            init, chunk, evaluate = self._fns()
            # Every leaf of the optimizer state has the frame axis first: pin it (and the images)
            # to the frame sharding, so that a chunk's outputs are valid inputs of the next chunk
            # (left to propagation, tiny frames may come out replicated).
            out_init = out_chunk = None
            if self.mesh is not None:
                frames = NamedSharding(self.mesh, P("frames"))
                out_init, out_chunk = frames, (frames, frames)
            init_c = jax.jit(init, out_shardings=out_init).lower(params, images, targets, weights).compile()
            state = init_c(params, images, targets, weights)
            # the optimizer state is donated: its buffers become the next state's (at 4K the L-BFGS
            # memory alone is 2 GiB per frame); the images are not (a non-finite chunk keeps them)
            chunk_c = jax.jit(chunk, out_shardings=out_chunk, donate_argnums=(2,)).lower(params, images, state, targets, weights,
                                                                    jnp.int32(1)).compile()
            eval_c = jax.jit(evaluate).lower(params, images, targets, weights).compile()
            _COMPILED[key] = (init_c, chunk_c, eval_c)
            seconds = time.perf_counter() - t0
        else:
            seconds = 0.0
        init_c, chunk_c, eval_c = _COMPILED[key]
        if state is None:
            state = init_c(params, images, targets, weights)
        return state, chunk_c, eval_c, seconds


def frame_mesh(n_frames: int, frames_per_device: int, devices: Sequence[jax.Device] | None = None):
    """A ('frames',) mesh over as many devices as the batch can use (None for one device)."""
    devices = list(devices or jax.devices())
    use = max(1, min(len(devices), math.ceil(n_frames / frames_per_device)))
    if use == 1:
        return None
    # Auto axis: jit's partitioner propagates the frame sharding through the vmapped step.
    return jax.make_mesh((use,), ("frames",), devices=devices[:use], axis_types=(jax.sharding.AxisType.Auto,))


def shard_frames(tree, mesh):
    """Place a pytree whose leaves have a leading frame axis on the mesh (frames sharded)."""
    if mesh is None:
        return jax.tree.map(jnp.asarray, tree)
    sharding = NamedSharding(mesh, P("frames"))
    return jax.tree.map(lambda a: jax.device_put(a, sharding), tree)


def replicate(tree, mesh):
    if mesh is None:
        return tree
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda a: jax.device_put(a, sharding), tree)


@dataclass
class ScaleResult:
    images: np.ndarray
    losses_initial: dict[str, np.ndarray]
    losses_final: dict[str, np.ndarray]
    iterations: int
    compile_seconds: float
    run_seconds: float
    nonfinite: bool = False


def run_scale(problem: Problem, images: np.ndarray | jax.Array, targets: FrameTargets, iterations: int, *,
              chunk: int = 10, progress: Callable[[int, dict], None] | None = None,
              on_chunk: Callable[[int, dict[str, np.ndarray], float], None] | None = None) -> ScaleResult:
    """Optimize a batch of frames [N, H, W, 3] for ``iterations`` steps at one scale.

    ``progress(n_done, losses)`` is called between chunks (for the progress bar); ``on_chunk``
    receives (iterations so far, per-frame losses, seconds since the start of the scale).
    A non-finite loss stops the run and keeps the last finite images (``nonfinite`` is set).
    """
    n = images.shape[0]
    mesh = problem.mesh
    pad = (-n) % (mesh.devices.size if mesh is not None else 1)
    images = jnp.asarray(images, jnp.float32)
    if pad:
        images = jnp.concatenate([images, jnp.repeat(images[-1:], pad, axis=0)])
        targets = jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]), targets)
    images = shard_frames(images, mesh)
    targets = shard_frames(targets, mesh)
    params = replicate(problem.network.variables, mesh)
    weights = replicate(Weights(*(jnp.asarray(v, jnp.float32) for v in problem.weights)), mesh)
    state, chunk_c, eval_c, compile_seconds = problem.compiled(params, images, targets, weights)

    def losses_of(x):
        parts = eval_c(params, x, targets, weights)
        return {k: np.asarray(v)[:n] for k, v in parts.items()}

    t0 = time.perf_counter()
    initial = losses_of(images)
    done = 0
    last_good, last_losses = images, initial
    nonfinite = not np.all(np.isfinite(initial["total"]))
    while done < iterations and not nonfinite:
        step = min(chunk, iterations - done)
        new_images, state = chunk_c(params, images, state, targets, weights, jnp.int32(step))
        current = losses_of(new_images)
        done += step
        if not np.all(np.isfinite(current["total"])) or not bool(jnp.all(jnp.isfinite(new_images))):
            nonfinite = True
            break
        images, last_good, last_losses = new_images, new_images, current
        if progress is not None:
            progress(step, current)
        if on_chunk is not None:
            on_chunk(done, current, time.perf_counter() - t0)
    out = np.asarray(last_good)[:n]
    return ScaleResult(out, initial, last_losses, done, compile_seconds, time.perf_counter() - t0, nonfinite)


def raise_if_nonfinite(result: ScaleResult) -> None:
    if result.nonfinite:
        raise NonFiniteLoss("the loss became NaN or infinite; kept the last finite image")
