"""Video benchmarks: temporal stability, lane joins, warped-init speed-up, batching and memory.

    python benchmarks/bench_video.py --size 128 --json outputs/bench/video.json

Parts (``--parts``):
  stability  e_stab of the lane schedule (--frames-per-device lanes) vs per-frame independent
             stylization and vs --sequential, on each clip of --clips (default: the three real clips
             in ../shared/media/video and two made from a photo: a camera pan and a fast object,
             --made-frames long), the first --seconds of each (0: whole); the largest pair error
             over the median pair (joins).
  divergence how far apart two stylizations of neighbouring frames from the content are (frames 10
             and 11 of --clips' first clip, each alone, after 40, 200 and 600 iterations): the jump a
             lane join must hide when lanes start afresh.
  warm       iterations a warped-init frame needs to reach the first frame's final loss.
  batch      frames/s with --frames-per-device 8 vs 1 on one CPU device (interleaved rounds, median).
  memory     peak RSS for 100 vs 400 frames at 64 px (a generated clip, a few iterations per frame).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxstyle  # noqa: E402
from jaxstyle import imaging  # noqa: E402
from jaxstyle.imaging import target_size  # noqa: E402
from jaxstyle.io import video as video_io  # noqa: E402
from jaxstyle.io.ffmpeg import ffmpeg_exe  # noqa: E402
from jaxstyle.io.images import read_image  # noqa: E402
from jaxstyle.objective import Temporal  # noqa: E402
from jaxstyle.video import flow as flowlib  # noqa: E402

from common import write_json  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
CLIP = MEDIA / "video" / "realshort.mp4"
STYLE = MEDIA / "styles" / "starry_night.jpg"
PHOTO = MEDIA / "content" / "tubingen.jpg"
REAL_CLIPS = ("realshort", "carphone", "bigbuckbunny")
MADE_CLIPS = ("pan", "fast")


def cli(args: list[str], env=None) -> tuple[float, int]:
    """Run the CLI in a subprocess; returns (wall seconds, peak RSS in KiB of the child)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *args, "--quiet"], cwd=ROOT,
                                env=env or os.environ, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(err.read().decode())
    return wall, usage.ru_maxrss


def run_video(out_dir: Path, clip: Path, name: str, extra: list[str], size: int) -> dict:
    out = out_dir / f"{name}.mp4"
    metrics = out_dir / f"{name}.json"
    wall, _ = cli([str(clip), "--style", str(STYLE), "-o", str(out), "--size", str(size), "--metrics-json",
                   str(metrics), *extra])
    data = json.loads(metrics.read_text())
    data["bench_wall_seconds"] = wall
    return data


def independent_stability(clip: Path, size: int, preset: str, seconds: float | None) -> dict:
    """Per-frame independent stylization (content init, no temporal term, full preset per frame)."""
    info = video_io.probe(clip)
    h, w = target_size(info.height, info.width, size)
    frames = np.stack(list(video_io.iter_frames(clip, info, size=(w, h), duration=seconds)))
    style = read_image(STYLE)
    cfg = jaxstyle.StyleConfig(preset=preset, frames_per_device=min(len(frames), 16))
    t0 = time.perf_counter()
    out = jaxstyle.stylize_frames(frames, [style], cfg).images
    wall = time.perf_counter() - t0
    out = np.stack([imaging.to_uint8(o) for o in out]).astype(np.float32) / 255.0
    cache = flowlib.FlowCache(Path(tempfile.mkdtemp()) / "flows")
    errs = []
    for t in range(1, len(frames)):
        fwd, bwd = cache.get(np.stack([frames[t - 1], frames[t]]))
        warped = flowlib.warp(jnp.asarray(out[t - 1]), jnp.asarray(bwd[0]))
        mask = flowlib.consistency_mask(jnp.asarray(fwd[0]), jnp.asarray(bwd[0]))
        errs.append(float(flowlib.temporal_loss(jnp.asarray(out[t]), warped, mask)))
    errs = np.asarray(errs)
    iters = cfg.resolved()
    n_iters = iters.iterations + iters.coarse_iterations * (len(iters.scales(h, w)) - 1)
    return {"stability_error": float(np.sqrt(errs.mean())), "pair_temporal_errors": errs.tolist(),
            "iterations_per_frame": n_iters, "wall_seconds": wall}


