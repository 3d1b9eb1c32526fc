"""The accelerator check: what a GPU's first minutes should measure, in one command.

Run it through ``benchmarks/device_check.sh`` (sets the environment, bounds the wall time, keeps a
log). It needs only JAX, PyTorch, flax, optax, orbax, OpenCV, imageio and tqdm: the network is VGG19
with random He-initialized weights and every image is generated, so nothing is downloaded and
nothing from ``../shared`` is read. Parts, in the order they run (each part is skipped, and the JSON
says so, once the time budget is spent; the JSON is rewritten after every part, so a run cut short
keeps what it measured):

1. **throughput** at (512 px, B 8) and (256 px, B 8): JAX against PyTorch eager and ``torch.compile``
   (the loss, forward and backward, one graph per shape), Adam, one loss+gradient evaluation per
   iteration on both sides, in float32, TF32 and bfloat16. The contenders of a configuration run
   the same iterations on the same frames, interleaved over rounds (the order rotates); medians.
2. **amortized**: jaxstyle's default optimizer (L-BFGS) for 500 iterations at 512 px on a batch of
   8 frames, through the product's own schedule (``jaxstyle.schedules.stylize``): seconds per frame,
   compile time excluded (it is reported beside).
3. **lanes**: the lanes schedule against ``--sequential`` on a generated clip (a camera pan over a
   textured scene with a disc crossing it fast): e_stab of each, their ratio, the largest pair over
   the median, frames per second.
4. **throughput** at batch 1 and 32 (256 and 512 px), as 1.

MFU = the convolution FLOPs of the evaluations made (forward + input-gradient, per
``jaxstyle.nets.vgg.conv_flops``) per second, over the chip's dense peak at that precision (table
below; on a CPU, the measured float32 matmul rate stands in for every precision).

    bash benchmarks/device_check.sh            # on the accelerator machine (writes $OUT/device_check)
    bash benchmarks/device_check.sh --tiny     # anywhere (2 minutes on 2 CPU cores; torch.compile takes most)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (also puts the repo root on sys.path)

import jax  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench_throughput import JaxContender, TorchContender  # noqa: E402
from jaxstyle import schedules  # noqa: E402
from jaxstyle.config import StyleConfig, VideoConfig  # noqa: E402
from jaxstyle.nets.vgg import PRECISIONS, conv_flops  # noqa: E402
from jaxstyle.nets.weights import load_network  # noqa: E402
from jaxstyle.optim import OPTIMIZERS  # noqa: E402
from jaxstyle.video.assemble import measure_stability  # noqa: E402
from jaxstyle.video.cuts import detect_cuts  # noqa: E402
from jaxstyle.video.flow import FlowCache  # noqa: E402
from jaxstyle.video.job import Processes, iterations_per_frame, plan_job_lanes, run_passes  # noqa: E402
from jaxstyle.video.source import FramesSource  # noqa: E402
from jaxstyle.video.workdir import WorkDir  # noqa: E402

# Dense peak FLOP/s by precision (vendor datasheets; float32 is the non-tensor-core rate, tf32 and
# bfloat16 the dense tensor-core rates). Matched against the device name, first match wins.
PEAKS = [
    ("H100 PCIe", {"float32": 51.2e12, "tf32": 378e12, "bfloat16": 756e12}),
    ("H200", {"float32": 67e12, "tf32": 494.7e12, "bfloat16": 989.4e12}),
    ("H100", {"float32": 67e12, "tf32": 494.7e12, "bfloat16": 989.4e12}),
    ("A100", {"float32": 19.5e12, "tf32": 156e12, "bfloat16": 312e12}),
    ("L4", {"float32": 30.3e12, "tf32": 60e12, "bfloat16": 121e12}),
    ("TPU v4", {"bfloat16": 275e12}),
    ("TPU v5 lite", {"bfloat16": 197e12}),
    ("TPU v5e", {"bfloat16": 197e12}),
    ("TPU v5p", {"bfloat16": 459e12}),
    ("TPU v6", {"bfloat16": 918e12}),
]

# What runs, full size and tiny (CPU). Throughput configurations are (size, batch).
FULL = {"first": [(512, 8), (256, 8)], "later": [(256, 1), (512, 1), (256, 32), (512, 32)],
        "amortized": {"size": 512, "batch": 8, "iterations": 500, "chunk": 50},
        "lanes": {"width": 256, "height": 144, "frames": 32, "lanes": 8, "iterations": None},
        "target_run_s": 0.5, "rounds": 3, "budget_s": 400, "matmul": 4096}
TINY = {"first": [(32, 2)], "later": [],
        "amortized": {"size": 32, "batch": 2, "iterations": 4, "chunk": 2},
        "lanes": {"width": 64, "height": 48, "frames": 8, "lanes": 2, "iterations": 2},
        "target_run_s": 0.0, "rounds": 2, "budget_s": 120, "matmul": 1024}


# ----------------------------------------------------------------------------------------------
# Generated media (no files)


def _texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A scene with structure at every scale: smooth colour fields, edges and stripes."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.zeros((h, w, 3), np.float32)
    for _ in range(12):  # soft coloured blobs
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.05, 0.3) * min(h, w)
        image += rng.uniform(0, 1, 3) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
    for _ in range(6):  # gratings of random orientation and period, in patches
        theta, period = rng.uniform(0, np.pi), rng.uniform(4, 24)
        phase = (np.cos(theta) * xx + np.sin(theta) * yy) * 2 * np.pi / period
        patch = (np.abs(yy - rng.uniform(0, h)) < h / 4) & (np.abs(xx - rng.uniform(0, w)) < w / 4)
        image += 0.3 * (np.sin(phase) * patch)[..., None] * rng.uniform(0, 1, 3)
    image -= image.min()
    return image / max(float(image.max()), 1e-6)


def generated_clip(height: int, width: int, frames: int, seed: int = 0) -> np.ndarray:
    """[T, H, W, 3]: a camera panning right over a textured scene (3 px per frame at 256 px wide)
    while a bright disc crosses it once, fast (80% of the width over the clip: 6.6 px per frame at
    256 px and 32 frames), occluding what it passes."""
    rng = np.random.default_rng(seed)
    pan = max(1, round(3 * width / 256))
    world = _texture(height, width + pan * frames, rng)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = 0.15 * height
    clip = []
    for t in range(frames):
        frame = world[:, t * pan:t * pan + width].copy()
        progress = t / max(frames - 1, 1)  # one crossing, left to right, never wrapping round
        cx, cy = width * (0.1 + 0.8 * progress), height * (0.3 + 0.4 * progress)
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2) < radius ** 2
        frame[disc] = (0.95, 0.85, 0.2)
        clip.append(frame)
    return np.stack(clip).astype(np.float32)


def generated_style(size: int, seed: int = 1) -> np.ndarray:
    """A 'painting': short strokes of a few colours (rotated gratings in cells) over a colour field."""
    rng = np.random.default_rng(seed)
    palette = rng.uniform(0, 1, (5, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cell = max(4, size // 16)
    image = np.zeros((size, size, 3), np.float32)
    for cy in range(0, size, cell):
        for cx in range(0, size, cell):
            theta = rng.uniform(0, np.pi)
            sl = np.s_[cy:cy + cell, cx:cx + cell]
            stroke = 0.5 + 0.5 * np.sin((np.cos(theta) * xx[sl] + np.sin(theta) * yy[sl]) * 2 * np.pi / 5)
            a, b = palette[rng.integers(0, 5)], palette[rng.integers(0, 5)]
            image[sl] = stroke[..., None] * a + (1 - stroke[..., None]) * b
    return image


def square_frames(size: int, batch: int) -> np.ndarray:
    """B different frames of size x size: crops of one generated scene, shifted along it."""
    scene = _texture(size, size * 2, np.random.default_rng(2))
    offsets = np.linspace(0, size, batch).astype(int)
    return np.stack([scene[:, o:o + size] for o in offsets]).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# The machine


def peaks_for(device_name: str) -> tuple[str | None, dict[str, float]]:
    for key, peaks in PEAKS:
        if key.lower() in device_name.lower():
            return key, peaks
    return None, {}


def torch_tf32(enabled: bool) -> None:
    """PyTorch's TF32 switches (cuDNN convolutions default to TF32; matmuls to full float32)."""
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled


