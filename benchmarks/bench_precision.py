"""The network's convolution precision (--precision float32 / tf32 / bfloat16): speed and accuracy,
side by side in one run on the same frames, weights, loss and iterations.

For each size, batch and optimizer the contenders (one per precision) run N iterations as one
compiled chunk, interleaved over R rounds (the order rotates); medians are reported with the speed
relative to float32. Accuracy at the content + noise point: the loss's relative difference and the
gradient's cosine and relative L2 error against float32. JSON under outputs/bench/.

    PYTHONPATH=. python benchmarks/bench_precision.py --sizes 128,256 --batches 1,8 --iterations 10 --rounds 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (also puts the repo root on sys.path)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxstyle import imaging  # noqa: E402
from jaxstyle.config import StyleConfig  # noqa: E402
from jaxstyle.nets.vgg import PRECISIONS  # noqa: E402
from jaxstyle.nets.weights import load_network  # noqa: E402
from jaxstyle.optim import OPTIMIZERS, Problem  # noqa: E402


def contender(network, cfg, optimizer: str, frames: np.ndarray, style: np.ndarray):
    objective, targets, weights = common.jax_problem(network, cfg, frames, style)
    problem = Problem(objective, network, optimizer, OPTIMIZERS[optimizer].learning_rate)
    images = jnp.asarray(frames)
    state, chunk, evaluate, compile_s = problem.compiled(network.variables, images, targets, weights)
    jax.block_until_ready(chunk(network.variables, images, state, targets, weights, jnp.int32(1)))  # warm

    def timed(iterations: int) -> float:
        state, chunk, _, _ = problem.compiled(network.variables, images, targets, weights)
        jax.block_until_ready(state)
        t0 = time.perf_counter()
        jax.block_until_ready(chunk(network.variables, images, state, targets, weights, jnp.int32(iterations)))
        return time.perf_counter() - t0

    def value_and_grad():
        one = jax.tree.map(lambda a: a[0], targets)
        fn = jax.jit(jax.value_and_grad(lambda y: objective.total(network, network.variables, y, one, weights)))
        noisy = np.clip(frames[0] + 0.2 * np.random.default_rng(0).standard_normal(frames[0].shape), 0, 1)
        return fn(jnp.asarray(noisy, jnp.float32))

    return timed, value_and_grad, compile_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="128,256")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--optimizers", default="lbfgs")
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--network", default="vgg16")
    ap.add_argument("--json", default=str(common.OUT_DIR / "precision.json"))
    args = ap.parse_args()
    content, style = common.read_media()
    base = load_network(args.network)
    precisions = args.precisions.split(",")
    env = common.environment(base)
    rows = []
    for optimizer in args.optimizers.split(","):
        for size in map(int, args.sizes.split(",")):
            for batch in map(int, args.batches.split(",")):
                side = min(content.shape[:2])
                crops = [content[:side, o:o + side] for o in np.linspace(0, content.shape[1] - side, batch).astype(int)]
                frames = imaging.resize(np.stack(crops), size, size)
                contenders = {}
                for p in precisions:
                    cfg, _ = common.loss_setup(StyleConfig(precision=p))
                    contenders[p] = contender(base.configured("avg", p), cfg, optimizer, frames, style)
                times = {p: [] for p in precisions}
                for r in range(args.rounds):
                    order = precisions[r % len(precisions):] + precisions[:r % len(precisions)]
                    for p in order:
                        common.settle(0.3)
                        times[p].append(contenders[p][0](args.iterations))
                v32, g32 = contenders["float32"][1]() if "float32" in contenders else (None, None)
                row = {"optimizer": optimizer, "size": size, "batch": batch, "iterations": args.iterations,
                       "seconds": {p: common.median(t) for p, t in times.items()}, "rounds": times}
                row["speed_vs_float32"] = {p: row["seconds"]["float32"] / row["seconds"][p] for p in precisions} \
                    if "float32" in precisions else {}
                row["accuracy_vs_float32"] = {}
                for p in precisions:
                    if p == "float32" or v32 is None:
                        continue
                    v, g = contenders[p][1]()
                    row["accuracy_vs_float32"][p] = {
                        "loss_rel_diff": float(abs(v - v32) / abs(v32)),
                        "grad_cosine": float(jnp.sum(g * g32) / (jnp.linalg.norm(g) * jnp.linalg.norm(g32))),
                        "grad_rel_l2": float(jnp.linalg.norm(g - g32) / jnp.linalg.norm(g32))}
                rows.append(row)
                speeds = ", ".join(f"{p} {row['speed_vs_float32'].get(p, float('nan')):.2f}x" for p in precisions)
                print(f"[{optimizer} {size}px B={batch}] median s: "
                      + ", ".join(f"{p} {row['seconds'][p]:.3f}" for p in precisions)
                      + f"; speed vs float32: {speeds}; accuracy {row['accuracy_vs_float32']}", flush=True)
    path = common.write_json(args.json, {"environment": env, "rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