def made_clip(path: Path, kind: str, frames: int = 40, width: int = 320, height: int = 240, fps: int = 25) -> Path:
    """A clip made from a real photo (tubingen.jpg), so that its motion is known:

    pan   the camera pans right and a little down across the photo (4 px per frame at 320 px wide);
    fast  the camera holds still while a disc cut from another part of the photo crosses the frame
          and back, fast (12 px per frame at 320 px wide), occluding and uncovering what it passes.
    """
    photo = read_image(PHOTO)  # float [0, 1], (H, W, 3)
    ph, pw = photo.shape[:2]
    scale = max((width + 4 * frames) / pw, (height + frames) / ph)
    photo = imaging.resize(photo, round(ph * scale) + 1, round(pw * scale) + 1)
    yy, xx = np.mgrid[0:height, 0:width]
    radius = 0.18 * height
    with video_io.VideoWriter(path, width, height, fps) as writer:
        for t in range(frames):
            if kind == "pan":
                frame = photo[t:t + height, 4 * t:4 * t + width]
            elif kind == "fast":
                frame = photo[:height, :width].copy()
                span, travelled = 0.84 * width, 12 * t * width / 320
                leg = travelled % (2 * span)
                cx = 0.08 * width + (leg if leg <= span else 2 * span - leg)  # there and back
                cy = height * (0.35 + 0.3 * t / frames)
                disc = (xx - cx) ** 2 + (yy - cy) ** 2 < radius ** 2
                patch = photo[-height:, -width:]  # another part of the photo, moving with the disc
                shifted = np.roll(patch, (0, round(cx - width / 2)), axis=(0, 1))
                frame[disc] = shifted[disc]
            else:
                raise ValueError(kind)
            writer.write(np.clip(frame, 0, 1))
    return path


def clip_path(out_dir: Path, name: str, made_frames: int = 40) -> Path:
    if name in REAL_CLIPS:
        return MEDIA / "video" / f"{name}.mp4"
    path = out_dir / (f"made_{name}.mp4" if made_frames == 40 else f"made_{name}_{made_frames}.mp4")
    if not path.exists():
        made_clip(path, name, frames=made_frames)
    return path


def part_stability(out_dir: Path, clips: list[str], size: int, preset: str, fpd: int, seconds: float | None,
                   extra: list[str] = (), independent: bool = True, reuse_sequential: bool = False,
                   made_frames: int = 40) -> dict:
    """Lanes against --sequential (and against independent frames) on each clip; a summary over all."""
    results = {}
    for name in clips:
        clip = clip_path(out_dir, name, made_frames)
        common = ["--preset", preset, *(["--duration", str(seconds)] if seconds else [])]
        lanes = run_video(out_dir, clip, f"{name}_lanes", [*common, "--frames-per-device", str(fpd), *extra], size)
        cached = out_dir / f"{name}_sequential.json"
        seq = json.loads(cached.read_text()) if reuse_sequential and cached.is_file() else None
        if seq is not None and (seq["config"]["preset"] != preset or seq["frames"] != lanes["frames"]
                                or seq["work_size"] != lanes["work_size"]):
            seq = None  # another size, preset or segment: run it again
        if seq is None:  # (--sequential is one lane: nothing of the lanes' settings changes it)
            seq = run_video(out_dir, clip, f"{name}_sequential", [*common, "--sequential"], size)
        keys = ("stability_error", "max_pair_over_median", "iterations_per_frame", "frames_per_second",
                "pair_temporal_errors", "frames", "scene_cuts")
        res = {"clip": str(clip),
               "lanes": {k: lanes.get(k) for k in (*keys, "lanes")},
               "sequential": {k: seq.get(k) for k in keys}}
        res["lanes_over_sequential"] = lanes["stability_error"] / seq["stability_error"]
        line = (f"{name}: e_stab lanes {lanes['stability_error']:.4f} | sequential {seq['stability_error']:.4f} "
                f"-> lanes/sequential {res['lanes_over_sequential']:.3f} (target <= 1.15); max pair / median: "
                f"lanes {lanes['max_pair_over_median']:.2f}, sequential {seq['max_pair_over_median']:.2f} "
                f"(target <= 2); scene cuts {lanes.get('scene_cuts')}")
        if independent:
            indep = independent_stability(clip, size, preset, seconds)
            res["independent"] = indep
            res["lanes_over_independent"] = lanes["stability_error"] / indep["stability_error"]
            line += f"; lanes/independent {res['lanes_over_independent']:.3f} (target <= 0.35)"
        print(line, flush=True)
        results[name] = res
    ratios = [r["lanes_over_sequential"] for r in results.values()]
    pairs = [r["lanes"]["max_pair_over_median"] for r in results.values()]
    results["summary"] = {"lanes_over_sequential_max": max(ratios), "lanes_over_sequential_median":
                          statistics.median(ratios), "max_pair_over_median_max": max(pairs)}
    print(f"all clips: lanes/sequential median {statistics.median(ratios):.3f}, max {max(ratios):.3f}; "
          f"largest pair / median at most {max(pairs):.2f}")
    return results


