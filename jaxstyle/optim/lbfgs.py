"""Batched L-BFGS: optax's L-BFGS direction with a per-frame strong-Wolfe line search.

Every frame has its own L-BFGS memory (``optax.scale_by_lbfgs``, vmapped) and its own line search,
so frames never couple. Why not ``jax.vmap(optax.lbfgs(...).update)``: under ``vmap`` the
``lax.cond`` inside optax's zoom line search and inside ``optax.value_and_grad_from_state`` has a
batched predicate and becomes a ``select`` that evaluates both branches, so each iteration costs
about three loss-and-gradient evaluations instead of one (measured: 0.33 s vs 0.11 s per iteration
at 128x96 px on CPU). Here each line-search step makes exactly one *batched* evaluation at a
per-frame trial step, and the bracketing logic is element-wise ``where``.

The line search is the classic bracketing/zoom search for the strong Wolfe conditions
(Nocedal & Wright, Algorithms 3.5/3.6) with safeguarded cubic interpolation. If it fails to meet
them within ``max_linesearch_steps``, the best point with sufficient decrease is taken; if there is
none, the frame does not move and its L-BFGS memory is reset.

A frame whose loss has not measurably decreased (by more than ``rtol`` of its value, a few float32
ulps) for ``patience`` iterations in a row is converged: it stops, and its line search makes no
more evaluations. Without this, a frame at the precision floor runs the whole capped line search on
every iteration, and the batch with it (the batched search runs while any frame searches).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax


class LBFGSState(NamedTuple):
    memory: optax.OptState   # batched optax ScaleByLBFGSState
    value: jax.Array         # [N] loss at the current images
    grad: jax.Array          # [N, ...] gradient at the current images
    evaluations: jax.Array   # [N] number of loss evaluations so far (for diagnostics)
    stalls: jax.Array        # [N] consecutive iterations without a measurable decrease


def _dot(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.sum((a * b).reshape(a.shape[0], -1), axis=1)


def _bcast(v: jax.Array, like: jax.Array) -> jax.Array:
    return v.reshape(v.shape + (1,) * (like.ndim - 1))


def _cubic_min(a, fa, sa, b, fb, sb):
    """Minimizer of the cubic through (a, fa, sa) and (b, fb, sb); bisection where undefined."""
    d1 = sa + sb - 3.0 * (fa - fb) / (a - b)
    rad = d1 * d1 - sa * sb
    d2 = jnp.sign(b - a) * jnp.sqrt(jnp.maximum(rad, 0.0))
    t = b - (b - a) * (sb + d2 - d1) / (sb - sa + 2.0 * d2)
    lo, hi = jnp.minimum(a, b), jnp.maximum(a, b)
    width = hi - lo
    ok = (rad >= 0) & jnp.isfinite(t) & jnp.isfinite(fb) & jnp.isfinite(sb)
    t = jnp.where(ok, t, 0.5 * (a + b))
    return jnp.clip(t, lo + 0.1 * width, hi - 0.1 * width)


class BatchedLBFGS:
    """L-BFGS over a leading frame axis. ``value_and_grad(x) -> ([N], [N, ...])`` is batched."""

    def __init__(self, memory_size: int = 10, max_linesearch_steps: int = 20, c1: float = 1e-4,
                 c2: float = 0.9, max_stepsize: float = 1e3, learning_rate: float = 1.0,
                 rtol: float = 1e-7, patience: int = 2):
        self.rtol, self.patience = rtol, patience
        self.memory_size = memory_size
        self.max_ls = max_linesearch_steps
        self.c1, self.c2 = c1, c2
        self.max_stepsize = max_stepsize
        self.initial_step = learning_rate
        self.tx = optax.scale_by_lbfgs(memory_size=memory_size)

    def init(self, x: jax.Array, value_and_grad: Callable) -> LBFGSState:
        value, grad = value_and_grad(x)
        memory = jax.vmap(self.tx.init)(x)
        return LBFGSState(memory, value, grad, jnp.ones_like(value, dtype=jnp.int32), jnp.zeros_like(value, jnp.int32))

    def converged(self, state: LBFGSState) -> jax.Array:
        """[N] frames that have stopped (no measurable decrease for ``patience`` iterations)."""
        return state.stalls >= self.patience

    def step(self, x: jax.Array, state: LBFGSState, value_and_grad: Callable) -> tuple[jax.Array, LBFGSState]:
        f0, g0 = state.value, state.grad
        precond, memory = jax.vmap(self.tx.update)(g0, state.memory, x)
        d = -precond
        s0 = _dot(g0, d)
        descent = s0 < 0
        d = jnp.where(_bcast(descent, d), d, -g0)
        s0 = jnp.where(descent, s0, -_dot(g0, g0))
        n = f0.shape[0]
        zeros = jnp.zeros_like(f0)
        inf = jnp.full_like(f0, jnp.inf)
        c1, c2 = self.c1, self.c2

        # carry: trial t, bracket ends a (f_a, s_a) and b (f_b, s_b), best Armijo point, done flags
        init = dict(
            k=jnp.int32(0), t=jnp.full_like(f0, self.initial_step),
            a=zeros, fa=f0, sa=s0, b=inf, fb=inf, sb=zeros,
            t_best=zeros, f_best=f0, g_best=g0,
            done=self.converged(state), t_acc=zeros, f_acc=f0, g_acc=g0,  # converged frames do not search
            evals=jnp.zeros((n,), jnp.int32),
        )

        def cond(c):
            return (c["k"] < self.max_ls) & jnp.any(~c["done"])

        def body(c):
            t = c["t"]
            ft, gt = value_and_grad(x + _bcast(t, x) * d)
            st = _dot(gt, d)
            active = ~c["done"]
            finite = jnp.isfinite(ft) & jnp.isfinite(st)
            armijo = finite & (ft <= f0 + c1 * t * s0)
            wolfe = jnp.abs(st) <= -c2 * s0
            accept = active & armijo & wolfe
            # Bracket update (only for active frames that did not accept).
            to_b = active & ~accept & (~armijo | (ft >= c["fa"]) | (st > 0))
            to_a = active & ~accept & ~to_b
            a = jnp.where(to_a, t, c["a"])
            fa = jnp.where(to_a, ft, c["fa"])
            sa = jnp.where(to_a, st, c["sa"])
            b = jnp.where(to_b, t, c["b"])
            fb = jnp.where(to_b, jnp.where(finite, ft, jnp.inf), c["fb"])
            sb = jnp.where(to_b, jnp.where(finite, st, 0.0), c["sb"])
            better = active & armijo & (ft < c["f_best"])
            t_best = jnp.where(better, t, c["t_best"])
            f_best = jnp.where(better, ft, c["f_best"])
            g_best = jnp.where(_bcast(better, gt), gt, c["g_best"])
            bracketed = jnp.isfinite(b)
            t_next = jnp.where(bracketed, _cubic_min(a, fa, sa, b, fb, sb), jnp.minimum(2.0 * t, self.max_stepsize))
            return dict(
                k=c["k"] + 1, t=jnp.where(active & ~accept, t_next, t),
                a=a, fa=fa, sa=sa, b=b, fb=fb, sb=sb,
                t_best=t_best, f_best=f_best, g_best=g_best,
                done=c["done"] | accept,
                t_acc=jnp.where(accept, t, c["t_acc"]), f_acc=jnp.where(accept, ft, c["f_acc"]),
                g_acc=jnp.where(_bcast(accept, gt), gt, c["g_acc"]),
                evals=c["evals"] + active.astype(jnp.int32),
            )

        c = jax.lax.while_loop(cond, body, init)
        done = c["done"]
        t = jnp.where(done, c["t_acc"], c["t_best"])
        value = jnp.where(done, c["f_acc"], c["f_best"])
        grad = jnp.where(_bcast(done, g0), c["g_acc"], c["g_best"])
        moved = t > 0
        x_new = x + _bcast(t, x) * d
        # A frame that could not move restarts its L-BFGS memory (steepest descent next time).
        fresh = jax.vmap(self.tx.init)(x_new)
        memory = jax.tree.map(lambda m, f: jnp.where(_bcast(moved, m), m, f), memory, fresh)
        # no measurable decrease (a failed search included) counts toward convergence
        flat = ~(f0 - value > self.rtol * jnp.abs(f0))
        stalls = jnp.where(self.converged(state), state.stalls, jnp.where(flat, state.stalls + 1, 0))
        return x_new, LBFGSState(memory, value, grad, state.evaluations + c["evals"], stalls)
