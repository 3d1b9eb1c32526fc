"""Throughput of the Gatys optimization step: jaxstyle (JAX) vs the same loss in PyTorch.

For each optimizer (Adam, then L-BFGS), image size S and batch B, both contenders run N iterations
on the same B frames, the same VGG16 weights and the same loss, interleaved over R rounds (the
order alternates per round); medians are reported. See benchmarks/README.md.

    PYTHONPATH=. python benchmarks/bench_throughput.py --sizes 128,256 --batches 1,8 --iterations 10 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (also puts the repo root on sys.path)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from jaxstyle import imaging  # noqa: E402
from jaxstyle.nets.vgg import conv_flops  # noqa: E402
from jaxstyle.nets.weights import load_network  # noqa: E402
from jaxstyle.optim import OPTIMIZERS, Problem  # noqa: E402

TORCH_MAX_LS = 25  # torch's strong-Wolfe search makes at most 25 evaluations per iteration


def square_frames(content: np.ndarray, size: int, batch: int) -> np.ndarray:
    """B different frames: square crops (side = the content's short side) shifted evenly along its
    long side (the centre crop when B = 1), each resized to size x size."""
    h, w, _ = content.shape
    side = min(h, w)
    span = max(h, w) - side
    offsets = [span // 2] if batch == 1 else [int(round(o)) for o in np.linspace(0, span, batch)]
    crops = [content[o:o + side, :side] if h > w else content[:side, o:o + side] for o in offsets]
    return imaging.resize(np.stack(crops), size, size)


# ----------------------------------------------------------------------------------------------
# The contenders


class JaxContender:
    """jaxstyle's own compiled programs: ``Problem.compiled`` gives the initial optimizer state (for
    L-BFGS this is one batched loss+grad evaluation) and the chunk program; a timed run is the
    initial state plus ONE chunk call of N iterations (``lax.fori_loop``), then block_until_ready.
    run_scale's per-chunk loss evaluation and host transfers are not part of it."""

    def __init__(self, network, cfg, optimizer: str, lr: float, frames: np.ndarray, style: np.ndarray):
        objective, self.targets, weights = common.jax_problem(network, cfg, frames, style)
        self.problem = Problem(objective, network, optimizer, lr)
        self.optimizer = optimizer
        self.params = network.variables
        self.weights = weights
        self.images = jnp.asarray(frames)
        jax.block_until_ready(self.targets)
        t0 = time.perf_counter()
        state, self.chunk, self.evaluate, compile_s = self.problem.compiled(self.params, self.images, self.targets, weights)
        jax.block_until_ready(state)
        self.compile_seconds = compile_s
        self.compile_wall = time.perf_counter() - t0

    def _start(self):
        state, chunk, _, _ = self.problem.compiled(self.params, self.images, self.targets, self.weights)
        return state, chunk

    def losses(self, x) -> np.ndarray:
        return np.asarray(self.evaluate(self.params, x, self.targets, self.weights)["total"])

    def warm_up(self, iterations: int) -> dict:
        """Untimed. Adam: one 1-iteration call. L-BFGS: the same N iterations as a timed run, one
        call per iteration, to count the batched evaluations each iteration actually makes: the
        line-search loop runs while ANY frame is still searching, so the batch is evaluated
        max over frames of that frame's line-search steps times (state.evaluations counts per frame)."""
        state, chunk = self._start()
        if self.optimizer != "lbfgs":
            jax.block_until_ready(chunk(self.params, self.images, state, self.targets, self.weights, jnp.int32(1)))
            return {"batched_evaluations": iterations, "per_frame_evaluations": [iterations] * self.images.shape[0]}
        x = self.images
        prev = np.asarray(state.evaluations)
        per_iter = []
        for _ in range(iterations):
            x, state = chunk(self.params, x, state, self.targets, self.weights, jnp.int32(1))
            ev = np.asarray(state.evaluations)
            per_iter.append(int((ev - prev).max()))
            prev = ev
        return {"batched_evaluations": 1 + sum(per_iter), "per_iteration_batched": per_iter,
                "per_frame_evaluations": prev.tolist()}

    def run(self, iterations: int) -> dict:
        t0 = time.perf_counter()
        state, chunk = self._start()
        x, state = chunk(self.params, self.images, state, self.targets, self.weights, jnp.int32(iterations))
        jax.block_until_ready((x, state))
        seconds = time.perf_counter() - t0
        out = {"seconds": seconds, "iterations": iterations, "x": x}
        if self.optimizer == "lbfgs":
            out["per_frame_evaluations"] = np.asarray(state.evaluations).tolist()
        return out


