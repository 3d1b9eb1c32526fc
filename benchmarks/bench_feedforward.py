"""Feed-forward networks against the optimizer (issue 14), on one machine in one run.

1. Per-video training on realshort.mp4's frames (training time, loss curve).
2. Speed: the network's frames/s against the lanes optimizer's on the same clip and size.
3. Quality: the engine's total loss of the network's frames over the optimizer's frames, and both
   clips' e_stab (the network sees no flow at inference).
   With ``--carries``: the same with the network's frames carried along the optical flow
   (``--carry``: flow at inference, as the optimizer has), per share.
4. Generalization: the same model on clips it was not trained on (loss and e_stab, carried too).
5. Warm start: iterations for the network-initialized optimizer to reach the loss that the content
   initialization reaches with the preset.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_feedforward.py --steps 1200 --temporal-weight 2000

Writes outputs/bench/feedforward_<model dir>.json, the model and contact sheets (content | network |
optimizer) under outputs/bench/feedforward/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from common import MEDIA, OUT_DIR, environment, median, write_json  # noqa: E402 (benchmarks/ on sys.path)

from jaxstyle import imaging
from jaxstyle.api import image_losses, network_for, stylize_frames
from jaxstyle.config import StyleConfig, TrainConfig
from jaxstyle.feedforward import TrainJob, load_model, train_network
from jaxstyle.feedforward.carry import FlowCarry
from jaxstyle.io.images import read_image, write_image
from jaxstyle.io.video import iter_frames, probe
from jaxstyle.video import VideoJob, VideoOptions, stylize_video
from jaxstyle.video.assemble import StabilityMeter
from jaxstyle.video.flow import FlowCache

VIDEOS = MEDIA / "video"
STYLE = MEDIA / "styles" / "starry_night.jpg"


def clip_frames(path: Path, size: int, frames: int) -> np.ndarray:
    info = probe(path)
    h, w = imaging.target_size(info.height, info.width, size)
    return np.stack(list(iter_frames(path, info, size=(w, h), duration=frames / float(info.fps) + 1e-3)))[:frames]


def losses(frames: np.ndarray, contents: np.ndarray, style: np.ndarray, cfg: StyleConfig, network) -> list[float]:
    return [image_losses(f, c, [style], cfg, network=network)["total"] for f, c in zip(frames, contents)]


def stability(frames: np.ndarray, contents: np.ndarray, flows: FlowCache) -> float:
    meter = StabilityMeter(flows, "dis")
    for t, (f, c) in enumerate(zip(frames, contents)):
        meter.add(t, f, c)
    return meter.metrics()["stability_error"]


def carried(frames: np.ndarray, contents: np.ndarray, carry: float) -> tuple[np.ndarray, float]:
    """The network's frames carried along the content's flow (``--carry``), and seconds per frame
    (the blend's compile for this size done first, untimed)."""
    warm_up = FlowCarry(carry)
    for c, f in zip(contents[:2], frames[:2]):
        warm_up(c, f)
    flow_carry = FlowCarry(carry)
    t0 = time.perf_counter()
    out = np.stack([flow_carry(c, f) for c, f in zip(contents, frames)])
    return out, (time.perf_counter() - t0) / len(frames)


def carry_report(frames: np.ndarray, contents: np.ndarray, style: np.ndarray, cfg: StyleConfig, network,
                 flows: FlowCache, carries: list[float], sheet: Path | None = None,
                 beside: np.ndarray | None = None) -> dict:
    """Loss, e_stab and cost per carried share; ``sheet``: also a contact sheet per share (content |
    network | carried | ``beside``, the first 4 frames), named ``<sheet stem>_carry<share>.png``."""
    report = {}
    for carry in carries:
        out, seconds = carried(frames, contents, carry)
        report[f"{carry:g}"] = {"loss_median": median(losses(out, contents, style, cfg, network)),
                                "e_stab": stability(out, contents, flows), "carry_seconds_per_frame": seconds}
        if sheet is not None:
            rows = [contents[:4], frames[:4], out[:4]] + ([] if beside is None else [beside[:4]])
            write_image(sheet.with_name(f"{sheet.stem}_carry{carry:g}.png"), imaging.contact_sheet(rows))
    return report


def optimizer_clip(path: Path, out: Path, cfg: StyleConfig, network, frames: int) -> tuple[np.ndarray, float]:
    """The lanes optimizer on the clip's first ``frames`` frames: (frames at the working size, seconds)."""
    info = probe(path)
    frames_dir = out / f"{path.stem}_optimizer_frames"
    options = VideoOptions(duration=float(Fraction(frames) / info.fps), frames_dir=str(frames_dir), audio=False)
    job = VideoJob(path, [STYLE], out / f"{path.stem}_optimizer.mp4", cfg, options, progress=False)
    t0 = time.perf_counter()
    metrics = stylize_video(job, network, log=lambda m: None)
    seconds = time.perf_counter() - t0
    h, w = imaging.target_size(info.height, info.width, cfg.size)
    images = [imaging.resize(read_image(p), h, w) for p in sorted(frames_dir.glob("frame_*.png"))]
    return np.stack(images)[:metrics["frames"]], seconds


def warm_start(frame: np.ndarray, style: np.ndarray, cfg: StyleConfig, network, model, cond) -> dict:
    """Iterations for the network-initialized optimizer (``--init network``: the full size only) to
    reach the final loss of the content initialization with the preset (coarse to fine, every
    scale's iterations counted)."""
    content_result = stylize_frames(frame[None], [style], cfg, network=network)
    target = float(content_result.metrics["final"]["total"][0])
    total = cfg.coarse_iterations * (len(cfg.scales(*frame.shape[:2])) - 1) + cfg.iterations
    warm_cfg = dataclasses.replace(cfg, init="network", start_size=None, iterations=total, chunk=5).resolved()
    trace = []
    net_result = stylize_frames(frame[None], [style], warm_cfg, network=network, init=model.stylize(frame[None], cond),
                                on_chunk=lambda s, it, l, sec: trace.append((it, float(l["total"][0]))))
    reached = next((it for it, loss in trace if loss <= target), None)
    return {"content_init_final_loss": target, "content_init_iterations": total,
            "network_init_trace": trace, "network_init_final_loss": float(net_result.metrics["final"]["total"][0]),
            "network_init_iterations_to_reach": reached, "fraction": None if reached is None else reached / total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="long side of the stylized frames")
    ap.add_argument("--crop", type=int, default=128, help="training crop side (from frames at --size)")
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--learning-rate", type=float, default=2e-3)
    ap.add_argument("--temporal-weight", type=float, default=TrainConfig.temporal_weight)
    ap.add_argument("--synthetic-motion", type=float, default=TrainConfig.synthetic_motion)
    ap.add_argument("--carries", default="0.5,0.7", help="comma-separated --carry shares measured (empty: none)")
    ap.add_argument("--no-warm-start", action="store_true", help="skip part 5 (the warm start)")
    ap.add_argument("--model-dir", default=None, help="where the model goes (default: outputs/bench/feedforward/"
                    "model_realshort_tw<temporal weight>[_m<synthetic motion>]); an existing one is resumed")
    ap.add_argument("--frames", type=int, default=8, help="frames of each clip for the optimizer comparison")
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds of the network")
    ap.add_argument("--warm-start-only", action="store_true",
                    help="measure only the warm start of an already trained --model-dir (merged into its JSON)")
    ap.add_argument("--json", default=None, help="default: outputs/bench/feedforward_<model dir>.json")
    args = ap.parse_args()
    out = OUT_DIR / "feedforward"
    out.mkdir(parents=True, exist_ok=True)
    cfg = StyleConfig(size=args.size).resolved()
    network = network_for(cfg)
    style = read_image(STYLE)
    flows = FlowCache(out / "flows")
    clip = VIDEOS / "realshort.mp4"
    report: dict = {"environment": environment(network), "args": vars(args)}

    # 1. per-video training
    motion = f"_m{args.synthetic_motion:g}" if args.synthetic_motion else ""  # not the baseline's model resumed
    model_dir = Path(args.model_dir) if args.model_dir else out / f"model_realshort_tw{args.temporal_weight:g}{motion}"
    if args.warm_start_only:
        json_path = Path(args.json or OUT_DIR / f"feedforward_{model_dir.name}.json")
        report = json.loads(json_path.read_text()) if json_path.is_file() else report
        model = load_model(model_dir)
        contents = clip_frames(clip, args.size, args.frames)
        report["warm_start"] = warm_start(contents[-1], style, cfg, network, model, model.mix(None))
        write_json(json_path, report)
        print(f"warm start: {report['warm_start']['network_init_iterations_to_reach']} of "
              f"{report['warm_start']['content_init_iterations']} iterations; wrote {json_path}")
        return
    tc = TrainConfig(size=args.crop, frame_size=args.size, steps=args.steps, batch_size=args.batch_size,
                     width=args.width, blocks=args.blocks, learning_rate=args.learning_rate,
                     temporal_weight=args.temporal_weight, synthetic_motion=args.synthetic_motion,
                     checkpoint_every=max(25, args.steps // 4), preview_every=max(25, args.steps // 4), log_every=5,
                     resume=model_dir.joinpath("checkpoints").is_dir())
    job = TrainJob([STYLE], [clip], model_dir, tc, cfg, kind="styles", progress=True)
    t0 = time.perf_counter()
    trained = train_network(job, network, [style], log=print)
    report["training"] = {"seconds": time.perf_counter() - t0, "images_per_second": trained["images_per_second"],
                          "compile_seconds": trained["compile_seconds"], "steps": args.steps,
                          "curve": [(r["step"], r["total"], r["content"], r["style"], r["temporal"])
                                    for r in trained["curve"]]}
    model = load_model(model_dir)
    cond = model.mix(None)

    # 2-3. speed, quality and stability against the lanes optimizer on the same frames
    contents = clip_frames(clip, args.size, args.frames)
    cached = out / f"optimizer_{args.size}_{args.frames}.npz"
    if cached.is_file():  # the optimizer's side does not depend on the network: an earlier run's frames
        with np.load(cached) as saved:
            opt_frames, opt_seconds = saved["frames"], float(saved["seconds"])
    else:
        opt_frames, opt_seconds = optimizer_clip(clip, out, cfg, network, args.frames)
        np.savez(cached, frames=opt_frames, seconds=opt_seconds)
    times = []
    for _ in range(args.rounds):
        t = time.perf_counter()
        net_frames = model.stylize(contents, cond, frames_per_device=args.frames)
        times.append(time.perf_counter() - t)
    net_seconds = median(times[1:] if len(times) > 1 else times)  # the first round compiles
    net_loss, opt_loss = losses(net_frames, contents, style, cfg, network), losses(opt_frames, contents, style, cfg,
                                                                                   network)
    content_loss = losses(contents, contents, style, cfg, network)
    report["realshort"] = {
        "frames": args.frames, "optimizer_seconds_per_frame": opt_seconds / args.frames,
        "network_seconds_per_frame": net_seconds / args.frames,
        "speedup": (opt_seconds / args.frames) / (net_seconds / args.frames),
        "network_loss_median": median(net_loss), "optimizer_loss_median": median(opt_loss),
        "content_image_loss_median": median(content_loss),
        "loss_ratio_network_over_optimizer": median(net_loss) / median(opt_loss),
        "e_stab_network": stability(net_frames, contents, flows), "e_stab_optimizer": stability(opt_frames, contents, flows),
        "e_stab_content": stability(contents, contents, flows)}  # (the unstyled clip's own: no memory, no style)
    carries = [float(c) for c in args.carries.split(",") if c]
    tag = model_dir.name
    report["realshort"]["carried"] = carry_report(net_frames, contents, style, cfg, network, flows, carries,
                                                  out / f"sheet_realshort_{tag}.png", opt_frames)
    write_image(out / f"sheet_realshort_{tag}.png", imaging.contact_sheet([contents[:4], net_frames[:4], opt_frames[:4]]))

    # 4. generalization: the realshort model on clips it never saw
    report["generalization"] = {}
    for name in ("carphone", "bigbuckbunny"):
        frames = clip_frames(VIDEOS / f"{name}.mp4", args.size, args.frames)
        styled = model.stylize(frames, cond, frames_per_device=args.frames)
        report["generalization"][name] = {"network_loss_median": median(losses(styled, frames, style, cfg, network)),
                                          "content_image_loss_median": median(losses(frames, frames, style, cfg, network)),
                                          "e_stab_network": stability(styled, frames, flows),
                                          "e_stab_content": stability(frames, frames, flows),
                                          "carried": carry_report(styled, frames, style, cfg, network, flows, carries)}
        write_image(out / f"sheet_{name}_{tag}.png", imaging.contact_sheet([frames[:4], styled[:4]]))

    # 5. warm start on a held-out-like frame (the last of the compared frames)
    if not args.no_warm_start:
        report["warm_start"] = warm_start(contents[-1], style, dataclasses.replace(cfg), network, model, cond)
    path = write_json(args.json or OUT_DIR / f"feedforward_{tag}.json", report)
    r = report["realshort"]
    rate = report["training"]["images_per_second"]  # (None: no step timed, as for a model already trained)
    print(f"training: {report['training']['seconds']:.0f} s for {args.steps} steps "
          f"({'-' if rate is None else f'{rate:.2f}'} images/s)")
    print(f"speed: network {r['network_seconds_per_frame'] * 1e3:.1f} ms/frame vs optimizer "
          f"{r['optimizer_seconds_per_frame']:.1f} s/frame = {r['speedup']:.0f}x")
    print(f"quality: loss network/optimizer {r['loss_ratio_network_over_optimizer']:.2f} "
          f"(content image {r['content_image_loss_median'] / r['optimizer_loss_median']:.2f}); "
          f"e_stab network {r['e_stab_network']:.4f} vs optimizer {r['e_stab_optimizer']:.4f} "
          f"(the unstyled frames' {r['e_stab_content']:.4f})")
    for carry, c in r["carried"].items():
        print(f"carried {carry}: loss network/optimizer {c['loss_median'] / r['optimizer_loss_median']:.2f}, "
              f"e_stab {c['e_stab']:.4f} ({c['carry_seconds_per_frame'] * 1e3:.1f} ms/frame for the flow and blend)")
    for name, g in report["generalization"].items():
        print(f"unseen {name}: loss {g['network_loss_median']:.3g} (content image {g['content_image_loss_median']:.3g}), "
              f"e_stab {g['e_stab_network']:.4f} (unstyled {g['e_stab_content']:.4f}); carried " + ", ".join(
                  f"{carry}: loss {c['loss_median']:.3g}, e_stab {c['e_stab']:.4f}" for carry, c in g["carried"].items()))
    if "warm_start" in report:
        w = report["warm_start"]
        print(f"warm start: reached the content init's loss {w['content_init_final_loss']:.4g} after "
              f"{w['network_init_iterations_to_reach']} of {w['content_init_iterations']} iterations "
              f"(fraction {w['fraction']}); final {w['network_init_final_loss']:.4g}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