class Budget:
    def __init__(self, seconds: float):
        self.seconds, self.t0 = seconds, time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.seconds - self.elapsed()


# ----------------------------------------------------------------------------------------------
# Parts


def throughput(args, plan, base, size: int, batch: int, budget: Budget, peaks, torch_device: str) -> dict:
    """JAX vs torch eager vs torch.compile at one (size, batch), every precision."""
    frames = square_frames(size, batch)
    style = generated_style(max(64, size))
    lr = OPTIMIZERS["adam"].learning_rate
    out: dict = {"size": size, "batch": batch, "optimizer": "adam", "precisions": {}}
    for precision in args.precisions:
        if budget.left() <= 0:
            out["precisions"][precision] = {"skipped": "time budget spent"}
            continue
        network = base.configured("avg", precision)
        cfg, floats = common.loss_setup(StyleConfig(precision=precision, network="random"))
        flops_eval = 2.0 * conv_flops(network.arch, size, size, cfg.content_layers + cfg.style_layers)
        row: dict = {"conv_gflop_per_frame_evaluation": flops_eval / 1e9, "contenders": {}}
        contenders = {}
        try:
            t0 = time.perf_counter()
            jx = JaxContender(network, cfg, "adam", lr, frames, style)
            jx.warm_up(1)
            row["contenders"]["jax"] = {"compile_seconds": time.perf_counter() - t0}
            contenders["jax"] = jx
        except Exception as exc:  # noqa: BLE001  (a failed contender is a result, not the end)
            row["contenders"]["jax"] = {"error": _error(exc)}
        torch_tf32(precision == "tf32")
        kinds = [("torch_eager", False)] + ([("torch_compile", True)] if precision in args.compile_precisions else [])
        for name, compiled in kinds:
            if compiled and budget.left() < args.compile_reserve_s:
                row["contenders"][name] = {"skipped": "not enough time budget left for a compile"}
                continue
            try:
                if compiled:
                    torch._dynamo.reset()  # one compile per configuration, no stale graphs, no cache limit
                t0 = time.perf_counter()
                tc = TorchContender(network, cfg, floats, "adam", lr, frames, style, device=torch_device,
                                    precision=precision, compiled=compiled)
                tc.run(2)  # eager: allocator and cuDNN plans; compiled: the compile itself
                row["contenders"][name] = {"compile_seconds": time.perf_counter() - t0}
                contenders[name] = tc
            except Exception as exc:  # noqa: BLE001
                row["contenders"][name] = {"error": _error(exc)}
        if "jax" not in contenders:
            out["precisions"][precision] = row
            continue
        # iterations per timed run: about target_run_s of JAX's time (at least 2), the same for all
        probe = contenders["jax"].run(2)["seconds"] / 2
        n = max(2, min(100, round(plan["target_run_s"] / max(probe, 1e-6)))) if plan["target_run_s"] else 2
        row["iterations"] = n
        # same loss? (initial per-frame losses)
        init_jax = contenders["jax"].losses(contenders["jax"].images)
        for name in [k for k in contenders if k != "jax"]:
            row["contenders"][name]["initial_loss_rel_diff_vs_jax"] = common.rel_diff(
                contenders[name].losses(contenders[name].x0), init_jax)
        names = list(contenders)
        times = {name: [] for name in names}
        for r in range(plan["rounds"]):
            for name in names[r % len(names):] + names[:r % len(names)]:
                torch_tf32(precision == "tf32")
                times[name].append(contenders[name].run(n)["seconds"])
        peak = peaks.get(precision)
        for name in names:
            seconds = common.median(times[name])
            rate = batch * n * flops_eval / seconds
            row["contenders"][name].update({
                "rounds_seconds": times[name], "median_seconds": seconds,
                "seconds_per_iteration": seconds / n, "frame_iterations_per_s": batch * n / seconds,
                "conv_tflops": rate / 1e12, "mfu": rate / peak if peak else None})
        for name in names:
            if name != "jax":
                row[f"jax_over_{name}"] = row["contenders"][name]["median_seconds"] / \
                    row["contenders"]["jax"]["median_seconds"]
        out["precisions"][precision] = row
        _print_row(size, batch, precision, row)
        del contenders
    return out


