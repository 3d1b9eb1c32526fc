"""Parity: the Gatys loss and its gradient equal an independent PyTorch implementation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from benchmarks.reference_torch import TorchGatysLoss, TorchVGG
from jaxstyle.config import StyleConfig
from jaxstyle.objective import distances
from jaxstyle.objective.regularizers import tv_loss

from ..helpers import one_frame_objective, rel_err

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_loss_and_gradient_match_pytorch(vgg16, content_small, style_small, pooling):
    net = vgg16.with_pooling(pooling)
    cfg = StyleConfig(content_layers=("relu4_2",), style_layers=STYLE_LAYERS, pooling=pooling,
                      style_layer_weights=(0.1, 0.2, 0.3, 0.2, 0.2), content_weight=1.0, style_weight=10.0,
                      tv_weight=5.0).resolved()
    objective, targets, weights = one_frame_objective(cfg, net, content_small, [style_small],
                                                      max(style_small.shape[:2]))
    rng = np.random.default_rng(0)
    x = np.clip(content_small + 0.3 * rng.standard_normal(content_small.shape), -0.1, 1.1).astype(np.float32)

    def total(img):
        return objective.total(net, net.variables, img, targets, weights)

    # jitted: op by op, the first call compiles every primitive of VGG's forward and backward apart
    value, grad = jax.jit(jax.value_and_grad(total))(jnp.asarray(x))
    parts = jax.jit(lambda img: objective.parts(net, net.variables, img, targets, weights))(jnp.asarray(x))

    ref = TorchGatysLoss(TorchVGG(net), cfg.content_layers, cfg.style_layers, cfg.style_layer_weights,
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
    assert np.allclose(distances.gram(f), distances.gram(tiled), rtol=1e-5)
    g = np.asarray(distances.gram(f))
    assert np.allclose(g, g.T) and np.all(np.linalg.eigvalsh(g) > -1e-5)


def test_distance_variants():
    d = jnp.array([0.0, 0.05, 0.5, 2.0])
    assert np.isclose(distances.distance(d, "mse"), np.mean(np.square(d)))
    assert np.isclose(distances.distance(d, "l1"), np.mean(np.abs(d)))
    hub = [0.0, 0.5 * 0.05**2, 0.5 * 0.25, 2.0 - 0.5]
    assert np.isclose(distances.distance(d, "huber"), np.mean(hub))
    sl1 = [0.0, 0.5 * 0.05**2 / 0.1, 0.5 - 0.05, 2.0 - 0.05]
    assert np.isclose(distances.distance(d, "smooth_l1"), np.mean(sl1))
    with pytest.raises(ValueError):
        distances.distance(d, "l3")


def test_tv_loss_zero_for_flat_image():
    assert float(tv_loss(jnp.full((8, 8, 3), 0.3))) == 0.0
    assert float(tv_loss(jnp.asarray(np.random.default_rng(0).random((8, 8, 3))))) > 0.05
