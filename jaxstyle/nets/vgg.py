"""VGG16 / VGG19 feature extractors in Flax (NHWC), with taps by Caffe layer names.

The network computes only up to the deepest layer asked for. Input images are float32 RGB in
[0, 1], shape [N, H, W, 3]; the preprocessing that the weights were trained with is applied inside:

- ``torch``: torchvision's ImageNet normalization ``(x - mean) / std`` on RGB in [0, 1];
- ``caffe``: the original Caffe / Keras convention, BGR in [0, 255] minus the ImageNet mean.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ..errors import UserError

# Channel counts per block; 'M' marks a pooling layer.
ARCHS: dict[str, list[list[int]]] = {
    "vgg16": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "vgg19": [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}

TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
MIN_SIDE = 16  # four 2x2 poolings before relu5_1: smaller images have no deep features
ALIGN = 16     # the coarsest stride: windows starting on multiples of 16 keep every layer's grid aligned


def conv_names(arch: str) -> list[str]:
    """Caffe names of the convolutions, in order: conv1_1, conv1_2, pool1 is not a conv, ..."""
    return [f"conv{b + 1}_{i + 1}" for b, block in enumerate(ARCHS[arch]) for i in range(len(block))]


def layer_names(arch: str) -> list[str]:
    """All tap names in forward order: conv1_1, relu1_1, conv1_2, relu1_2, pool1, ..."""
    names: list[str] = []
    for b, block in enumerate(ARCHS[arch]):
        for i in range(len(block)):
            names += [f"conv{b + 1}_{i + 1}", f"relu{b + 1}_{i + 1}"]
        names.append(f"pool{b + 1}")
    return names


def check_layers(arch: str | None, layers: Sequence[str], what: str = "layers") -> None:
    """Raise a one-line UserError naming any tap that ``arch`` (or, with None, neither VGG) lacks."""
    known = set(layer_names(arch)) if arch else {n for a in ARCHS for n in layer_names(a)}
    unknown = [name for name in layers if name not in known]
    if unknown:
        raise UserError(f"unknown {arch or 'VGG'} {what} {', '.join(unknown)}; the taps are conv1_1, relu1_1, ..., "
                        f"pool1, ... up to {layer_names(arch or 'vgg19')[-2]}")
    if not layers:
        raise UserError(f"no {what} given")


def preprocess(images: jax.Array, mode: str) -> jax.Array:
    if mode == "torch":
        return (images - TORCH_MEAN) / TORCH_STD
    if mode == "caffe":
        return images[..., ::-1] * 255.0 - CAFFE_MEAN_BGR
    raise ValueError(f"unknown preprocessing {mode!r}")


_DIMS = ("NHWC", "HWIO", "NHWC")
PRECISIONS = ("float32", "tf32", "bfloat16")
# float32: full precision everywhere (on GPUs XLA's default would be TF32); tf32: the accelerator's
# default (TF32 on NVIDIA GPUs from Ampere on, bfloat16 passes on TPUs; CPUs compute float32 anyway);
# bfloat16: operands in bfloat16, products accumulated in float32
_LAX_PRECISION = {"float32": jax.lax.Precision.HIGHEST, "tf32": jax.lax.Precision.DEFAULT}


def _conv(x: jax.Array, kernel: jax.Array, precision: str = "float32") -> jax.Array:
    if precision == "bfloat16":
        return jax.lax.conv_general_dilated(x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16), (1, 1),
                                            ((1, 1), (1, 1)), dimension_numbers=_DIMS,
                                            preferred_element_type=jnp.float32)
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=_DIMS,
                                        precision=_LAX_PRECISION[precision])


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv3x3(x: jax.Array, kernel: jax.Array, precision: str = "float32") -> jax.Array:
    """3x3 'same' convolution, NHWC x HWIO, at ``precision`` (one of :data:`PRECISIONS`).

    Its gradient with respect to the input is written as a plain convolution with the flipped,
    transposed kernel. XLA's own transpose rule folds that transposition into the convolution's
    dimension labels; on CPU, inside a ``while`` loop (our compiled iteration chunks), such a
    convolution misses the fast library path and runs about 2.5x slower. Materializing the kernel
    in HWIO order keeps every convolution on the fast path.

    The weights are frozen in style transfer: this convolution is differentiable with respect to
    its input only, and reports a zero gradient for the kernel.
    """
    return _conv(x, kernel, precision)


def _conv3x3_fwd(x, kernel, precision):
    return _conv(x, kernel, precision), kernel


def _conv3x3_bwd(precision, kernel, g):
    flipped = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)
    return _conv(g, flipped, precision), jnp.zeros_like(kernel)


conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)


def flip_kernel(kernel: jax.Array) -> jax.Array:
    """The kernel of the input-gradient convolution: spatially flipped, in and out swapped (HWIO)."""
    return jnp.flip(kernel, (0, 1)).swapaxes(2, 3)


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def conv3x3_flipped(x: jax.Array, kernel: jax.Array, flipped: jax.Array, precision: str = "float32") -> jax.Array:
    """:func:`conv3x3` with the flipped kernel precomputed once (a loop-invariant argument), so the
    backward pass does not transpose every kernel again on each iteration."""
    return _conv(x, kernel, precision)


def _conv3x3_flipped_fwd(x, kernel, flipped, precision):
    return _conv(x, kernel, precision), (kernel, flipped)


def _conv3x3_flipped_bwd(precision, residuals, g):
    kernel, flipped = residuals
    return _conv(g, flipped, precision), jnp.zeros_like(kernel), jnp.zeros_like(flipped)


conv3x3_flipped.defvjp(_conv3x3_flipped_fwd, _conv3x3_flipped_bwd)


class Conv3x3(nn.Module):
    features: int
    precision: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.he_normal(), (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if self.has_variable("flipped", "kernel"):
            return conv3x3_flipped(x, kernel, self.get_variable("flipped", "kernel"), self.precision) + bias
        return conv3x3(x, kernel, self.precision) + bias


def _pool(x: jax.Array, kind: str) -> jax.Array:
    if kind == "max":
        return nn.max_pool(x, (2, 2), strides=(2, 2))
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


class VGGFeatures(nn.Module):
    """Flax VGG feature stack; ``__call__`` returns the requested taps only."""

    arch: str = "vgg19"
    pooling: str = "avg"
    preprocessing: str = "torch"
    precision: str = "float32"

    @nn.compact
    def __call__(self, images: jax.Array, layers: Sequence[str]) -> dict[str, jax.Array]:
        order = layer_names(self.arch)
        unknown = [name for name in layers if name not in order]
        if unknown:
            raise ValueError(f"unknown {self.arch} layer(s) {unknown}; valid: {order}")
        deepest = max(order.index(name) for name in layers)
        wanted = set(layers)
        out: dict[str, jax.Array] = {}
        x = preprocess(images, self.preprocessing)
        k = 0
        for b, block in enumerate(ARCHS[self.arch]):
            for i, channels in enumerate(block):
                name = f"conv{b + 1}_{i + 1}"
                x = Conv3x3(channels, self.precision, name=name)(x)
                if name in wanted:
                    out[name] = x
                x = jax.nn.relu(x)
                if f"relu{b + 1}_{i + 1}" in wanted:
                    out[f"relu{b + 1}_{i + 1}"] = x
                k += 2
                if k > deepest:
                    return out
            x = _pool(x, self.pooling)
            if f"pool{b + 1}" in wanted:
                out[f"pool{b + 1}"] = x
            k += 1
            if k > deepest:
                return out
        return out


@dataclass
class Network:
    """A VGG feature extractor bound to its weights.

    ``features(images, layers)`` maps float32 [N, H, W, 3] RGB in [0, 1] to a dict of NHWC
    activations. It is a pure function of its inputs and can be used inside ``jax.jit``.
    """

    arch: str
    params: Mapping[str, Mapping[str, jax.Array]]
    preprocessing: str = "torch"
    pooling: str = "avg"
    source: str = ""
    sha256: str = ""
    precision: str = "float32"   # of the convolutions (:data:`PRECISIONS`); images and states stay float32
    module: VGGFeatures = field(init=False)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        self.module = VGGFeatures(self.arch, self.pooling, self.preprocessing, self.precision)
        self.params = {k: {kk: jnp.asarray(vv, jnp.float32) for kk, vv in v.items()} for k, v in self.params.items()}
        flipped = {k: {"kernel": flip_kernel(v["kernel"])} for k, v in self.params.items()}
        # Everything ``module.apply`` takes: the weights and their precomputed flipped kernels.
        self.variables = {"params": self.params, "flipped": flipped}

    @property
    def name(self) -> str:
        return self.arch

    @cached_property
    def weights_id(self) -> str:
        """Identifies the weights (cache keys of style statistics): the file's SHA-256, or a digest of
        the arrays for weights that were not loaded from a file (random ones)."""
        if self.sha256:
            return self.sha256
        digest = hashlib.sha256()
        for layer in sorted(self.params):
            for kind in sorted(self.params[layer]):
                digest.update(np.asarray(self.params[layer][kind]).tobytes())
        return digest.hexdigest()

    def with_pooling(self, pooling: str) -> "Network":
        """This network with another pooling (itself when it already has it)."""
        return self.configured(pooling, self.precision)

    def configured(self, pooling: str, precision: str) -> "Network":
        """This network (the same weights) with another pooling and convolution precision; itself
        when both are unchanged."""
        if (pooling, precision) == (self.pooling, self.precision):
            return self
        return Network(self.arch, self.params, self.preprocessing, pooling, self.source, self.sha256, precision)

    def features(self, images: jax.Array, layers: Sequence[str]) -> dict[str, jax.Array]:
        images = jnp.asarray(images, jnp.float32)
        if images.ndim == 3:
            images = images[None]
        return self.module.apply(self.variables, images, tuple(layers))

    def describe(self) -> str:
        precision = "" if self.precision == "float32" else f", {self.precision} convolutions"
        return f"{self.arch} ({self.source or 'unknown source'}, {self.pooling} pooling{precision})"


def layer_stride(name: str) -> int:
    """Pixels per position of a VGG tap (relu3_1 -> 4, pool3 -> 8)."""
    block = int(name[4] if name.startswith("pool") else name.split("_")[0][-1])
    return 2 ** (block if name.startswith("pool") else block - 1)


def halo_px(arch: str, layers: Sequence[str]) -> int:
    """Context (a multiple of 16 px) that makes a window's features exact inside its block: the
    receptive field of a position reaches past its own cell by the sum of the strides of the 3x3
    convolutions before it (the 2x2 poolings do not widen it beyond the cell)."""
    reach = 0
    for name in layers:
        block = int(name[4] if name.startswith("pool") else name.split("_")[0][-1])
        convs = len(ARCHS[arch][block - 1]) if name.startswith("pool") else int(name.split("_")[1])
        r = sum(len(ARCHS[arch][b]) * 2 ** b for b in range(block - 1)) + convs * 2 ** (block - 1)
        reach = max(reach, r)
    return int(math.ceil(reach / ALIGN) * ALIGN)


def min_window(arch: str, layers: Sequence[str]) -> int:
    """The smallest window (tile size) with a block of at least 16 px inside its halos."""
    return 2 * halo_px(arch, layers) + ALIGN


def conv_flops(arch: str, height: int, width: int, layers: Sequence[str]) -> float:
    """Multiply-add FLOPs (2 per MAC) of the convolutions of one forward pass up to the deepest tap."""
    order = layer_names(arch)
    deepest = max(order.index(name) for name in layers)
    flops = 0.0
    h, w, cin, k = height, width, 3, 0
    for block in ARCHS[arch]:
        for channels in block:
            flops += 2.0 * h * w * 9 * cin * channels
            cin = channels
            k += 2
            if k > deepest:
                return flops
        h, w = h // 2, w // 2
        k += 1
        if k > deepest:
            return flops
    return flops
