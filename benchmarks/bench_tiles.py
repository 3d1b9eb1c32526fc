"""Large-frame benchmarks: tiled vs untiled losses, a 4K frame's memory and time, seams, photorealism.

    python benchmarks/bench_tiles.py --parts quality,4k,seams,photoreal --json outputs/bench/tiles.json

Parts (``--parts``):
  quality    512 px (tubingen + starry night, fast preset): untiled vs tiled (--tile-size 256: 6 tiles,
             with each tile target mode; --tile-size 384: 2 tiles, and the whole frame is also
             stylized at 384 px first); whole-image style and content losses and their ratios.
  4k         a 3840x2160 frame (tubingen cropped to 16:9 and upscaled) through the CLI in a child
             process: wall time and the child's peak RSS; output in outputs/bench/tiles_4k.png.
  seams      the seam measure of the 4K tiled output vs an untiled output of the same content at
             --untiled-size (the largest size that fits untiled on this machine).
  same_size  the 4K content at --untiled-size, tiled (--tile-mode, --tile-iterations = --untiled-iterations)
             and untiled with the same schedule: seam measure of both and their difference.
  intermediate  the 4K content at --study-size in --study-tile tiles, untiled vs tiled with each of
             --study-coarse iterations at the tiled scales below the last: seam measure, sharpness, time.
  more_final the 4K output (--more-from) continued with --more-iterations at its final scale: the seam
             measure again (also at --untiled-size); --more-out names its output, to chain runs.
  photoreal  matting energy of outputs with --photoreal LAMBDA vs 0, and a crop of straight edges.

Seam measure: per column, the mean over rows of |horizontal gradient| (and per row, the mean over
columns of |vertical gradient|); each profile is divided by its running median (window 31); the
largest value of either is the spike. A seam that tiling leaves shows up as a spike at its column.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jaxstyle  # noqa: E402
from jaxstyle import imaging, schedules  # noqa: E402
from jaxstyle.api import image_losses  # noqa: E402
from jaxstyle.config import StyleConfig, TileConfig  # noqa: E402
from jaxstyle.imaging import scaled_size  # noqa: E402
from jaxstyle.io.images import read_image, write_image  # noqa: E402
from jaxstyle.nets.vgg import halo_px  # noqa: E402
from jaxstyle.objective import matting, windowed  # noqa: E402
from jaxstyle.schedules import tile_geometry  # noqa: E402
from jaxstyle.schedules.multiscale import ScaleOverrides, run_scales  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
CONTENT = MEDIA / "content" / "tubingen.jpg"
STYLE = MEDIA / "styles" / "starry_night.jpg"
OUT = ROOT / "outputs" / "bench"


def cli(args: list[str]) -> tuple[float, int, str]:
    """Run the CLI in a child process: (wall seconds, the child's peak RSS in KiB, stderr tail)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *args, "--quiet"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        err.seek(0)
        text = err.read().decode(errors="replace")
    if status != 0:
        raise SystemExit(f"cli failed ({status}): {text[-2000:]}")
    return time.perf_counter() - t0, usage.ru_maxrss, text[-500:]


def make_4k(path: Path) -> None:
    """The 4K test frame: tubingen cropped to 16:9 and upscaled to 3840x2160."""
    img = read_image(CONTENT)
    h, w = img.shape[:2]
    crop_h = int(round(w * 9 / 16))
    top = (h - crop_h) // 2
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, imaging.resize(img[top:top + crop_h], 2160, 3840))


def _ratios(image: np.ndarray, window: int = 31) -> tuple[np.ndarray, np.ndarray]:
    """Per column / per row: mean gradient magnitude over its running median (the seam profiles)."""
    gray = np.asarray(image, np.float64).mean(-1)
    cols = np.abs(np.diff(gray, axis=1)).mean(0)
    rows = np.abs(np.diff(gray, axis=0)).mean(1)

    def ratio(profile):
        pad = window // 2
        padded = np.pad(profile, pad, mode="reflect")
        med = np.array([np.median(padded[i:i + window]) for i in range(len(profile))])
        return profile / np.maximum(med, 1e-9)

    return ratio(cols), ratio(rows)


def seam_spike(image: np.ndarray, window: int = 31) -> dict[str, float]:
    """Largest column / row spike of mean gradient magnitude relative to a running median."""
    c, r = _ratios(image, window)
    return {"spike": float(max(c.max(), r.max())), "column_spike": float(c.max()), "column": int(c.argmax()),
            "row_spike": float(r.max()), "row": int(r.argmax())}