class TorchContender:
    """The same loss (TorchGatysLoss, summed over frames) on a [B, 3, S, S] tensor.

    Adam: N steps of zero_grad / loss / backward / step (Adam is invariant to the scale of each
    element's gradient, so the summed loss gives independent per-frame Adam). L-BFGS: ONE
    ``LBFGS.step(closure)`` with max_iter=N over the whole batch as one vector: one shared line
    search couples the frames. max_eval is raised (and the tolerances set to 0) so N iterations
    really run; closure calls are counted."""

    def __init__(self, network, cfg, floats, optimizer: str, lr: float, frames: np.ndarray, style: np.ndarray,
                 *, device: str = "cpu", precision: str = "float32", compiled: bool = False):
        """``compiled``: the loss (forward and backward) through ``torch.compile`` (one graph per
        shape); otherwise eager. ``precision`` as in reference_torch.TorchVGG."""
        self.loss = common.torch_loss(network, cfg, floats, frames, style, device, precision)
        self.value = self.loss
        if compiled:
            loss = self.loss
            self.value = torch.compile(lambda x: loss(x), dynamic=False)
        self.optimizer = optimizer
        self.lr = lr
        self.device = device
        self.x0 = common.to_nchw(frames).to(device)

    def losses(self, x) -> np.ndarray:
        with torch.no_grad():
            return self.loss.parts(x)["total"].cpu().numpy()

    def _sync(self) -> None:
        if self.device != "cpu":
            torch.cuda.synchronize()

    def run(self, iterations: int) -> dict:
        x = self.x0.clone().requires_grad_(True)
        count = [0]
        self._sync()
        t0 = time.perf_counter()
        if self.optimizer == "adam":
            opt = torch.optim.Adam([x], lr=self.lr)
            for _ in range(iterations):
                opt.zero_grad(set_to_none=True)
                self.value(x).backward()
                opt.step()
            count[0] = done = iterations
        else:
            opt = torch.optim.LBFGS([x], lr=self.lr, max_iter=iterations, max_eval=iterations * TORCH_MAX_LS + 1,
                                    tolerance_grad=0.0, tolerance_change=0.0, history_size=10,
                                    line_search_fn="strong_wolfe")

            def closure():
                opt.zero_grad(set_to_none=True)
                value = self.value(x)
                value.backward()
                count[0] += 1
                return value

            opt.step(closure)
            done = int(opt.state[x]["n_iter"])
        self._sync()
        seconds = time.perf_counter() - t0
        return {"seconds": seconds, "iterations": done, "evaluations": count[0], "x": x.detach()}


# ----------------------------------------------------------------------------------------------