def part_divergence(out_dir: Path, clip_name: str, size: int) -> dict:
    clip = clip_path(out_dir, clip_name)
    info = video_io.probe(clip)
    h, w = target_size(info.height, info.width, size)
    frames = np.stack(list(video_io.iter_frames(clip, info, size=(w, h), duration=float(12 / info.fps))))[10:12]
    style = read_image(STYLE)
    net = jaxstyle.load_network("vgg16")

    def rms(a, b) -> float:
        return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))

    res = {"clip": str(clip), "content_rms": rms(frames[0], frames[1]), "by_iterations": {}}
    for iterations in (40, 200, 600):
        cfg = jaxstyle.StyleConfig(preset="fast", iterations=iterations, start_size=0, frames_per_device=2)
        out = jaxstyle.stylize_frames(frames, [style], cfg, network=net).images
        res["by_iterations"][iterations] = rms(out[0], out[1])
        print(f"{clip_name} frames 10 and 11 stylized alone, {iterations} iterations: RMS difference "
              f"{rms(out[0], out[1]):.4f} (content {res['content_rms']:.4f})", flush=True)
    return res


def part_warm(size: int, iterations: int) -> dict:
    """Frame 0 from the content (single scale) vs frame 1 from frame 0's output warped."""
    info = video_io.probe(CLIP)
    h, w = target_size(info.height, info.width, size)
    frames = list(video_io.iter_frames(CLIP, info, size=(w, h), duration=float(3 / info.fps)))
    style = read_image(STYLE)
    cfg = jaxstyle.StyleConfig(start_size=0, iterations=iterations, chunk=5)
    net = jaxstyle.load_network(cfg.network)

    def trace_of(run_kwargs, frame):
        """Loss after each chunk, without the temporal term (comparable with frame 0's loss)."""
        trace = []
        tw = run_kwargs.get("tw", 0.0)

        def record(scale, it, losses, seconds):
            trace.append((it, float(losses["total"][0] - tw * losses["temporal"][0])))

        res = jaxstyle.stylize_frames(frame[None], [style], cfg, network=net, on_chunk=record,
                                      **run_kwargs.get("kw", {}))
        return res, trace

    first, trace0 = trace_of({}, frames[0])
    final0 = trace0[-1][1]
    out0 = imaging.to_uint8(first.images[0]).astype(np.float32) / 255.0
    fwd, bwd = flowlib.compute_flows(np.stack([frames[0], frames[1]]))
    warped = np.asarray(flowlib.warp(jnp.asarray(out0), jnp.asarray(bwd[0])))
    mask = np.asarray(flowlib.consistency_mask(jnp.asarray(fwd[0]), jnp.asarray(bwd[0])))
    res = {"first_frame_final_loss": final0, "first_frame_iterations": iterations, "trace_first": trace0}

    def first_reach(trace, level):
        return next((it for it, loss in trace if loss <= level), None)

    # frame 0 itself reaches 1% above its final loss after this many iterations
    res["first_frame_iterations_to_1pct"] = first_reach(trace0, final0 * 1.01)
    for label, tw in (("warped_init_only", 0.0), ("warped_init_with_temporal_loss", cfg.video.temporal_weight)):
        temporal = Temporal(warped[None], mask[None], tw)
        _, trace1 = trace_of({"tw": tw, "kw": {"init": warped[None], "temporal": temporal}}, frames[1])
        reach = first_reach(trace1, final0)
        reach1 = first_reach(trace1, final0 * 1.01)
        res[label] = {"temporal_weight": tw, "trace": trace1, "iterations_to_reach": reach,
                      "fraction": None if reach is None else reach / iterations,
                      "iterations_to_1pct": reach1, "fraction_1pct": None if reach1 is None else reach1 / iterations}
        print(f"warm start ({label}, temporal weight {tw:g}): frame 0 reaches {final0:.4f} in {iterations} iterations "
              f"(within 1% after {res['first_frame_iterations_to_1pct']}); the warped-init frame 1 (loss without its "
              f"temporal term) reaches it after {reach} and within 1% after {reach1} iterations (target <= 40%)")
    return res