def tile_edges(height: int, width: int, tile_size: int, overlap: int, rounds: int,
               mode: str = "independent") -> tuple[list[int], list[int]]:
    """Rows and columns (in a height x width output) where a tile edge lay in some tiled round
    (coupled tiles: where a window's block ended, VGG16's default layers)."""
    cfg = StyleConfig(preset="fast", tiles=TileConfig(size=tile_size, overlap=overlap, rounds=rounds)).resolved()
    rows, cols = set(), set()
    if mode == "coupled":
        halo = halo_px("vgg16", cfg.style_layers + cfg.content_layers)
        for h, w in schedules.tiled_scales(cfg, height, width)[1]:
            for (wh, ww), wins in windowed.plan(h, w, tile_size, halo):
                for ys, xs, r0, r1, c0, c1 in wins:
                    rows |= {int(round(v * height / h)) for v in (ys + r0, ys + r1) if 0 < v < h}
                    cols |= {int(round(v * width / w)) for v in (xs + c0, xs + c1) if 0 < v < w}
        return sorted(rows), sorted(cols)
    for h, w in schedules.tiled_scales(cfg, height, width)[1]:
        th, tw = tile_geometry.tile_shape(h, w, tile_size)
        for r in range(rounds):
            phase = 0.0 if rounds == 1 else 0.8 * (2.0 * r / (rounds - 1) - 1.0)
            for m in tile_geometry.plan_tiles_minimal(h, w, tile_size, overlap, phase=phase):
                y, x = float(m[1, 2]), float(m[0, 2])
                rows |= {int(round(v * height / h)) for v in (y, y + th) if 0 < v < h}
                cols |= {int(round(v * width / w)) for v in (x, x + tw) if 0 < v < w}
    return sorted(rows), sorted(cols)


def seam_zones(image: np.ndarray, rows: list[int], cols: list[int], reach: int = 4, border: int = 32) -> dict:
    """Largest profile ratio within ``reach`` px of the given tile edges, elsewhere in the interior,
    and within ``border`` px of the image's edges (where zero padding leaves its own artifacts)."""
    c, r = _ratios(image)
    out = {}
    for name, ratio, edges in (("columns", c, cols), ("rows", r, rows)):
        near = np.zeros(len(ratio), bool)
        for e in edges:
            near[max(0, e - 1 - reach):e + reach] = True
        edge = np.zeros(len(ratio), bool)
        edge[:border] = edge[-border:] = True
        out[name] = {"at_tile_edges": float(ratio[near & ~edge].max()) if (near & ~edge).any() else None,
                     "elsewhere_inside": float(ratio[~near & ~edge].max()), "image_border": float(ratio[edge].max())}
    return out


def part_quality(args) -> dict:

    net = jaxstyle.load_network(args.network)
    content = imaging.resize(read_image(CONTENT), 384, 512)
    style = read_image(STYLE)
    base = dict(preset="fast", iterations=args.iterations, coarse_iterations=args.iterations)
    tiles = dict(iterations=args.iterations, overlap=32, rounds=2)
    runs = {"untiled": dict(size=0), "coupled": dict(size=256, mode="coupled"),
            "tiled_offset": dict(size=256, mode="independent", targets="offset"),
            "tiled_global": dict(size=256, mode="independent", targets="global"),
            "tiled_offset_384": dict(size=384, mode="independent", targets="offset")}
    out = {}
    for name, kw in runs.items():
        if name not in args.modes.split(","):
            continue
        cfg = StyleConfig(**base, tiles=TileConfig(**tiles, **kw))
        t0 = time.perf_counter()
        result = jaxstyle.stylize_frames(content[None], [style], cfg, network=net)
        losses = image_losses(result.images[0], content, [style], cfg, network=net)
        out[name] = {"seconds": time.perf_counter() - t0, **losses}
        write_image(OUT / f"tiles_512_{name}.png", result.images[0])
        print(f"{name:14s} style {losses['style']:.4f} content {losses['content']:.4f} "
              f"({out[name]['seconds']:.0f} s)", flush=True)
    if "untiled" not in out and args.untiled_json:  # the untiled run of an earlier invocation
        out["untiled"] = json.loads(Path(args.untiled_json).read_text())["quality"]["untiled"]
    for name in [m for m in runs if m != "untiled" and m in out]:
        for term in ("style", "content"):
            out[name][f"{term}_ratio"] = out[name][term] / out["untiled"][term]
        print(f"{name}: style x{out[name]['style_ratio']:.3f}, content x{out[name]['content_ratio']:.3f} of untiled")
    return out


