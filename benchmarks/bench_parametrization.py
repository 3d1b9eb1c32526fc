"""Does L-BFGS converge faster on a Laplacian-pyramid parametrization of the image (STROTSS,
Kolkin et al. 2019) than on the pixels, or with a longer history? (issue 17, time to quality)

The image is ``x = z_0 + sum_k s^k up_k(z_k)``, ``z_k`` an image at 1/2^k of the size (bilinear
up-sampling); the optimizer works on all ``z`` (initially the content in ``z_0`` and zeros above).
For L-BFGS this is a preconditioner: its initial inverse Hessian becomes ``sum_k s^2k U_k U_k^T``,
which lengthens the steps of the coarse frequencies. ``levels 0`` is the pixel parametrization.

Single scale at ``--size``, the engine's default loss (VGG16, content relu4_2, style relu1_1..5_1),
jaxstyle's batched L-BFGS (strong Wolfe, history 10 unless a config says otherwise). The loss
after every 10 iterations and the evaluation count go to the JSON; the comparison is by iterations
and evaluations, not by time (each evaluation costs the same VGG pass plus a few resizes).

    PYTHONPATH=. python benchmarks/bench_parametrization.py --size 128 --iterations 100 \\
        --configs 0:1,3:1,3:0.5,3:2,0:1:30,0:1:100
    PYTHONPATH=. python benchmarks/bench_parametrization.py --size 128 --iterations 100 \\
        --configs 0:1,3:0.5,0:1:100 --style ../shared/media/styles/shipwreck.jpg \\
        --json outputs/bench/parametrization_shipwreck.json   # and the_scream
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from jaxstyle import imaging  # noqa: E402
from jaxstyle.config import StyleConfig  # noqa: E402
from jaxstyle.errors import UserError  # noqa: E402
from jaxstyle.io.images import read_image, write_image  # noqa: E402
from jaxstyle.nets.weights import load_network  # noqa: E402
from jaxstyle.optim.lbfgs import BatchedLBFGS  # noqa: E402


def pyramid(h: int, w: int, levels: int, s: float):
    """(synthesize(z) -> image [h, w, 3], the sizes of the flat z's levels)."""
    shapes = [(h, w, 3)] + [(-(-h // 2 ** k), -(-w // 2 ** k), 3) for k in range(1, levels + 1)]
    sizes = [int(np.prod(shape)) for shape in shapes]

    def synthesize(z):
        parts = jnp.split(z, np.cumsum(sizes)[:-1])
        x = parts[0].reshape(shapes[0])
        for k in range(1, levels + 1):
            x = x + (s ** k) * jax.image.resize(parts[k].reshape(shapes[k]), shapes[0], "linear")
        return x

    return synthesize, sizes


def run(objective, network, targets, weights, content, levels: int, s: float, iterations: int, memory: int):
    h, w = content.shape[:2]
    synthesize, sizes = pyramid(h, w, levels, s)
    z0 = jnp.concatenate([jnp.asarray(content).reshape(-1)] + [jnp.zeros(n, jnp.float32) for n in sizes[1:]])[None]
    value_and_grad = jax.vmap(jax.value_and_grad(
        lambda z: objective.parts(network, network.variables, synthesize(z), targets, weights)["total"]))
    opt = BatchedLBFGS(memory_size=memory)
    init = jax.jit(lambda z: opt.init(z, value_and_grad))
    chunk = jax.jit(lambda z, st: jax.lax.fori_loop(0, 10, lambda _, c: opt.step(*c, value_and_grad), (z, st)))
    z, state = z0, init(z0)
    trace, t0 = [], time.perf_counter()
    for i in range(iterations // 10):
        z, state = chunk(z, state)
        trace.append({"iterations": 10 * (i + 1), "evaluations": int(state.evaluations[0]),
                      "total": float(state.value[0]), "seconds": round(time.perf_counter() - t0, 2)})
    return trace, np.clip(np.asarray(synthesize(z[0])), 0.0, 1.0)


def parse_configs(text: str) -> list[tuple[int, float, int]]:
    """"0:1,3:0.5:30" -> [(levels, s, history), ...] (argparse reports a ValueError as a usage error)."""
    configs = []
    for spec in text.split(","):
        fields = spec.split(":")
        if len(fields) not in (2, 3):
            raise argparse.ArgumentTypeError(f"{spec!r} is not LEVELS:S[:HISTORY]")
        try:
            levels, s, memory = int(fields[0]), float(fields[1]), int(fields[2]) if len(fields) > 2 else 10
        except ValueError:
            raise argparse.ArgumentTypeError(f"{spec!r} is not LEVELS:S[:HISTORY] (integers and a number)") from None
        if levels < 0 or memory < 1 or not np.isfinite(s) or s <= 0:
            raise argparse.ArgumentTypeError(f"{spec!r}: LEVELS >= 0, S > 0 and HISTORY >= 1")
        configs.append((levels, s, memory))
    return configs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128, help="long side of the content, px")
    ap.add_argument("--iterations", type=int, default=100, help="L-BFGS iterations (a multiple of 10)")
    ap.add_argument("--configs", type=parse_configs, default="0:1,3:1,3:0.5,3:2,0:1:30",
                    help="comma-separated LEVELS:S[:HISTORY] (0:1 = pixels; HISTORY = L-BFGS pairs, default 10)")
    ap.add_argument("--content", type=Path, default=common.CONTENT, help="content image (default: tubingen)")
    ap.add_argument("--style", type=Path, default=common.STYLE, help="style image (default: starry night)")
    ap.add_argument("--json", default=str(common.OUT_DIR / "parametrization.json"))
    args = ap.parse_args(argv)
    if args.iterations < 10 or args.iterations % 10:
        ap.error("--iterations must be a positive multiple of 10")
    if Path(args.json).is_dir():
        ap.error(f"--json {args.json} is a directory")
    try:
        content_full, style = read_image(args.content), read_image(args.style)
    except UserError as exc:
        print(f"bench_parametrization: {exc}", file=sys.stderr)
        return 2
    common.OUT_DIR.mkdir(parents=True, exist_ok=True)
    network = load_network("vgg16")
    h, w = imaging.scaled_size(content_full.shape[0], content_full.shape[1], args.size)
    content = imaging.resize(content_full, h, w)
    cfg = StyleConfig(network="vgg16", start_size=0).resolved()
    objective, targets, weights = common.jax_problem(network, cfg, content[None], style)
    targets = jax.tree.map(lambda a: a[0], targets)
    weights = {k: jnp.asarray(v, jnp.float32) for k, v in weights.items()}
    results = {"content": args.content.name, "style": args.style.name, "size": [h, w],
               "iterations": args.iterations, "runs": {}}
    for levels, s, memory in args.configs:
        spec = f"{levels}:{s:g}" + (f":{memory}" if memory != 10 else "")
        trace, image = run(objective, network, targets, weights, content, levels, s, args.iterations, memory)
        results["runs"][spec] = trace
        write_image(common.OUT_DIR / f"parametrization_{args.content.stem}_{args.style.stem}_{args.size}_{levels}_{s:g}_m{memory}.png", image)
        print(f"levels {levels}, s {s:g}, history {memory}: " + " ".join(f"{t['iterations']}:{t['total']:.4f}" for t in trace)
              + f" ({trace[-1]['evaluations']} evaluations)", flush=True)
    base = results["runs"].get("0:1")
    if base:
        for spec, trace in results["runs"].items():
            # iterations of this parametrization to reach the pixels' final loss
            hit = next((t["iterations"] for t in trace if t["total"] <= base[-1]["total"]), None)
            print(f"{spec}: final {trace[-1]['total']:.4f} ({trace[-1]['total'] / base[-1]['total']:.3f}x the pixels'); "
                  f"reaches the pixels' final loss after {hit if hit else 'more than ' + str(args.iterations)} iterations")
    print(f"wrote {common.write_json(args.json, results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