def amortized(args, plan, base, budget: Budget, devices) -> dict:
    """500 iterations of jaxstyle's default optimizer at 512 px, per frame amortized."""
    spec = plan["amortized"]
    size, batch = spec["size"], spec["batch"]
    contents = square_frames(size, batch)
    style = generated_style(size)
    out: dict = {**spec, "optimizer": "lbfgs", "precisions": {}}
    order = [p for p in ("bfloat16", "tf32", "float32") if p in args.precisions]
    for precision in order:
        if budget.left() <= 0:
            out["precisions"][precision] = {"skipped": "time budget spent"}
            continue
        try:
            cfg = StyleConfig(start_size=0, iterations=spec["iterations"], frames_per_device=batch,
                              precision=precision, network="random", chunk=spec["chunk"]).resolved()
            network = base.configured(cfg.pooling, precision)
            frames = schedules.prepare(contents, [style], cfg)
            t0 = time.perf_counter()
            result = schedules.stylize(frames, cfg, network, devices=devices)
            wall = time.perf_counter() - t0
            scale = result.metrics["scales"][-1]
            run_s = scale["run_seconds"]
            row = {"wall_seconds": wall, "compile_seconds": result.metrics["compile_seconds"],
                   "run_seconds": run_s, "seconds_per_frame": run_s / batch,
                   "seconds_per_frame_iteration": run_s / batch / spec["iterations"],
                   "initial_loss_mean": float(np.mean(scale["initial"]["total"])),
                   "final_loss_mean": float(np.mean(scale["final"]["total"])),
                   "goal_seconds_per_frame": 1.0, "met": run_s / batch <= 1.0}
        except Exception as exc:  # noqa: BLE001
            row = {"error": _error(exc)}
        out["precisions"][precision] = row
        if "error" in row:
            print(f"[amortized {precision}] failed: {row['error']}", flush=True)
        else:
            print(f"[amortized {precision}] {spec['iterations']} L-BFGS iterations at {size} px, B={batch}: "
                  f"{row['seconds_per_frame']:.3f} s per frame (compile {row['compile_seconds']:.1f} s), "
                  f"loss {row['initial_loss_mean']:.4g} -> {row['final_loss_mean']:.4g}", flush=True)
    return out