def part_4k(args) -> dict:
    src = OUT / "content_3840x2160.png"
    if not src.exists():
        make_4k(src)
    out = OUT / "tiles_4k.png"
    metrics = OUT / "tiles_4k.json"
    seconds, rss, _ = cli([str(src), "--style", str(STYLE), "-o", str(out), "--preset", "fast",
                           "--tile-size", str(args.tile_size), "--tile-iterations", str(args.tile_iterations),
                           "--tile-mode", args.tile_mode,
                           *([] if args.tile_coarse_iterations is None else
                             ["--tile-coarse-iterations", str(args.tile_coarse_iterations)]),
                           "--network", args.network, "--metrics-json", str(metrics)])
    m = json.loads(metrics.read_text())
    res = {"seconds": seconds, "peak_rss_gib": rss / 2**20, "tile_size": args.tile_size, "tile_mode": args.tile_mode,
           "tile_iterations": args.tile_iterations, "tile_coarse_iterations": (m.get("config") or {}).get("tiles", {}).get("coarse_iterations"),
           "tiled": m.get("tiled"), "compile_seconds": m.get("compile_seconds")}
    print(f"4k tiled ({args.tile_mode}): {seconds:.0f} s, peak RSS {rss / 2**20:.2f} GiB", flush=True)
    return res


def part_seams(args) -> dict:

    tiled = OUT / "tiles_4k.png"
    if not tiled.exists():
        raise SystemExit("run the 4k part first")
    src = OUT / "content_3840x2160.png"
    untiled = OUT / f"untiled_{args.untiled_size}_{args.untiled_iterations}.png"
    seconds = rss = None
    if not (args.reuse_untiled and untiled.exists()):  # the untiled output does not depend on tiling
        seconds, rss, _ = cli([str(src), "--style", str(STYLE), "-o", str(untiled), "--preset", "fast",
                               "--size", str(args.untiled_size), "--tile-size", "0", "--network", args.network,
                               "--iterations", str(args.untiled_iterations)])
    tiled_img, untiled_img = read_image(tiled), read_image(untiled)
    a, b = seam_spike(tiled_img), seam_spike(untiled_img)
    rows, cols = tile_edges(*tiled_img.shape[:2], args.tile_size, 64, 2, args.tile_mode)
    scale = untiled_img.shape[1] / tiled_img.shape[1]
    a["zones"] = seam_zones(tiled_img, rows, cols)
    # the same picture at the untiled output's size (the measure is per pixel: at 4K a brush stroke
    # spans twice the pixels); a supplementary view, the target compares the outputs as they are
    a["at_untiled_size"] = seam_spike(imaging.resize(tiled_img[None], *untiled_img.shape[:2])[0])
    b["zones_at_the_same_places"] = seam_zones(untiled_img, [round(v * scale) for v in rows], [round(v * scale) for v in cols])
    print(f"tiled 4K profile ratios: {a['zones']}\nuntiled at the same places: {b['zones_at_the_same_places']}")
    run = "reused" if seconds is None else f"{seconds:.0f} s, {rss / 2**20:.2f} GiB"
    print(f"seam spike: tiled 4K {a['spike']:.3f} vs untiled {args.untiled_size} px {b['spike']:.3f} (untiled run {run}); "
          f"the tiled output resized to {args.untiled_size} px: {a['at_untiled_size']['spike']:.3f}")
    return {"tiled_4k": a, "untiled": {**b, "size": args.untiled_size, "iterations": args.untiled_iterations,
                                       "seconds": seconds, "peak_rss_gib": None if rss is None else rss / 2**20,
                                       "file": untiled.name}}


