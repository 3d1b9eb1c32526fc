"""Time to quality: jaxstyle's coarse-to-fine preset vs single-scale PyTorch L-BFGS.

1. PyTorch: single-scale L-BFGS (strong Wolfe, history 10) for --torch-iterations at the target
   size, from the content image, on the same loss as jaxstyle's defaults (TorchGatysLoss). Its final
   loss is L*.
2. jaxstyle: ``stylize_frames`` with ``StyleConfig(preset=...)`` on the same content at the same
   size and network; ``on_chunk`` records the time since the start of ``stylize_frames`` and the
   loss after every chunk of the final scale (which is at the target size, so its losses compare
   with L*). Time to quality = the first chunk whose loss <= L*.

One round only (the run is long); PNGs of both results go under outputs/bench/. See README.md.

    PYTHONPATH=. python benchmarks/bench_quality.py --size 256 --torch-iterations 300 --preset balanced
    PYTHONPATH=. python benchmarks/bench_quality.py --quick          # a small trial
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (also puts the repo root on sys.path)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from jaxstyle import imaging, stylize_frames  # noqa: E402
from jaxstyle.api import image_losses  # noqa: E402
from jaxstyle.config import PRESETS, StyleConfig  # noqa: E402
from jaxstyle.imaging import scaled_size  # noqa: E402
from jaxstyle.io.images import write_image  # noqa: E402
from jaxstyle.nets.weights import load_network  # noqa: E402

QUICK = {"size": 64, "torch_iterations": 20, "start_size": 32, "coarse_iterations": 10, "iterations": 30}
DEFAULTS = {"size": 256, "torch_iterations": 300}


def warm_torch() -> None:
    """Import-time and first-use costs of torch.optim (about a second on first use), outside the timing."""
    y = torch.zeros(4, requires_grad=True)
    opt = torch.optim.LBFGS([y], max_iter=2, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        value = ((y - 1.0) ** 2).sum()
        value.backward()
        return value

    opt.step(closure)


def run_torch(network, cfg, floats, content: np.ndarray, style: np.ndarray, iterations: int, max_eval: int) -> dict:
    """Single-scale torch L-BFGS from the content image. Times: the optimization alone, and with the
    target set-up (style Gram matrices and content features); the inputs are resized beforehand."""
    t0 = time.perf_counter()
    loss = common.torch_loss(network, cfg, floats, content[None], style)
    t_setup = time.perf_counter() - t0
    x = common.to_nchw(content[None]).clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=iterations, max_eval=max_eval, history_size=10,
                            line_search_fn="strong_wolfe")
    trace: list[tuple[float, float]] = []

    def closure():
        opt.zero_grad(set_to_none=True)
        value = loss(x)
        value.backward()
        trace.append((time.perf_counter() - t0, float(value.detach())))
        return value

    t1 = time.perf_counter()
    opt.step(closure)
    t_end = time.perf_counter()
    with torch.no_grad():
        parts = {k: float(v[0]) for k, v in loss.parts(x).items()}
        clipped = x.detach().clamp(0.0, 1.0)
        parts_clipped = {k: float(v[0]) for k, v in loss.parts(clipped).items()}
    state = opt.state[x]
    return {
        "loss": loss, "image": common.from_nchw(clipped)[0],
        "final": parts, "final_clipped": parts_clipped,
        "iterations": int(state["n_iter"]), "evaluations": int(state["func_evals"]), "closure_calls": len(trace),
        "optimize_seconds": t_end - t1, "seconds": t_end - t0, "setup_seconds": t_setup,
        "trace": [{"seconds": s, "loss": v} for s, v in trace],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=None, help="long side of the content in px (default 256; quick: 64)")
    ap.add_argument("--torch-iterations", type=int, default=None, help="torch L-BFGS iterations (default 300; quick: 20)")
    ap.add_argument("--torch-max-eval", type=int, default=0,
                    help="torch LBFGS max_eval (0: 25 per iteration, i.e. never the limit; torch's own default "
                         "1.25 x max_iter would stop it early)")
    ap.add_argument("--preset", default="balanced", choices=tuple(PRESETS), help="jaxstyle preset")
    ap.add_argument("--start-size", type=int, default=None, help="override the preset's start size (quick: 32)")
    ap.add_argument("--iterations", type=int, default=None, help="override the preset's final-scale iterations (quick: 30)")
    ap.add_argument("--coarse-iterations", type=int, default=None, help="override the preset's coarse iterations (quick: 10)")
    ap.add_argument("--chunk", type=int, default=None, help="jaxstyle iterations per chunk (time resolution; default 10)")
    ap.add_argument("--jax-warm-run", action="store_true",
                    help="run jaxstyle a second time with all programs compiled and report that time too")
    ap.add_argument("--network", default="vgg16", help="network for jaxstyle.load_network (default vgg16)")
    ap.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--quick", action="store_true", help="small trial settings: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    ap.add_argument("--json", default=None, help="results path (default outputs/bench/quality.json, quick: quality-quick.json)")
    ap.add_argument("--out-dir", default=str(common.OUT_DIR), help="where the PNGs go")
    args = ap.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.json is None:
        args.json = str(common.OUT_DIR / ("quality-quick.json" if args.quick else "quality.json"))
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    overrides = {k: getattr(args, k) for k in ("start_size", "iterations", "coarse_iterations", "chunk")
                 if getattr(args, k) is not None}

    network = load_network(args.network)
    content_full, style = common.read_media()
    h, w = scaled_size(content_full.shape[0], content_full.shape[1], args.size)
    content = imaging.resize(content_full, h, w)
    cfg = StyleConfig(preset=args.preset, network=args.network, **overrides)
    rcfg = cfg.resolved()
    loss_cfg, floats = common.loss_setup(rcfg)
    env = common.environment(network)
    common.check_same_hardware(env)
    common.warn_if_busy(env)
    scales = rcfg.scales(h, w)
    print(f"{env['network']}; JAX {env['jax']} on {env['jax_backend']}, torch {env['torch']} "
          f"({env['torch_threads']} threads); content {w}x{h}")
    print(f"jaxstyle preset {args.preset}: scales {[f'{b}x{a}' for a, b in scales]}, "
          f"{rcfg.coarse_iterations} coarse + {rcfg.iterations} final iterations, chunk {rcfg.chunk}")

    # ---- PyTorch reference
    max_eval = args.torch_max_eval or args.torch_iterations * 25
    print(f"\nPyTorch: single-scale L-BFGS, {args.torch_iterations} iterations at {w}x{h} ...", flush=True)
    warm_torch()
    tr = run_torch(network, loss_cfg, floats, content, style, args.torch_iterations, max_eval)
    l_star = tr["final"]["total"]
    print(f"  L* = {l_star:.5g} after {tr['iterations']} iterations ({tr['evaluations']} evaluations) in "
          f"{tr['seconds']:.1f} s ({tr['optimize_seconds']:.1f} s optimizing)")

    # ---- jaxstyle
    common.settle(1.0)
    print(f"\njaxstyle: stylize_frames, preset {args.preset} ...", flush=True)
    final_scale = len(scales) - 1
    trace: list[dict] = []
    t_start = 0.0

    def on_chunk(scale_index, iterations_done, losses, seconds):
        trace.append({"scale": scale_index, "iterations": iterations_done,
                      "seconds": time.perf_counter() - t_start, "scale_seconds": seconds,
                      "total": float(np.asarray(losses["total"])[0])})

    t_start = time.perf_counter()
    result = stylize_frames(content[None], [style], cfg, network=network, on_chunk=on_chunk)
    jax_wall = time.perf_counter() - t_start
    metrics = result.metrics
    compile_s = float(metrics["compile_seconds"])
    assert metrics["scales"][-1]["size"] == [h, w], "jaxstyle's final scale is not at the target size"
    assert len(metrics["scales"]) == len(scales)
    jax_final = float(metrics["final"]["total"][0])
    final_initial = float(metrics["scales"][-1]["initial"]["total"][0])
    final_trace = [t for t in trace if t["scale"] == final_scale]
    hit = next((t for t in final_trace if t["total"] <= l_star), None)
    for i, s in enumerate(metrics["scales"]):
        print(f"  scale {i + 1}/{len(scales)} {s['size'][1]}x{s['size'][0]}: {s['iterations']} it, loss "
              f"{s['initial']['total'][0]:.5g} -> {s['final']['total'][0]:.5g}, run {s['run_seconds']:.1f} s, "
              f"compile {s['compile_seconds']:.1f} s")
    print(f"  final loss {jax_final:.5g}; wall {jax_wall:.1f} s (compile {compile_s:.1f} s)")
    cold_trace = trace
    warm = None
    if args.jax_warm_run:  # again, with every program compiled: a time without any compilation
        common.settle(1.0)
        print("  again with everything compiled (--jax-warm-run) ...", flush=True)
        trace = []
        t_start = time.perf_counter()
        result_w = stylize_frames(content[None], [style], cfg, network=network, on_chunk=on_chunk)
        warm = {"wall_seconds": time.perf_counter() - t_start, "compile_seconds": result_w.metrics["compile_seconds"],
                "trace": trace, "final_total": float(result_w.metrics["final"]["total"][0])}
        warm_hit = next((t for t in trace if t["scale"] == len(scales) - 1 and t["total"] <= l_star), None)
        warm["seconds_to_l_star"] = None if warm_hit is None else warm_hit["seconds"]
        trace = cold_trace

    # ---- cross-checks on the clipped output images, both losses
    jax_img = result.images[0]
    with torch.no_grad():
        jax_img_torch = {k: float(v[0]) for k, v in tr["loss"].parts(common.to_nchw(jax_img)).items()}
    jax_img_jax = image_losses(jax_img, content, [style], loss_cfg, network=network)
    parity = common.rel_diff(jax_img_jax["total"], jax_img_torch["total"])
    if parity > 1e-3:
        print(f"WARNING: JAX and torch losses of the jaxstyle image differ by {parity:.2e}", file=sys.stderr)

    # ---- report
    torch_time = tr["seconds"]
    summary = {"reached": hit is not None}
    print("\n=== time to quality (single round) ===")
    print(f"L* (torch, {tr['iterations']} single-scale L-BFGS iterations at {w}x{h}): {l_star:.5g}  "
          f"[clipped to [0,1]: {tr['final_clipped']['total']:.5g}]")
    print(f"torch: {torch_time:.2f} s to L* (incl. {tr['setup_seconds']:.2f} s target set-up; torch.optim warmed up "
          "beforehand)")
    if hit is None:
        print(f"jaxstyle NEVER reached L*: its final-scale loss ended at {jax_final:.5g} "
              f"({jax_final / l_star:.3f} x L*) after {jax_wall:.2f} s")
        summary.update(jax_final_over_l_star=jax_final / l_star)
    else:
        t_hit = hit["seconds"]
        t_hit_nc = t_hit - compile_s
        upper = final_initial <= l_star
        summary.update(
            jax_seconds=t_hit, jax_seconds_without_compile=t_hit_nc, iterations_at_final_scale=hit["iterations"],
            loss_at_hit=hit["total"], ratio_torch_over_jax=torch_time / t_hit,
            ratio_torch_over_jax_without_compile=torch_time / t_hit_nc,
            already_below_at_final_scale_start=upper,
        )
        print(f"jaxstyle: {t_hit:.2f} s to loss {hit['total']:.5g} <= L* (final scale, after {hit['iterations']} "
              f"iterations there); {t_hit_nc:.2f} s without its {compile_s:.2f} s compile")
        print(f"ratio torch/jaxstyle: {torch_time / t_hit:.2f} (with compile), {torch_time / t_hit_nc:.2f} (without); "
              "> 1 means jaxstyle reaches the same loss sooner")
        if upper:
            print("  (the final scale already started below L*; the time is an upper bound at chunk resolution)")
    if warm is not None:
        summary["warm_run"] = {k: v for k, v in warm.items() if k != "trace"}
        if warm["seconds_to_l_star"] is None:
            print(f"warm run (all compiled, {warm['wall_seconds']:.2f} s): never reached L*")
        else:
            summary["ratio_torch_over_jax_warm_run"] = torch_time / warm["seconds_to_l_star"]
            print(f"warm run (all compiled; compile {warm['compile_seconds']:.2f} s): {warm['seconds_to_l_star']:.2f} s to L*, "
                  f"ratio torch/jaxstyle {torch_time / warm['seconds_to_l_star']:.2f}")
    print(f"jaxstyle final loss {jax_final:.5g} = {jax_final / l_star:.3f} x L*")
    print(f"cross-check on jaxstyle's output (clipped to [0,1]): JAX loss {jax_img_jax['total']:.6g}, torch loss "
          f"{jax_img_torch['total']:.6g} (rel. diff {parity:.1e}); reported final (unclipped) {jax_final:.6g}")
    print(f"time resolution: jaxstyle chunks of {rcfg.chunk} iterations; 'without compile' subtracts "
          "metrics['compile_seconds'] (the AOT-compiled optimizer programs) only -- small jit compilations "
          "(feature extraction, resizing) stay in (--jax-warm-run measures a fully compiled run). One round only: the machine varies ~1.5x run to run.")
    torch_below_jax = next((t["seconds"] for t in tr["trace"] if t["loss"] <= jax_final), None)

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png_torch = write_image(out_dir / f"quality_torch_lbfgs{args.torch_iterations}_{w}x{h}.png", tr["image"])
    png_jax = write_image(out_dir / f"quality_jaxstyle_{args.preset}_{w}x{h}.png", jax_img)
    print(f"images: {png_torch}, {png_jax}")

    out = {
        "benchmark": "quality",
        "rounds": 1,
        "args": vars(args),
        "environment": env,
        "size": [h, w],
        "loss": {"content_layers": loss_cfg.content_layers, "style_layers": loss_cfg.style_layers,
                 "style_layer_weights": loss_cfg.style_layer_weights, "weights": floats, "distance": loss_cfg.distance},
        "torch": {
            "l_star": l_star, "final": tr["final"], "final_clipped": tr["final_clipped"],
            "iterations": tr["iterations"], "evaluations": tr["evaluations"], "max_eval": max_eval,
            "seconds": tr["seconds"], "optimize_seconds": tr["optimize_seconds"], "setup_seconds": tr["setup_seconds"],
            "seconds_to_jax_final_loss": torch_below_jax, "trace": tr["trace"], "image": str(png_torch),
        },
        "jax": {
            "config": dataclasses.asdict(rcfg), "scales": metrics["scales"], "compile_seconds": compile_s,
            "wall_seconds": jax_wall, "final_total": jax_final, "trace": trace, "warm_run": warm,
            "output_loss_jax": jax_img_jax, "output_loss_torch": jax_img_torch, "output_parity_rel_diff": parity,
            "image": str(png_jax),
        },
        "time_to_quality": summary,
    }
    path = common.write_json(args.json, out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