def lanes(args, plan, base, budget: Budget, devices) -> dict:
    """The lanes schedule and --sequential on a generated clip: stability and speed."""
    spec = plan["lanes"]
    clip = generated_clip(spec["height"], spec["width"], spec["frames"])
    style = generated_style(max(spec["width"], spec["height"]))
    precision = "tf32" if "tf32" in args.precisions else args.precisions[0]
    out: dict = {**spec, "precision": precision, "clip": "camera pan + a disc crossing fast (generated)",
                 "modes": {}}
    for mode in ("sequential", "lanes"):
        if budget.left() <= 0:
            out["modes"][mode] = {"skipped": "time budget spent"}
            continue
        try:
            iterations = {"iterations": spec["iterations"]} if spec["iterations"] else {}
            cfg = StyleConfig(preset="fast", network="random", precision=precision, frames_per_device=spec["lanes"],
                              video=VideoConfig(sequential=mode == "sequential", **iterations), **iterations).resolved()
            network = base.configured(cfg.pooling, precision)
            source = FramesSource(clip, [style], cfg)
            with tempfile.TemporaryDirectory(prefix="device_check_lanes_") as tmp:
                work = WorkDir(Path(tmp) / "work")
                work.prepare({"device_check": mode}, resume=False)
                flows = FlowCache(work.flows)
                t0 = time.perf_counter()
                cuts = detect_cuts(source, flows, cfg.video.flow)
                planned, mine = plan_job_lanes(source.n_frames, cfg, len(devices), Processes())
                stats = run_passes(source, work, flows, cfg, network, devices, planned, mine, cuts, log=lambda *_: None)
                wall = time.perf_counter() - t0
                row = measure_stability(source, work, flows, cfg, planned, cfg.video.passes, cuts)
            row.update({"lanes": len(planned), "wall_seconds": wall, "compile_seconds": stats["compile_seconds"],
                        "frames_per_second": source.n_frames / wall,
                        "frames_per_second_excluding_compile": source.n_frames / max(wall - stats["compile_seconds"], 1e-9),
                        "iterations_per_frame": iterations_per_frame(stats, planned, cuts, source.n_frames, cfg),
                        **cuts.metrics()})
            print(f"[lanes {mode}] {len(planned)} lane(s): e_stab {row['stability_error']:.4g}, largest pair "
                  f"{row['max_pair_over_median']:.2f}x the median, {row['frames_per_second']:.2f} frames/s "
                  f"({row['frames_per_second_excluding_compile']:.2f} without the {row['compile_seconds']:.1f} s "
                  "of compiles)", flush=True)
        except Exception as exc:  # noqa: BLE001
            row = {"error": _error(exc)}
            print(f"[lanes {mode}] failed: {row['error']}", flush=True)
        out["modes"][mode] = row
    seq, lan = out["modes"].get("sequential", {}), out["modes"].get("lanes", {})
    if "stability_error" in seq and "stability_error" in lan:
        out["lanes_over_sequential_e_stab"] = lan["stability_error"] / max(seq["stability_error"], 1e-12)
        out["goal_lanes_over_sequential"] = 1.15
        print(f"[lanes] lanes / sequential e_stab = {out['lanes_over_sequential_e_stab']:.3f} (goal <= 1.15); "
              f"speed-up {lan['frames_per_second'] / seq['frames_per_second']:.2f}x", flush=True)
    return out