def part_same_size(args) -> dict:
    """The 4K content at --untiled-size, tiled (coupled windows of --tile-size, --tile-iterations at
    the tiled scale) and untiled (the same schedule: 40 iterations per coarse scale up to
    --tile-size, then --untiled-iterations): the seam measure of both, and how far apart they are."""
    src = OUT / "content_3840x2160.png"
    if not src.exists():
        make_4k(src)
    untiled = OUT / f"untiled_{args.untiled_size}_{args.untiled_iterations}.png"
    run = {}
    if not (args.reuse_untiled and untiled.exists()):
        run["untiled"] = cli([str(src), "--style", str(STYLE), "-o", str(untiled), "--preset", "fast",
                              "--size", str(args.untiled_size), "--tile-size", "0", "--network", args.network,
                              "--iterations", str(args.untiled_iterations)])[:2]
    tiled = OUT / f"tiled_{args.tile_mode}_{args.untiled_size}_{args.untiled_iterations}.png"
    run["tiled"] = cli([str(src), "--style", str(STYLE), "-o", str(tiled), "--preset", "fast",
                        "--size", str(args.untiled_size), "--tile-size", str(args.tile_size),
                        "--tile-mode", args.tile_mode, "--tile-iterations", str(args.untiled_iterations),
                        "--network", args.network])[:2]
    a, b = read_image(tiled), read_image(untiled)
    rows, cols = tile_edges(*a.shape[:2], args.tile_size, 64, 2, args.tile_mode)
    out = {"size": args.untiled_size, "iterations": args.untiled_iterations, "tile_mode": args.tile_mode,
           "tiled": {**seam_spike(a), "zones": seam_zones(a, rows, cols)},
           "untiled": {**seam_spike(b), "zones": seam_zones(b, rows, cols)},
           "mean_abs_difference": float(np.abs(a - b).mean()), "max_abs_difference": float(np.abs(a - b).max()),
           "runs": {k: {"seconds": v[0], "peak_rss_gib": v[1] / 2**20} for k, v in run.items()}}
    print(f"{args.untiled_size} px, tiled ({args.tile_mode}) vs untiled: spike {out['tiled']['spike']:.3f} vs "
          f"{out['untiled']['spike']:.3f}; mean |difference| {out['mean_abs_difference']:.4f} "
          f"(max {out['max_abs_difference']:.3f}); {out['runs']}", flush=True)
    return out


def part_intermediate(args) -> dict:
    """The 4K content at --study-size with --study-tile tiles (coupled): untiled (the whole schedule,
    --tile-iterations at the last scale) vs tiled with each of --study-coarse iterations at the tiled
    scales below the last (--tile-iterations at the last): the seam measure, time, and a sheet of
    the outputs stacked (outputs/bench/intermediate_SIZE.png)."""
    src = OUT / "content_3840x2160.png"
    if not src.exists():
        make_4k(src)
    base = [str(src), "--style", str(STYLE), "--preset", "fast", "--size", str(args.study_size),
            "--network", args.network, "--tile-iterations", str(args.tile_iterations)]
    runs = {"untiled": ["--tile-size", "0", "--iterations", str(args.tile_iterations)]}
    for n in args.study_coarse.split(","):
        runs[f"tiled_{n}"] = ["--tile-size", str(args.study_tile), "--tile-coarse-iterations", n]
    out, images = {}, []
    for name, extra in runs.items():
        path = OUT / f"intermediate_{args.study_size}_{name}.png"
        seconds, rss, _ = cli([*base, "-o", str(path), *extra])
        img = read_image(path)
        images.append(img)
        out[name] = {**seam_spike(img), "seconds": seconds, "peak_rss_gib": rss / 2**20,
                     "mean_gradient": float(np.abs(np.diff(img.mean(-1), axis=1)).mean())}
        print(f"{name:12s} spike {out[name]['spike']:.3f} mean |gradient| {out[name]['mean_gradient']:.4f} "
              f"({seconds:.0f} s)", flush=True)
    write_image(OUT / f"intermediate_{args.study_size}.png", np.concatenate(images, 0))
    return {"size": args.study_size, "tile_size": args.study_tile, "tile_iterations": args.tile_iterations, **out}


