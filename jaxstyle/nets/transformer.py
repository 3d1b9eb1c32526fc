"""Feed-forward stylization networks (Flax): Johnson et al.'s image transformation network with
conditional instance normalization, and Ghiasi et al.'s style prediction network.

:class:`Stylizer` maps content images [N, H, W, 3] in [0, 1] and a conditioning vector per image to
stylized images of the same size. Every instance normalization takes its scale and shift from the
conditioning vector through a linear map:

- ``kind="styles"`` (Dumoulin et al.): the vector is a blend of the trained styles (one-hot while
  training); a linear map of a one-hot vector is a per-style table of scales and shifts, and a
  blend interpolates them, which is exactly conditional instance normalization's style mixing;
- ``kind="predicted"`` (Ghiasi et al.): the vector is a style image's VGG feature statistics (the
  mean and standard deviation of every channel of the style layers, a frozen pretrained extractor
  as their Inception-v3 was), turned into a small embedding by :class:`StylePredictor`; the norm
  layers' maps then project the embedding, so unseen styles get their own scales and shifts.

Downsampling is by stride-2 convolutions and upsampling by resizing to the encoder's exact shapes
plus a convolution (no transposed convolution, so no checkerboard), with reflection padding, so any
frame size comes back at its own size. The last convolution starts at zero and adds to the
content's logits: an untrained network returns its input, and training starts from the content.
"""

from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

KINDS = ("styles", "predicted")
EPS = 1e-5


@dataclass(frozen=True)
class StylizerSpec:
    """The network's architecture (stored in a model's JSON)."""

    kind: str = "styles"
    cond_dim: int = 1          # styles: the number of trained styles; predicted: the length of the statistics
    width: int = 32            # channels of the first convolution (Johnson et al.: 32); 16 runs fast on a CPU
    blocks: int = 5            # residual blocks at 1/4 resolution
    embedding: int = 100       # predicted: the style embedding's length (Ghiasi et al.: 100)

    def check(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown network kind {self.kind!r}")
        if min(self.cond_dim, self.width, self.embedding) < 1 or self.blocks < 0:
            raise ValueError(f"bad network spec {self}")


def _reflect(x: jax.Array, pad: int) -> jax.Array:
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect") if pad else x


class CondInstanceNorm(nn.Module):
    """Instance normalization whose scale (1 + A c) and shift (B c) are linear in the conditioning
    vector c [N, D]; A and B start at zero (plain instance normalization)."""

    @nn.compact
    def __call__(self, x: jax.Array, cond: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        mean = jnp.mean(x, axis=(1, 2), keepdims=True)
        var = jnp.var(x, axis=(1, 2), keepdims=True)
        normed = (x - mean) * jax.lax.rsqrt(var + EPS)
        scale = 1.0 + nn.Dense(channels, use_bias=False, kernel_init=nn.initializers.zeros, name="scale")(cond)
        shift = nn.Dense(channels, use_bias=False, kernel_init=nn.initializers.zeros, name="shift")(cond)
        return normed * scale[:, None, None, :] + shift[:, None, None, :]


class ConvNorm(nn.Module):
    """Reflection-padded convolution, conditional instance norm, optional ReLU."""

    features: int
    kernel: int
    stride: int = 1
    relu: bool = True

    @nn.compact
    def __call__(self, x, cond):
        x = nn.Conv(self.features, (self.kernel, self.kernel), strides=self.stride, padding="VALID")(
            _reflect(x, self.kernel // 2))
        x = CondInstanceNorm()(x, cond)
        return nn.relu(x) if self.relu else x


class Residual(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x, cond):
        y = ConvNorm(self.features, 3)(x, cond)
        return x + ConvNorm(self.features, 3, relu=False)(y, cond)


class TransformNet(nn.Module):
    """Johnson et al.'s network: 9x9 conv, two stride-2 convs, residual blocks, two resize + conv
    upsamplings, 9x9 conv to RGB (added to the content's logits, through a sigmoid)."""

    width: int = 32
    blocks: int = 5

    @nn.compact
    def __call__(self, images: jax.Array, cond: jax.Array) -> jax.Array:
        w = self.width
        x = ConvNorm(w, 9)(images - 0.5, cond)
        skips = [x.shape]
        x = ConvNorm(2 * w, 3, stride=2)(x, cond)
        skips.append(x.shape)
        x = ConvNorm(4 * w, 3, stride=2)(x, cond)
        for _ in range(self.blocks):
            x = Residual(4 * w)(x, cond)
        for features, shape in zip((2 * w, w), reversed(skips)):
            x = jax.image.resize(x, (x.shape[0], shape[1], shape[2], x.shape[3]), "nearest")
            x = ConvNorm(features, 3)(x, cond)
        residual = nn.Conv(3, (9, 9), padding="VALID", kernel_init=nn.initializers.zeros, name="to_rgb")(_reflect(x, 4))
        clipped = jnp.clip(images, 1e-3, 1 - 1e-3)
        return jax.nn.sigmoid(jnp.log(clipped) - jnp.log1p(-clipped) + residual)


class StylePredictor(nn.Module):
    """Ghiasi et al.'s bottleneck: a style image's feature statistics -> a style embedding."""

    embedding: int = 100
    hidden: int = 256

    @nn.compact
    def __call__(self, stats: jax.Array) -> jax.Array:
        x = nn.relu(nn.Dense(self.hidden)(stats))
        return nn.Dense(self.embedding)(x)


class Stylizer(nn.Module):
    """content [N, H, W, 3] and conditioning [N, cond_dim] -> stylized [N, H, W, 3] (see the module
    docstring for what the conditioning is)."""

    spec: StylizerSpec

    @nn.compact
    def __call__(self, images: jax.Array, cond: jax.Array) -> jax.Array:
        if self.spec.kind == "predicted":
            cond = StylePredictor(self.spec.embedding, name="predictor")(cond)
        return TransformNet(self.spec.width, self.spec.blocks, name="transform")(images, cond)

    def init_params(self, rng: jax.Array, side: int = 32):
        """Fresh parameters (the shapes do not depend on the image size)."""
        images = jnp.zeros((1, side, side, 3), jnp.float32) + 0.5
        return self.init(rng, images, jnp.zeros((1, self.spec.cond_dim), jnp.float32))["params"]