# ----------------------------------------------------------------------------------------------


def _error(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" ({Path(last.filename).name}:{last.lineno})" if last else ""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{where}"[:500]


def _print_row(size, batch, precision, row) -> None:
    c = row["contenders"]
    parts = []
    for name in ("jax", "torch_eager", "torch_compile"):
        if name in c and "median_seconds" in c[name]:
            mfu = c[name]["mfu"]
            parts.append(f"{name} {1e3 * c[name]['seconds_per_iteration']:.2f} ms/it"
                         + (f" (MFU {100 * mfu:.1f}%)" if mfu is not None else ""))
        elif name in c:
            parts.append(f"{name} {c[name].get('error') or c[name].get('skipped')}")
    ratios = ", ".join(f"{k.replace('jax_over_', 'JAX/')} {v:.2f}x" for k, v in row.items() if k.startswith("jax_over_"))
    print(f"[throughput {size}px B={batch} {precision}] " + "; ".join(parts) + (f"; {ratios}" if ratios else ""),
          flush=True)


def summary_table(results: dict) -> str:
    lines = [f"{'size':>5} {'B':>3} {'precision':>9} | {'JAX ms/it':>9} {'eager':>8} {'compile':>8} | "
             f"{'JAX/eager':>9} {'JAX/comp':>8} | {'MFU JAX':>7} {'eager':>6} {'comp':>6}"]
    for entry in results.get("throughput", []):
        for precision, row in entry["precisions"].items():
            c = row.get("contenders", {})

            def ms(name):
                return f"{1e3 * c[name]['seconds_per_iteration']:.2f}" if "seconds_per_iteration" in c.get(name, {}) else "-"

            def mfu(name):
                m = c.get(name, {}).get("mfu")
                return f"{100 * m:.1f}%" if m is not None else "-"

            def ratio(key):
                return f"{row[key]:.2f}x" if key in row else "-"

            lines.append(f"{entry['size']:>5} {entry['batch']:>3} {precision:>9} | {ms('jax'):>9} {ms('torch_eager'):>8} "
                         f"{ms('torch_compile'):>8} | {ratio('jax_over_torch_eager'):>9} "
                         f"{ratio('jax_over_torch_compile'):>8} | {mfu('jax'):>7} {mfu('torch_eager'):>6} "
                         f"{mfu('torch_compile'):>6}")
    return "\n".join(lines)


def default_out() -> Path:
    return Path(os.environ["OUT"]) / "device_check" if os.environ.get("OUT") else common.ROOT / "outputs" / "device_check"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny sizes and few iterations (a CPU check of the script)")
    ap.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated, of " + ", ".join(PRECISIONS))
    ap.add_argument("--parts", default="throughput,amortized,lanes", help="comma-separated parts to run")
    ap.add_argument("--budget-s", type=float, default=None, help="start no new part after this many seconds")
    ap.add_argument("--torch-compile-precisions", dest="compile_precisions", default=",".join(PRECISIONS),
                    help="precisions at which torch.compile contends too (comma-separated; empty: none)")
    ap.add_argument("--compile-reserve-s", type=float, default=90.0,
                    help="start a torch.compile only with this much budget left (its compile takes long)")
    ap.add_argument("--out", default=None, help="folder for device_check.json (default: $OUT/device_check, else "
                                                "outputs/device_check)")
    args = ap.parse_args(argv)
    plan = TINY if args.tiny else FULL
    args.precisions = [p for p in args.precisions.split(",") if p]
    args.compile_precisions = [p for p in args.compile_precisions.split(",") if p]
    parts = {p for p in args.parts.split(",") if p}
    if not set(args.precisions) <= set(PRECISIONS) or not parts <= {"throughput", "amortized", "lanes"}:
        ap.error("unknown precision or part")
    if args.tiny:
        args.compile_reserve_s = min(args.compile_reserve_s, 0.0)
    budget = Budget(args.budget_s if args.budget_s is not None else plan["budget_s"])
    out_dir = Path(args.out) if args.out else default_out()
    json_path = out_dir / "device_check.json"

    device = jax.devices()[0]
    devices = [device]  # one chip: the figures are per chip
    torch_device = "cuda" if torch.cuda.is_available() else "cpu"
    device_name = torch.cuda.get_device_name(0) if torch_device == "cuda" else device.device_kind
    chip, peaks = peaks_for(f"{device.device_kind} {device_name}")
    env = common.environment()
    env.update({"jax_device_kind": device.device_kind, "torch_device": torch_device, "torch_device_name": device_name,
                "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if torch_device == "cuda" else None,
                "xla_python_client_mem_fraction": os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION")})
    if (jax.default_backend() == "gpu") != (torch_device == "cuda"):
        print(f"WARNING: JAX runs on {jax.default_backend()} and PyTorch on {torch_device}: not like for like",
              file=sys.stderr)
    if not peaks:
        rate = common.matmul_rates(plan["matmul"], reps=3)["gflops"]["jax"] * 1e9
        peaks = {p: rate for p in PRECISIONS}
        chip = f"measured float32 {plan['matmul']}^2 jnp.dot rate on {device.device_kind}"
    print(f"JAX {jax.__version__} on {device.device_kind}; torch {torch.__version__} on {device_name}; "
          f"peaks ({chip}): " + ", ".join(f"{k} {v / 1e12:.1f} TFLOP/s" for k, v in peaks.items()), flush=True)

    base = load_network("random")
    results: dict = {"benchmark": "device_check", "tiny": args.tiny, "environment": env, "network": base.describe(),
                     "peaks": {"chip": chip, "flops": peaks}, "plan": plan, "throughput": [], "amortized": None,
                     "lanes": None, "skipped": [], "goals": {"jax_over_torch_eager": 2.0,
                                                             "amortized_seconds_per_frame_512px_500_iterations": 1.0,
                                                             "lanes_over_sequential_e_stab": 1.15}}

    def save():
        results["elapsed_seconds"] = budget.elapsed()
        common.write_json(json_path, results)

    tasks = []
    if "throughput" in parts:
        tasks += [("throughput", sb) for sb in plan["first"]]
    if "amortized" in parts:
        tasks.append(("amortized", None))
    if "lanes" in parts:
        tasks.append(("lanes", None))
    if "throughput" in parts:
        tasks += [("throughput", sb) for sb in plan["later"]]
    for kind, arg in tasks:
        label = kind if arg is None else f"{kind} {arg[0]}px B={arg[1]}"
        if budget.left() <= 0:
            results["skipped"].append(f"{label}: time budget spent")
            print(f"[{label}] skipped: the time budget ({budget.seconds:.0f} s) is spent", flush=True)
            continue
        try:
            if kind == "throughput":
                results["throughput"].append(throughput(args, plan, base, *arg, budget, peaks, torch_device))
            elif kind == "amortized":
                results["amortized"] = amortized(args, plan, base, budget, devices)
            else:
                results["lanes"] = lanes(args, plan, base, budget, devices)
        except Exception as exc:  # noqa: BLE001  (one part failing must not lose the others)
            results["skipped"].append(f"{label}: {_error(exc)}")
            print(f"[{label}] failed: {_error(exc)}", flush=True)
        save()
    table = summary_table(results)
    results["table"] = table
    save()
    print("\n" + table)
    print(f"\nms/it = milliseconds per Adam iteration of the whole batch; JAX/x > 1: JAX is faster; MFU against "
          f"{chip}. Wrote {json_path} ({budget.elapsed():.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
