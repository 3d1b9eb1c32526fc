#!/usr/bin/env python3
"""Golden runs: record what the CLI makes on a fixed set of small jobs, and compare two records.

Used around refactorings that must not change behaviour (issue 13): record before the change,
record after, compare. Every run goes through ``python cli.py`` in a subprocess, so the record does
not depend on the package's internal layout.

    python tools/golden.py record outputs/golden/before
    python tools/golden.py record outputs/golden/after
    python tools/golden.py compare outputs/golden/before outputs/golden/after

Each run leaves its outputs (PNG, the frames of a video, a wav) and its metrics JSON in its own
folder. ``compare`` prints, per run, the largest pixel difference (8-bit levels) of every output,
the largest relative difference of every numeric metric (timings left out), and the metric keys
present on one side only. Exit status 1 when an output differs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
CONTENT = MEDIA / "content" / "tubingen.jpg"
STARRY = MEDIA / "styles" / "starry_night.jpg"
SCREAM = MEDIA / "styles" / "the_scream.jpg"
CLIP = MEDIA / "video" / "realshort.mp4"
SPEECH = MEDIA / "audio" / "speech.wav"
GUITAR = MEDIA / "audio" / "guitar_arpeggio.wav"

SMALL = ["--size", "96", "--preset", "fast", "--iterations", "8", "--coarse-iterations", "8", "--chunk", "4",
         "--network", "vgg16", "--quiet"]
TILED = ["--size", "288", "--preset", "fast", "--coarse-iterations", "4", "--tile-size", "160",
         "--tile-iterations", "3", "--tile-coarse-iterations", "3", "--chunk", "3", "--network", "vgg16", "--quiet"]
VIDEO = ["--size", "64", "--preset", "fast", "--iterations", "4", "--coarse-iterations", "4",
         "--video-iterations", "3", "--frames-per-device", "2", "--overlap", "2", "--chunk", "2",
         "--network", "vgg16", "--quiet"]
AUDIO = ["--audio-iterations", "8", "--audio-griffin-lim-iters", "8", "--audio-chunk-seconds", "4", "--quiet"]


def masks(folder: Path) -> tuple[Path, Path]:
    """A content mask (left / right halves, 1024x768 like the content) and a style mask for the
    starry night (top / bottom, 1024x640); red and blue regions."""
    import imageio.v3 as iio

    content = np.zeros((768, 1024, 3), np.uint8)
    content[:, :512] = (255, 0, 0)
    content[:, 512:] = (0, 0, 255)
    style = np.zeros((640, 1024, 3), np.uint8)
    style[:320] = (255, 0, 0)
    style[320:] = (0, 0, 255)
    iio.imwrite(folder / "content_mask.png", content)
    iio.imwrite(folder / "style_mask.png", style)
    return folder / "content_mask.png", folder / "style_mask.png"


def runs(folder: Path) -> dict[str, list[str]]:
    content_mask, style_mask = masks(folder)
    return {
        "image": [CONTENT, "--style", STARRY, *SMALL],
        "blend_luminance": [CONTENT, "--style", STARRY, "--style", SCREAM, "--style-weights", "0.7,0.3",
                            "--preserve-colors", "luminance", *SMALL],
        "histogram_adam": [CONTENT, "--style", SCREAM, "--preserve-colors", "histogram", "--optimizer", "adam",
                           *SMALL],
        "masked": [CONTENT, "--style", STARRY, "--content-mask", content_mask, "--style-mask", style_mask, *SMALL],
        "photoreal": [CONTENT, "--style", STARRY, "--photoreal", "1000", *SMALL],
        "coupled": [CONTENT, "--style", STARRY, "--tile-mode", "coupled", *TILED],
        "independent": [CONTENT, "--style", STARRY, "--tile-mode", "independent", "--tile-overlap", "32",
                        "--tile-rounds", "2", *TILED],
        "video": [CLIP, "--style", STARRY, "--passes", "2", *VIDEO],
        "resumed": [CLIP, "--style", STARRY, *VIDEO],
        "audio": [SPEECH, "--style-audio", GUITAR, *AUDIO],
    }


def outputs_of(name: str, run_dir: Path) -> list[str]:
    if name in ("video", "resumed"):
        return [str(run_dir / "out.mp4"), "--frames-dir", str(run_dir / "frames")]
    return [str(run_dir / ("out.wav" if name == "audio" else "out.png"))]


def cli(args: list, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *map(str, args)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def record(folder: Path, only: list[str] | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # two fake CPU devices: the video runs shard their lanes (2 per device, 4 lanes)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    env.setdefault("JAX_PLATFORMS", "cpu")
    for name, args in runs(folder).items():
        if only and name not in only:
            continue
        run_dir = folder / name
        run_dir.mkdir(exist_ok=True)
        argv = [*args, "-o", *outputs_of(name, run_dir), "--metrics-json", run_dir / "metrics.json"]
        t0 = time.time()
        if name == "resumed":
            # kill the first attempt once its lanes have checkpointed a few steps, then resume
            proc = cli(argv, env)
            ckpt = run_dir / ".out.mp4.jaxstyle-work" / "ckpt"
            while proc.poll() is None and not (ckpt / "3").is_dir():
                time.sleep(0.2)
            killed = proc.poll() is None
            if killed:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
            (run_dir / "killed.txt").write_text(f"killed after checkpoint 3: {killed}\n")
            argv = [*argv, "--resume"]
        proc = cli(argv, env)
        log, _ = proc.communicate()
        (run_dir / "log.txt").write_text(log)
        print(f"{name}: exit {proc.returncode} in {time.time() - t0:.0f} s", flush=True)
        if proc.returncode != 0:
            print(log)


# ----------------------------------------------------------------------------------------------
# comparison

TIMING = ("seconds", "wall", "per_second", "compile", "peak_rss", "lane_seconds", "frames_per_s")


def images_of(run_dir: Path) -> dict[str, np.ndarray]:
    import imageio.v3 as iio

    out = {}
    for path in sorted(run_dir.rglob("*.png")):
        out[str(path.relative_to(run_dir))] = np.asarray(iio.imread(path)).astype(np.int32)
    wav = run_dir / "out.wav"
    if wav.is_file():
        out["out.wav"] = _wav(wav).astype(np.int32)
    return out


def _wav(path: Path) -> np.ndarray:
    import wave

    with wave.open(str(path)) as handle:
        return np.frombuffer(handle.readframes(handle.getnframes()), "<i2")


def leaves(tree, prefix: str = ""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from leaves(v, f"{prefix}[{i}]")
    else:
        yield prefix, tree


def compare(a: Path, b: Path) -> int:
    status = 0
    for run_a in sorted(p for p in a.iterdir() if p.is_dir()):
        run_b = b / run_a.name
        if not run_b.is_dir():
            print(f"{run_a.name}: missing in {b}")
            status = 1
            continue
        ia, ib = images_of(run_a), images_of(run_b)
        pixel = []
        for key in sorted(set(ia) | set(ib)):
            if key not in ia or key not in ib or ia[key].shape != ib[key].shape:
                pixel.append(f"{key}: only one side or shapes differ")
                status = 1
                continue
            d = int(np.max(np.abs(ia[key] - ib[key]))) if ia[key].size else 0
            if d:
                status = 1
                pixel.append(f"{key}: max |diff| {d}, mean {float(np.mean(np.abs(ia[key] - ib[key]))):.4f}")
        ma = json.loads((run_a / "metrics.json").read_text()) if (run_a / "metrics.json").is_file() else {}
        mb = json.loads((run_b / "metrics.json").read_text()) if (run_b / "metrics.json").is_file() else {}
        la = {k: v for k, v in leaves(ma) if not any(t in k for t in TIMING) and not k.startswith("config")}
        lb = {k: v for k, v in leaves(mb) if not any(t in k for t in TIMING) and not k.startswith("config")}
        worst, worst_key, changed = 0.0, "", []
        for key in sorted(set(la) & set(lb)):
            va, vb = la[key], lb[key]
            if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and not isinstance(va, bool):
                if va == vb or (isinstance(va, float) and isinstance(vb, float) and math.isnan(va) and math.isnan(vb)):
                    continue
                rel = abs(va - vb) / max(abs(va), abs(vb), 1e-30)
                if rel > worst:
                    worst, worst_key = rel, key
            elif va != vb and key not in ("output", "content", "styles", "style_audio"):
                changed.append(f"{key}: {va!r} -> {vb!r}")
        only_a = sorted(set(la) - set(lb))
        only_b = sorted(set(lb) - set(la))
        n_out = len(ia)
        print(f"== {run_a.name}: {n_out} output(s) {'identical' if not pixel else 'DIFFER'}; "
              f"metrics: largest relative difference {worst:.3g}{f' ({worst_key})' if worst_key else ''}")
        for line in pixel[:12]:
            print(f"   pixels {line}")
        for line in changed[:12]:
            print(f"   value {line}")
        if only_a:
            print(f"   metric keys only before: {', '.join(only_a[:12])}{' ...' if len(only_a) > 12 else ''}")
        if only_b:
            print(f"   metric keys only after: {', '.join(only_b[:12])}{' ...' if len(only_b) > 12 else ''}")
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("folder", type=Path)
    rec.add_argument("--only", nargs="*", help="record these runs only")
    cmp_ = sub.add_parser("compare")
    cmp_.add_argument("before", type=Path)
    cmp_.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.action == "record":
        record(args.folder, args.only)
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
