"""Parity: the Gatys loss and its gradient equal an independent PyTorch implementation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxstyle import losses
from jaxstyle.optimize import FrameTargets, LossSpec, Weights, loss_parts
from jaxstyle.reference_torch import TorchGatysLoss, TorchVGG
from jaxstyle.stylize import content_features, style_grams

from .conftest import rel_err

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_loss_and_gradient_match_pytorch(vgg16, content_small, style_small, pooling):
    net = vgg16.with_pooling(pooling)
    spec = LossSpec(("relu4_2",), STYLE_LAYERS, (0.1, 0.2, 0.3, 0.2, 0.2), "mse")
    weights = Weights(*(jnp.float32(v) for v in (1.0, 10.0, 5.0, 0.0)))
    h, w, _ = content_small.shape
    grams = style_grams(net, spec, [style_small], [1.0], max(style_small.shape[:2]))
    cfeats = content_features(net, spec, content_small[None])
    targets = FrameTargets({k: v[0] for k, v in cfeats.items()}, grams, jnp.zeros((h, w, 3)), jnp.zeros((h, w)))
    rng = np.random.default_rng(0)
    x = np.clip(content_small + 0.3 * rng.standard_normal(content_small.shape), -0.1, 1.1).astype(np.float32)

    def total(img):
        return loss_parts(net, spec, net.variables, img, targets, weights)["total"]

    value, grad = jax.value_and_grad(total)(jnp.asarray(x))
    parts = loss_parts(net, spec, net.variables, jnp.asarray(x), targets, weights)

    ref = TorchGatysLoss(TorchVGG(net), spec.content_layers, spec.style_layers, spec.style_layer_weights,
                         1.0, 10.0, 5.0)
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(np.asarray(a).transpose(2, 0, 1)))[None]  # noqa: E731
    ref.set_targets(to_t(content_small), ref.style_grams(to_t(style_small)))
    xt = to_t(x).clone().requires_grad_(True)
    ref_parts = ref.parts(xt)
    ref_parts["total"].sum().backward()
    for key in ("content", "style", "tv", "total"):
        assert rel_err(parts[key], ref_parts[key].detach().numpy()[0]) < 1e-4, key
    assert float(parts["content"]) > 0.1 and float(parts["style"]) > 0.01  # a real, non-trivial point
    assert rel_err(value, ref_parts["total"].detach().numpy()[0]) < 1e-4
    ref_grad = xt.grad.numpy()[0].transpose(1, 2, 0)
    assert rel_err(grad, ref_grad) < 1e-4


def test_gram_is_size_normalized():
    rng = np.random.default_rng(0)
    f = rng.random((8, 8, 4)).astype(np.float32)
    tiled = np.tile(f, (2, 3, 1))  # same statistics, 6x the positions
    assert np.allclose(losses.gram(f), losses.gram(tiled), rtol=1e-5)
    g = np.asarray(losses.gram(f))
    assert np.allclose(g, g.T) and np.all(np.linalg.eigvalsh(g) > -1e-5)


def test_distance_variants():
    d = jnp.array([0.0, 0.05, 0.5, 2.0])
    assert np.isclose(losses.distance(d, "mse"), np.mean(np.square(d)))
    assert np.isclose(losses.distance(d, "l1"), np.mean(np.abs(d)))
    hub = [0.0, 0.5 * 0.05**2, 0.5 * 0.25, 2.0 - 0.5]
    assert np.isclose(losses.distance(d, "huber"), np.mean(hub))
    sl1 = [0.0, 0.5 * 0.05**2 / 0.1, 0.5 - 0.05, 2.0 - 0.05]
    assert np.isclose(losses.distance(d, "smooth_l1"), np.mean(sl1))
    with pytest.raises(ValueError):
        losses.distance(d, "l3")


def test_tv_loss_zero_for_flat_image():
    assert float(losses.tv_loss(jnp.full((8, 8, 3), 0.3))) == 0.0
    assert float(losses.tv_loss(jnp.asarray(np.random.default_rng(0).random((8, 8, 3))))) > 0.05
