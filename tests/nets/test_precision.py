"""--precision: the network's convolutions in float32, TF32 or bfloat16 (float32 accumulation, the
image and the optimizer state in float32). On a CPU, bfloat16's loss stays within 2% of float32's,
its gradient points the same way (cosine > 0.995, L2 error < 8%), and an optimization reaches the
same loss within 3%."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle
from jaxstyle.config import StyleConfig
from jaxstyle.errors import UserError

from ..helpers import one_frame_objective


def _cfg(**kw):
    return StyleConfig(start_size=0, iterations=20, chunk=10, **kw).resolved()


def test_bfloat16_loss_and_gradient_are_close_to_float32(vgg16, content_small, style_small):
    x = jnp.asarray(np.clip(content_small * 0.7 + 0.3 * np.random.default_rng(0).random(content_small.shape), 0, 1))
    values = {}
    for precision in ("float32", "tf32", "bfloat16"):
        net = vgg16.configured("avg", precision)
        assert net.module.precision == precision and net.variables is not None
        objective, targets, weights = one_frame_objective(_cfg(precision=precision), net, content_small,
                                                          [style_small], 64)
        values[precision] = jax.jit(jax.value_and_grad(
            lambda y, o=objective, n=net, t=targets, w=weights: o.total(n, n.variables, y, t, w)))(x)
    (v32, g32), (v16, g16) = values["float32"], values["bfloat16"]
    assert float(v32) > 0.5  # a real, non-trivial point
    assert abs(float(v16) - float(v32)) < 0.02 * float(v32)
    cosine = float(jnp.sum(g16 * g32) / (jnp.linalg.norm(g16) * jnp.linalg.norm(g32)))
    l2 = float(jnp.linalg.norm(g16 - g32) / jnp.linalg.norm(g32))
    assert cosine > 0.995 and l2 < 0.08, (cosine, l2)
    # a CPU has no TF32: the same numbers as float32
    np.testing.assert_allclose(np.asarray(values["tf32"][1]), np.asarray(g32), rtol=1e-5, atol=1e-7)
    assert g16.dtype == jnp.float32  # the gradient (and the image) stay float32


def test_bfloat16_optimization_reaches_the_float32_loss(vgg16, content_small, style_small):
    finals = {}
    for precision in ("float32", "bfloat16"):
        result = jaxstyle.stylize_frames(content_small[None], [style_small], _cfg(precision=precision), network=vgg16)
        assert result.images.dtype == np.float32
        assert ("bfloat16" in result.metrics["network"]) == (precision == "bfloat16")
        finals[precision] = result.metrics["final"]["total"][0]
        first = result.metrics["initial"]["total"][0]
    assert finals["bfloat16"] < 0.5 * first
    assert abs(finals["bfloat16"] - finals["float32"]) < 0.03 * finals["float32"], finals


def test_unknown_precision_is_one_line():
    with pytest.raises(UserError, match="--precision"):
        StyleConfig(precision="float8").resolved()