def part_more_final(args) -> dict:
    """The 4K tiled output with --more-iterations more iterations at its final scale (the same
    coupled windows, continued from --more-from, default outputs/bench/tiles_4k.png, with a fresh
    L-BFGS history): does the seam measure follow the final scale's iteration count? Output
    --more-out (default tiles_4k_more.png); passing it back as --more-from chains runs."""
    src, tiled = OUT / "content_3840x2160.png", OUT / args.more_from
    if not tiled.exists():
        raise SystemExit(f"{tiled} is missing: run the 4k part first")
    if args.more_out == args.more_from:
        raise SystemExit("--more-out must differ from --more-from (the input is kept)")
    net = jaxstyle.load_network(args.network)
    cfg = StyleConfig(preset="fast", start_size=0, tiles=TileConfig(size=0), iterations=args.more_iterations,
                      network=args.network).resolved()
    halo = halo_px(net.arch, tuple(cfg.content_layers) + tuple(cfg.style_layers))
    t0 = time.perf_counter()
    frames = schedules.prepare(read_image(src)[None], [read_image(STYLE)], cfg, init=read_image(tiled)[None])
    res = run_scales(frames, cfg, net, overrides=ScaleOverrides(windows=(args.tile_size, halo)))
    seconds = time.perf_counter() - t0
    small = scaled_size(*res.images[0].shape[:2], args.untiled_size)
    write_image(OUT / args.more_out, res.images[0])
    out = {"iterations": args.more_iterations, "from": args.more_from, "output": args.more_out, "seconds": seconds,
           **seam_spike(res.images[0]),
           "at_untiled_size": seam_spike(imaging.resize(res.images[0][None], *small)[0])}
    print(f"4K + {args.more_iterations} final iterations: spike {out['spike']:.3f} ({seconds:.0f} s)", flush=True)
    return out


def part_photoreal(args) -> dict:

    net = jaxstyle.load_network(args.network)
    content = imaging.resize(read_image(CONTENT), 192, 256)
    style = read_image(STYLE)
    out = {}
    images = {}
    for lam in (0.0, args.photoreal):
        cfg = StyleConfig(preset="fast", iterations=args.iterations, coarse_iterations=args.iterations, photoreal=lam)
        img = jaxstyle.stylize_frames(content[None], [style], cfg, network=net).images[0]
        energy = float(matting.matting_energy(content, img)) / content[..., 0].size
        out[str(lam)] = {"matting_energy_per_pixel": energy}
        images[lam] = img
        write_image(OUT / f"photoreal_{lam:g}.png", img)
        print(f"photoreal {lam:g}: matting energy per pixel {energy:.5f}", flush=True)
    # a crop with straight edges (the houses' walls and windows), enlarged 3x, content | 0 | LAMBDA
    crop = (slice(60, 124), slice(120, 200))
    sheet = np.concatenate([content[crop], images[0.0][crop], images[args.photoreal][crop]], axis=1)
    sheet = np.repeat(np.repeat(sheet, 3, 0), 3, 1)
    write_image(OUT / "photoreal_crop.png", sheet)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="quality,4k,seams,photoreal")
    parser.add_argument("--network", default="vgg16")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--tile-size", type=int, default=1024)
    parser.add_argument("--tile-iterations", type=int, default=4)
    parser.add_argument("--tile-coarse-iterations", type=int, help="4k: iterations at the tiled scales below the last (default: the CLI's)")
    parser.add_argument("--tile-mode", default="coupled", choices=("coupled", "independent"))
    parser.add_argument("--untiled-size", type=int, default=1920)
    parser.add_argument("--untiled-iterations", type=int, default=40, help="final-scale iterations of the untiled seams run")
    parser.add_argument("--reuse-untiled", action="store_true",
                        help="seams: reuse outputs/bench/untiled_SIZE_ITERATIONS.png from an earlier run")
    parser.add_argument("--modes", default="untiled,tiled_offset,tiled_global,tiled_offset_384", help="quality: runs to do")
    parser.add_argument("--untiled-json", help="quality: take the untiled result from this earlier JSON")
    parser.add_argument("--photoreal", type=float, default=1000.0)
    parser.add_argument("--more-iterations", type=int, default=6, help="more_final: iterations added at 4K")
    parser.add_argument("--more-from", default="tiles_4k.png", help="more_final: the 4K output to continue (in outputs/bench)")
    parser.add_argument("--more-out", default="tiles_4k_more.png", help="more_final: its output (in outputs/bench)")
    parser.add_argument("--study-size", type=int, default=960, help="intermediate: output size")
    parser.add_argument("--study-tile", type=int, default=256, help="intermediate: tile size")
    parser.add_argument("--study-coarse", default="4,16,40", help="intermediate: --tile-coarse-iterations values")
    parser.add_argument("--json", default=str(OUT / "tiles.json"))
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    path = Path(args.json)
    results = json.loads(path.read_text()) if path.exists() else {}
    for part in args.parts.split(","):
        results[part] = {"quality": part_quality, "4k": part_4k, "seams": part_seams, "same_size": part_same_size,
                         "intermediate": part_intermediate, "more_final": part_more_final, "photoreal": part_photoreal}[part](args)
        path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