def part_batch(out_dir: Path, size: int, rounds: int, frames: int, extra: list[str] = ()) -> dict:
    """--frames-per-device 8 vs 1 on one device. ``frames`` > 36 uses a generated clip of that length."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
    times = {1: [], 8: []}
    common = ["--preset", "fast", "--iterations", "10", "--coarse-iterations", "10", "--video-iterations", "10",
              *extra]
    clip = CLIP
    if frames > 36:
        clip = out_dir / f"batch_clip_{frames}.mp4"
        make_clip(clip, frames)
    else:
        common += ["--duration", str(frames / 30.02)]
    for r in range(rounds):
        for fpd in ((1, 8) if r % 2 == 0 else (8, 1)):
            out = out_dir / f"batch_{fpd}.mp4"
            metrics = out_dir / f"batch_{fpd}.json"
            cli([str(clip), "--style", str(STYLE), "-o", str(out), "--size", str(size),
                 "--frames-per-device", str(fpd), "--metrics-json", str(metrics), *common], env=env)
            data = json.loads(metrics.read_text())
            times[fpd].append(data["frames_per_second"])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"frames/s on one CPU device, {frames} frames at {size} px: --frames-per-device 8: {med[8]:.3f}, "
          f"1: {med[1]:.3f}, ratio {med[8] / med[1]:.2f} (target >= 1.0; medians of {rounds} interleaved rounds)")
    return {"frames": frames, "size": size, "frames_per_second": times, "median": med, "ratio_8_over_1": med[8] / med[1]}


def make_clip(path: Path, frames: int, size: tuple[int, int] = (64, 48)) -> None:

    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size={size[0]}x{size[1]}:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
                    "-frames:v", str(frames), "-t", str(frames / 25), "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", str(path)], check=True)


def part_memory(out_dir: Path) -> dict:
    res = {}
    common = ["--start-size", "0", "--iterations", "2", "--video-iterations", "2", "--chunk", "2",
              "--frames-per-device", "8", "--long-term", "1"]
    for n in (100, 400):  # small first: RUSAGE_CHILDREN keeps the maximum over children
        clip = out_dir / f"clip_{n}.mp4"
        make_clip(clip, n)
        wall, rss = cli([str(clip), "--style", str(STYLE), "-o", str(out_dir / f"mem_{n}.mp4"), *common])
        res[n] = {"wall_seconds": wall, "peak_rss_mib": rss / 1024}
        print(f"{n} frames at 64x48: peak RSS {rss / 1024:.0f} MiB, {wall:.1f} s")
    res["ratio_400_over_100"] = res[400]["peak_rss_mib"] / res[100]["peak_rss_mib"]
    print(f"peak memory 400 vs 100 frames: {res['ratio_400_over_100']:.3f}x")
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--frames-per-device", type=int, default=4)
    parser.add_argument("--warm-iterations", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-frames", type=int, default=16, help="clip length for the batch part (> 36: generated)")
    parser.add_argument("--batch-size", type=int, default=128, help="working size for the batch part")
    parser.add_argument("--parts", default="stability,warm,batch,memory")
    parser.add_argument("--clips", default=",".join(REAL_CLIPS + MADE_CLIPS),
                        help=f"clips for the stability part: of {', '.join(REAL_CLIPS + MADE_CLIPS)}")
    parser.add_argument("--seconds", type=float, default=1.6,
                        help="the first this many seconds of each clip (0: all of it) for the stability part")
    parser.add_argument("--made-frames", type=int, default=40,
                        help="length of the made clips (pan, fast) in frames, at 25 fps")
    parser.add_argument("--reuse-sequential", action="store_true",
                        help="reuse the --sequential runs of an earlier call (their metrics in the output folder) "
                             "when the preset, frames and working size are the same")
    parser.add_argument("--no-independent", action="store_true",
                        help="skip the per-frame independent baseline in the stability part")
    parser.add_argument("--extra", default="", help="extra CLI flags for the lane runs, e.g. '--overlap 4'")
    parser.add_argument("--json", default=str(ROOT / "outputs" / "bench" / "video.json"))
    args = parser.parse_args()
    clips = [c for c in args.clips.split(",") if c]
    unknown = sorted(set(clips) - set(REAL_CLIPS + MADE_CLIPS))
    if unknown or not clips:
        parser.error(f"--clips: unknown {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(REAL_CLIPS + MADE_CLIPS)}")
    if args.seconds < 0:
        parser.error("--seconds must be >= 0")
    if args.made_frames < 8:
        parser.error("--made-frames must be at least 8")
    out_dir = Path(args.json).resolve().parent / "video"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"args": vars(args)}
    parts = args.parts.split(",")
    if "stability" in parts:
        results["stability"] = part_stability(out_dir, clips, args.size, args.preset, args.frames_per_device,
                                              args.seconds or None, args.extra.split(), not args.no_independent,
                                              args.reuse_sequential, args.made_frames)
    if "divergence" in parts:
        results["divergence"] = part_divergence(out_dir, clips[0], args.size)
    if "warm" in parts:
        results["warm"] = part_warm(args.size, args.warm_iterations)
    if "batch" in parts:
        results["batch"] = part_batch(out_dir, args.batch_size, args.rounds, args.batch_frames, args.extra.split())
    if "memory" in parts:
        results["memory"] = part_memory(out_dir)
    write_json(args.json, results)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
