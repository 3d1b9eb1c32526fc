"""The optimizers on their own: the batched L-BFGS on known problems (each item its own line search
and memory), the optax adapter behind the same protocol, the name table, and every optimizer
lowering the style-transfer loss through the API."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxstyle
from jaxstyle import imaging
from jaxstyle.config import StyleConfig
from jaxstyle.optim import OPTIMIZERS, PerFrame, make
from jaxstyle.optim.lbfgs import BatchedLBFGS


def _run(opt, x0, value_and_grad, iterations):
    state = opt.init(x0, value_and_grad)
    step = jax.jit(lambda x, s: opt.step(x, s, value_and_grad))
    x = x0
    for _ in range(iterations):
        x, state = step(x, state)
    return x, state


def _quadratics(n=3, d=6, seed=0):
    """n convex quadratics 0.5 x'A x - b'x with condition numbers 1, 10, 100, ... (one per item)."""
    rng = np.random.default_rng(seed)
    mats, vecs = [], []
    for i in range(n):
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        eig = np.logspace(0, i, d)
        mats.append((q * eig) @ q.T)
        vecs.append(rng.standard_normal(d))
    a, b = jnp.asarray(np.stack(mats), jnp.float32), jnp.asarray(np.stack(vecs), jnp.float32)

    def vg(x):
        g = jnp.einsum("nij,nj->ni", a, x) - b
        return 0.5 * jnp.sum(x * (g - b), axis=1), g

    return vg, np.linalg.solve(np.stack(mats), np.stack(vecs)[..., None])[..., 0]


def test_lbfgs_solves_quadratics_of_different_conditioning():
    vg, solution = _quadratics()
    x, _ = _run(BatchedLBFGS(), jnp.zeros(solution.shape, jnp.float32), vg, 40)
    assert np.abs(np.asarray(x) - solution).max() < 1e-3
    # before convergence a step takes about one evaluation (the unit step is mostly accepted); item
    # 0 (condition number 1) is solved by its first step and stops after two more without decrease
    _, state = _run(BatchedLBFGS(), jnp.zeros(solution.shape, jnp.float32), vg, 8)
    evaluations = np.asarray(state.evaluations)
    assert evaluations[1:].min() >= 8 + 1 and evaluations.max() <= 8 + 3, evaluations
    assert evaluations[0] < 8 and np.asarray(BatchedLBFGS().converged(state)).tolist() == [True, False, False]


def test_lbfgs_converged_items_stop_evaluating():
    """At the float32 floor a line search finds no decrease and would run to its cap (20
    evaluations) on every iteration; a frame without a measurable decrease twice in a row stops."""
    vg, solution = _quadratics()
    x0 = jnp.zeros(solution.shape, jnp.float32)
    x, state = _run(BatchedLBFGS(), x0, vg, 60)
    assert np.abs(np.asarray(x) - solution).max() < 1e-3
    assert np.asarray(BatchedLBFGS().converged(state)).all()
    assert np.asarray(state.evaluations).max() <= 30, state.evaluations
    _, burning = _run(BatchedLBFGS(patience=10**9), x0, vg, 60)  # the same without stopping
    assert np.asarray(burning.evaluations).max() > 300


def test_lbfgs_items_do_not_couple():
    """An item optimized in a batch follows the same path as alone (its own memory and step)."""
    vg, solution = _quadratics()
    batch, _ = _run(BatchedLBFGS(), jnp.zeros(solution.shape, jnp.float32), vg, 7)

    def vg_one(x):  # item 2 alone, padded with itself
        v, g = vg(jnp.concatenate([jnp.zeros((2,) + x.shape[1:]), x]))
        return v[2:], g[2:]

    alone, _ = _run(BatchedLBFGS(), jnp.zeros((1,) + solution.shape[1:], jnp.float32), vg_one, 7)
    assert np.abs(np.asarray(batch[2]) - np.asarray(alone[0])).max() < 1e-5


def test_lbfgs_rosenbrock_from_several_starts():
    def vg(x):
        f = lambda p: (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2  # noqa: E731
        return jax.vmap(jax.value_and_grad(f))(x)

    x0 = jnp.asarray([[-1.2, 1.0], [0.0, 0.0], [2.0, 2.0]], jnp.float32)
    x, _ = _run(BatchedLBFGS(), x0, vg, 60)
    assert np.abs(np.asarray(x) - 1.0).max() < 1e-2


def test_lbfgs_flat_item_stays_and_others_move():
    """An item with a zero gradient does not move; the others still converge."""
    vg_q, solution = _quadratics(n=2)

    def vg(x):
        v, g = vg_q(x)
        flat = jnp.arange(x.shape[0]) == 0
        return jnp.where(flat, 0.0, v), jnp.where(flat[:, None], 0.0, g)

    x0 = jnp.ones(solution.shape, jnp.float32)
    x, _ = _run(BatchedLBFGS(), x0, vg, 30)
    assert np.array_equal(np.asarray(x[0]), np.asarray(x0[0]))
    assert np.abs(np.asarray(x[1]) - solution[1]).max() < 1e-3


def test_optax_adapter_follows_the_same_protocol():
    vg, solution = _quadratics(n=2)
    opt = PerFrame(optax.adam(0.1))
    x, _ = _run(opt, jnp.zeros(solution.shape, jnp.float32), vg, 400)
    assert np.abs(np.asarray(x) - solution).max() < 0.05


def test_table_and_factory():
    assert set(OPTIMIZERS) == {"lbfgs", "adam", "sgd", "adagrad", "rmsprop"}
    assert OPTIMIZERS["lbfgs"].learning_rate == 1.0 and OPTIMIZERS["adam"].learning_rate == 0.02
    assert isinstance(make("lbfgs"), BatchedLBFGS) and make("lbfgs", 0.5).initial_step == 0.5
    assert isinstance(make("sgd"), PerFrame)
    assert StyleConfig(optimizer="rmsprop").resolved().learning_rate == OPTIMIZERS["rmsprop"].learning_rate
    with pytest.raises(ValueError):
        make("newton")


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adagrad", "rmsprop", "lbfgs"])
def test_every_optimizer_lowers_the_loss(vgg16, content_small, style_small, optimizer):
    content = imaging.resize(content_small, 24, 32)
    cfg = StyleConfig(start_size=0, optimizer=optimizer, iterations=6, chunk=3)
    result = jaxstyle.stylize_frames(content[None], [style_small], cfg, network=vgg16)
    m = result.metrics
    assert m["final"]["total"][0] < 0.9 * m["initial"]["total"][0], (optimizer, m["initial"], m["final"])