def bench_config(args, network, cfg, floats, content, style, optimizer: str, size: int, batch: int) -> dict:
    lr = OPTIMIZERS[optimizer].learning_rate
    frames = square_frames(content, size, batch)
    n = args.iterations
    print(f"\n[{optimizer} {size}x{size} B={batch}] compiling / warming up ...", flush=True)
    jx = JaxContender(network, cfg, optimizer, lr, frames, style)
    tc = TorchContender(network, cfg, floats, optimizer, lr, frames, style)
    # Same loss? (initial per-frame losses of the content images)
    init_jax = jx.losses(jx.images)
    init_torch = tc.losses(tc.x0)
    parity = common.rel_diff(init_jax, init_torch)
    if parity > 1e-3:
        print(f"  WARNING: initial losses differ: JAX {init_jax} vs torch {init_torch}", file=sys.stderr)
    warm = jx.warm_up(n)
    common.settle(args.pause)
    tc.run(min(n, 2))  # torch warm-up (allocator, oneDNN primitive caches)

    jax_rounds, torch_rounds = [], []
    last = {}
    for r in range(args.rounds):
        order = ("jax", "torch") if r % 2 == 0 else ("torch", "jax")
        for who in order:
            common.settle(args.pause)
            res = jx.run(n) if who == "jax" else tc.run(n)
            res["load_average_after"] = os.getloadavg()[0]
            last[who] = res.pop("x")
            (jax_rounds if who == "jax" else torch_rounds).append(res)
        print(f"  round {r + 1}/{args.rounds} ({' then '.join(order)}): JAX {jax_rounds[-1]['seconds']:.3f} s, "
              f"torch {torch_rounds[-1]['seconds']:.3f} s", flush=True)

    final_jax = jx.losses(last["jax"])
    final_torch = tc.losses(last["torch"])
    if optimizer == "lbfgs" and jax_rounds[-1]["per_frame_evaluations"] != warm["per_frame_evaluations"]:
        print("  WARNING: the counting pass and the timed runs made different evaluations", file=sys.stderr)

    flops_eval = 2.0 * conv_flops(network.arch, size, size, jx.problem.objective.layers)  # forward + input-gradient convs, per frame
    jax_s = common.median([r["seconds"] for r in jax_rounds])
    torch_s = common.median([r["seconds"] for r in torch_rounds])
    torch_iters = common.median([r["iterations"] for r in torch_rounds])
    torch_evals = common.median([r["evaluations"] for r in torch_rounds])
    jax_evals = warm["batched_evaluations"]
    jax_fis = batch * n / jax_s
    torch_fis = batch * torch_iters / torch_s
    jax_gflops = jax_evals * batch * flops_eval / jax_s / 1e9
    torch_gflops = torch_evals * batch * flops_eval / torch_s / 1e9
    return {
        "optimizer": optimizer, "size": size, "batch": batch, "iterations": n, "learning_rate": lr,
        "conv_gflop_per_frame_evaluation": flops_eval / 1e9,
        "initial_loss": {"jax": init_jax.tolist(), "torch": init_torch.tolist(), "rel_diff": parity},
        "final_loss": {"jax": final_jax.tolist(), "torch": final_torch.tolist()},
        "jax": {
            "compile_seconds": jx.compile_seconds, "median_seconds": jax_s,
            "min_seconds": min(r["seconds"] for r in jax_rounds), "frame_iterations_per_s": jax_fis,
            "batched_evaluations": jax_evals,
            "evaluations_per_iteration": jax_evals / n,
            "per_frame_evaluations_per_iteration": float(np.mean(warm["per_frame_evaluations"])) / n,
            "counting_pass": warm, "conv_gflops": jax_gflops, "rounds": jax_rounds,
        },
        "torch": {
            "median_seconds": torch_s, "min_seconds": min(r["seconds"] for r in torch_rounds), "iterations_done": torch_iters, "frame_iterations_per_s": torch_fis,
            "evaluations": torch_evals, "evaluations_per_iteration": torch_evals / max(torch_iters, 1),
            "conv_gflops": torch_gflops, "rounds": torch_rounds,
        },
        "ratio_jax_over_torch_frame_iterations_per_s": jax_fis / torch_fis,
        "ratio_jax_over_torch_conv_gflops": jax_gflops / torch_gflops,
    }


