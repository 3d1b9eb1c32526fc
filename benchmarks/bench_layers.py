"""Where the batch-1 gap to PyTorch sits: each VGG convolution alone, JAX against PyTorch.

For every distinct convolution shape of the network at image size S and batch B (conv1_1 at S,
conv1_2 at S, conv2_1 at S/2, ...), both contenders run the layer's forward convolution + bias +
ReLU and the input gradient through it (jaxstyle's ``conv3x3_flipped``: the backward pass is one
convolution with the precomputed flipped kernel; PyTorch: autograd with the weights frozen), on
the same real weights and the same random input. The contenders are interleaved over R rounds
(the order alternates per round) and each round times K calls; medians are reported.

Run it again under other ``XLA_FLAGS`` to try XLA:CPU's library paths (oneDNN, XNNPACK,
YNNPACK); the flags are recorded in the JSON. See benchmarks/README.md.

    PYTHONPATH=. python benchmarks/bench_layers.py --size 128 --batch 1 --rounds 5
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
import torch  # noqa: E402

from jaxstyle.nets.vgg import ARCHS, conv3x3_flipped  # noqa: E402
from jaxstyle.nets.weights import load_network  # noqa: E402


def layer_shapes(arch: str, size: int) -> list[tuple[str, int, int, int]]:
    """(name, side, in channels, out channels) of each convolution whose shape differs from the
    one before it (conv3_3 repeats conv3_2 and is left out: same shape, same time)."""
    shapes, seen, cin, side = [], set(), 3, size
    for b, block in enumerate(ARCHS[arch]):
        for i, cout in enumerate(block):
            if (side, cin, cout) not in seen:
                seen.add((side, cin, cout))
                shapes.append((f"conv{b + 1}_{i + 1}", side, cin, cout))
            cin = cout
        side //= 2
    return shapes


def jax_layer(kernel, flipped, bias):
    """Forward + input gradient of one layer as one compiled program (the cotangent is the output
    itself, so the backward convolution has real work and nothing is folded away)."""
    def f(x):
        def layer(x):
            return jax.nn.relu(conv3x3_flipped(x, kernel, flipped) + bias)
        y, vjp = jax.vjp(layer, x)
        return vjp(y)[0]
    return jax.jit(f)


def time_calls(fn, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128, help="image side S (px)")
    ap.add_argument("--batch", type=int, default=1, help="frames B")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    ap.add_argument("--calls", type=int, default=5, help="calls per timed round")
    ap.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--json", default=str(common.OUT_DIR / "layers.json"), help="where to write the results")
    args = ap.parse_args(argv)
    if args.size < 16 or args.batch < 1 or args.rounds < 1 or args.calls < 1:
        ap.error("need --size >= 16, --batch >= 1, --rounds >= 1 and --calls >= 1")
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    network = load_network("vgg16")
    env = common.environment(network)
    common.check_same_hardware(env)
    common.warn_if_busy(env)
    print(f"JAX {env['jax']} ({env['jax_threads']} threads), torch {env['torch']} ({env['torch_threads']} threads); "
          f"CPU {env['cpu']}; XLA_FLAGS={env['xla_flags']!r}")
    params, flipped = network.variables["params"], network.variables["flipped"]
    rng = np.random.default_rng(0)
    rows = []
    for name, side, cin, cout in layer_shapes("vgg16", args.size):
        x = rng.random((args.batch, side, side, cin), dtype=np.float32)
        kernel, bias = params[name]["kernel"], params[name]["bias"]
        fj = jax_layer(kernel, flipped[name]["kernel"], bias)
        xj = jnp.asarray(x)
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        wt = torch.from_numpy(np.array(kernel)).permute(3, 2, 0, 1).contiguous()
        bt = torch.from_numpy(np.array(bias))

        def run_jax():
            fj(xj).block_until_ready()

        def run_torch():
            xg = xt.clone().requires_grad_(True)
            y = torch.relu(torch.nn.functional.conv2d(xg, wt, bt, padding=1))
            y.backward(y.detach())
            return xg.grad

        # the same input gradient on both sides (checks the contenders compute the same thing); the
        # first calls also warm both up
        grad_torch = run_torch().permute(0, 2, 3, 1).numpy()
        grad_jax = np.asarray(fj(xj))
        rel = float(np.linalg.norm(grad_jax - grad_torch) / max(np.linalg.norm(grad_torch), 1e-30))
        samples = {"jax": [], "torch": []}
        for r in range(args.rounds):
            order = (("jax", run_jax), ("torch", run_torch))
            for who, fn in (order if r % 2 == 0 else order[::-1]):
                samples[who].append(time_calls(fn, args.calls))
        jax_s, torch_s = common.median(samples["jax"]), common.median(samples["torch"])
        flops = 2 * 2 * args.batch * side * side * 9 * cin * cout  # forward + input-gradient convolutions
        rows.append({"layer": name, "side": side, "in": cin, "out": cout, "jax_seconds": jax_s,
                     "torch_seconds": torch_s, "jax_over_torch": torch_s / jax_s, "jax_gflops": flops / jax_s / 1e9,
                     "torch_gflops": flops / torch_s / 1e9, "grad_rel_diff": rel, "samples": samples})
        print(f"{name:8s} {side:4d}px {cin:4d}->{cout:4d}  JAX {jax_s * 1e3:8.2f} ms  torch {torch_s * 1e3:8.2f} ms  "
              f"JAX/torch {torch_s / jax_s:5.2f}x  (gradients differ by {rel:.1e})", flush=True)
    total_jax, total_torch = sum(r["jax_seconds"] for r in rows), sum(r["torch_seconds"] for r in rows)
    print(f"all layers: JAX {total_jax * 1e3:.1f} ms, torch {total_torch * 1e3:.1f} ms, "
          f"JAX/torch {total_torch / total_jax:.2f}x (> 1: JAX is faster; medians of {args.rounds} interleaved rounds "
          f"of {args.calls} calls)")
    path = common.write_json(args.json, {"benchmark": "layers", "environment": env, "size": args.size,
                                         "batch": args.batch, "rounds": args.rounds, "calls": args.calls,
                                         "layers": rows, "jax_seconds": total_jax, "torch_seconds": total_torch,
                                         "jax_over_torch": total_torch / total_jax})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