def print_table(results: list[dict], matmul_gflops: float) -> None:
    head = (f"{'opt':6} {'size':>5} {'B':>3} | {'JAX s':>7} {'torch s':>7} | {'JAX fr-it/s':>11} {'torch fr-it/s':>13} "
            f"{'JAX/torch':>9} | {'ev/it JAX':>9} {'torch':>6} | {'GFLOP/s JAX':>11} {'torch':>7} | "
            f"{'%mm JAX':>7} {'torch':>6} | {'compile s':>9}")
    print("\n" + head)
    print("-" * len(head))
    for r in results:
        j, t = r["jax"], r["torch"]
        print(f"{r['optimizer']:6} {r['size']:>5} {r['batch']:>3} | {j['median_seconds']:7.3f} {t['median_seconds']:7.3f} | "
              f"{j['frame_iterations_per_s']:11.2f} {t['frame_iterations_per_s']:13.2f} "
              f"{r['ratio_jax_over_torch_frame_iterations_per_s']:9.2f} | {j['evaluations_per_iteration']:9.2f} "
              f"{t['evaluations_per_iteration']:6.2f} | {j['conv_gflops']:11.1f} {t['conv_gflops']:7.1f} | "
              f"{100 * j['conv_gflops'] / matmul_gflops:6.1f}% {100 * t['conv_gflops'] / matmul_gflops:5.1f}% | "
              f"{j['compile_seconds']:9.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="128,256", help="comma-separated square image sizes (px)")
    ap.add_argument("--batches", default="1,8", help="comma-separated batch sizes (frames optimized at once)")
    ap.add_argument("--iterations", type=int, default=10, help="optimizer iterations per timed run")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds per configuration")
    ap.add_argument("--optimizers", default="adam,lbfgs", help="comma-separated: adam, lbfgs (run in that order)")
    ap.add_argument("--network", default="vgg16", help="network for jaxstyle.load_network (default vgg16)")
    ap.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--matmul-size", type=int, default=2048, help="n of the n x n float32 matmul rate probe")
    ap.add_argument("--pause", type=float, default=0.5, help="seconds of idle before each timed run")
    ap.add_argument("--json", default=str(common.OUT_DIR / "throughput.json"), help="where to write the results")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    batches = [int(b) for b in args.batches.split(",") if b]
    wanted = [o.strip() for o in args.optimizers.split(",") if o.strip()]
    bad = [o for o in wanted if o not in ("adam", "lbfgs")]
    if bad or not wanted:
        ap.error(f"--optimizers takes adam and/or lbfgs, not {bad or args.optimizers!r}")
    optimizers = [o for o in ("adam", "lbfgs") if o in wanted]
    if args.iterations < 1 or args.rounds < 1 or min(sizes) < 32 or min(batches) < 1:
        ap.error("need --iterations >= 1, --rounds >= 1, sizes >= 32 and batches >= 1")
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    network = load_network(args.network)
    cfg, floats = common.loss_setup()
    content, style = common.read_media()
    env = common.environment(network)
    common.check_same_hardware(env)
    common.warn_if_busy(env)
    print(f"{env['network']}; JAX {env['jax']} on {env['jax_backend']} ({env['jax_threads']} threads), "
          f"torch {env['torch']} ({env['torch_threads']} threads); CPU {env['cpu']}")
    print("frames: B square crops of tubingen.jpg (side = its short side, shifted along the long side), "
          f"resized to SxS; style starry_night.jpg at long side S; loss: jaxstyle defaults {floats}, "
          f"layers {cfg.content_layers} + {cfg.style_layers}")
    print(f"measuring the float32 {args.matmul_size}^2 matmul rate ...", flush=True)
    matmul = [common.matmul_rates(args.matmul_size)]

    results = []
    for optimizer in optimizers:
        for size in sizes:
            for batch in batches:
                results.append(bench_config(args, network, cfg, floats, content, style, optimizer, size, batch))
    matmul.append(common.matmul_rates(args.matmul_size))
    mm = common.merge_matmul(matmul)
    # The machine's float32 rate: the best of the three matmul libraries (each one's own rate is kept too).
    peak = max(mm["gflops"].values())
    mm["machine_gflops"] = peak
    for r in results:
        for who in ("jax", "torch"):
            r[who]["fraction_of_machine_matmul_rate"] = r[who]["conv_gflops"] / peak
            r[who]["fraction_of_jnp_dot_rate"] = r[who]["conv_gflops"] / mm["gflops"]["jax"]
            r[who]["fraction_of_own_library_matmul_rate"] = r[who]["conv_gflops"] / mm["gflops"][who]

    print_table(results, peak)
    print(f"\nmedians of {args.rounds} interleaved rounds of {args.iterations} iterations (order alternates per round); "
          "fr-it/s = frames x iterations / s; JAX/torch > 1 means JAX is faster.")
    print("JAX: Problem.compiled's initial state + ONE compiled chunk of N iterations (no per-chunk loss evaluation); "
          "compile time excluded from the rounds and shown separately.")
    print("GFLOP/s counts convolution FLOPs only: forward + input-gradient convolutions (2x vgg.conv_flops; no weight "
          "gradients) x loss+grad evaluations actually made x B (JAX L-BFGS: batched evaluations incl. the initial one, "
          "counted in an untimed pass; torch: closure calls). %mm = share of the machine's float32 matmul rate "
          "(the best of jitted jnp.dot, numpy and torch.mm below).")
    print(f"float32 {mm['n']}^2 matmul rate (median, measured before and after): "
          + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in mm["gflops"].items()))
    if "lbfgs" in optimizers:
        print("L-BFGS: torch's LBFGS optimizes the batch as ONE vector with one shared line search (coupled frames; its "
              "iterations are batch iterations); jaxstyle runs an independent L-BFGS with its own line search per frame, "
              "and evaluates the whole batch while any frame still searches. 'ev/it' = batched loss+grad evaluations "
              "per iteration (JAX per-frame mean in the JSON).")
        for r in results:
            if r["optimizer"] == "lbfgs":
                print(f"  {r['size']}x{r['size']} B={r['batch']}: final mean loss JAX {np.mean(r['final_loss']['jax']):.4g}, "
                      f"torch {np.mean(r['final_loss']['torch']):.4g} (initial {np.mean(r['initial_loss']['jax']):.4g})")

    out = {
        "benchmark": "throughput",
        "args": vars(args),
        "environment": env,
        "frames": "B square crops (side = content short side) shifted evenly along the long side, resized to SxS",
        "loss": {"content_layers": cfg.content_layers, "style_layers": cfg.style_layers,
                 "style_layer_weights": cfg.style_layer_weights, "weights": floats, "distance": cfg.distance},
        "jax_timing": "Problem.compiled initial state + one compiled chunk call of N iterations, block_until_ready",
        "flop_counting": "2 x jaxstyle.vgg.conv_flops (forward + backward-data convolutions) per frame per evaluation",
        "matmul": mm,
        "results": results,
    }
    path = common.write_json(args.json, out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
