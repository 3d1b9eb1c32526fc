"""A batch job against a loop of single CLI calls, on the same items (issue 15).

The items: ``--contents`` images of mixed sizes and four aspect ratios (crops of the real photos in
``../shared/media/content``, written to ``outputs/bench/batch_inputs``) times ``--styles`` styles.
Each round runs, interleaved:

- **batch**: ``python cli.py batch --contents DIR --styles A,B --out-dir ... --redo`` over every item
  (start-up, checks, compiles and writes included);
- **loop**: ``python cli.py CONTENT --style STYLE -o OUT`` for ``--loop-items`` of the items (every
  aspect ratio and style represented), one process each, as a shell loop would.

Both use the same flags (``--size``, ``--iterations``, one scale). Reported: items/s of each
(medians over the rounds), their ratio, and the compiles: the batch job's count of compiled
optimization problems against its bucket count (the loop compiles at least once per item).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jaxstyle import imaging  # noqa: E402
from jaxstyle.io.images import read_image  # noqa: E402

from common import environment, write_json  # noqa: E402  (benchmarks/ is on sys.path)

MEDIA = ROOT.parent / "shared" / "media"
ASPECTS = [(3, 4), (4, 3), (9, 16), (1, 1)]  # height : width
SCALES = [0.5, 0.7, 1.0]  # of the largest crop of that aspect, so sizes are mixed within a bucket


def make_contents(folder: Path, count: int) -> list[Path]:
    """``count`` crops of the real photos: aspect ratios and sizes cycle, photos alternate."""
    folder.mkdir(parents=True, exist_ok=True)
    photos = [read_image(p) for p in sorted((MEDIA / "content").glob("*.jpg"))]
    paths = []
    for i in range(count):
        photo = photos[i % len(photos)]
        ah, aw = ASPECTS[i % len(ASPECTS)]
        scale = SCALES[(i // len(ASPECTS)) % len(SCALES)]
        h, w = photo.shape[:2]
        side = min(h / ah, w / aw)
        ch, cw = int(side * ah), int(side * aw)
        y, x = (h - ch) * (i % 3) // 2, (w - cw) * (i % 5) // 4  # crops from different places
        crop = photo[y:y + ch, x:x + cw]
        out_h, out_w = max(32, int(ch * scale * 0.5)), max(32, int(cw * scale * 0.5))
        path = folder / f"c{i:03d}_{out_w}x{out_h}.png"
        iio.imwrite(path, imaging.to_uint8(imaging.resize(crop, out_h, out_w)))
        paths.append(path)
    return paths


def run(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return seconds, proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contents", type=int, default=64, help="content images [default: 64]")
    parser.add_argument("--styles", default="starry_night.jpg,the_scream.jpg", help="styles in ../shared/media/styles")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--loop-items", type=int, default=8, help="items the loop runs per round [default: 8]")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", default="outputs/bench/batch.json")
    args = parser.parse_args()

    work = ROOT / "outputs" / "bench"
    contents = make_contents(work / "batch_inputs", args.contents)
    styles = [MEDIA / "styles" / s for s in args.styles.split(",")]
    flags = ["--size", str(args.size), "--iterations", str(args.iterations), "--start-size", "0", "--quiet"]
    n_items = len(contents) * len(styles)
    # the loop's sample: consecutive contents cycle through the aspect ratios; styles alternate
    sample = [(contents[i % len(contents)], styles[i % len(styles)]) for i in range(args.loop_items)]
    python = sys.executable
    rounds = []
    for r in range(args.rounds):
        out = work / "batch_out"
        batch_s, err = run([python, "cli.py", "batch", "--contents", str(work / "batch_inputs"),
                            "--styles", ",".join(map(str, styles)), "--out-dir", str(out), "--redo", *flags])
        summary = re.search(r"(\d+) compile\(s\), (\d+) bucket\(s\)", err)
        compiles, buckets = (int(summary.group(1)), int(summary.group(2))) if summary else (None, None)
        loop_s = 0.0
        (work / "batch_loop").mkdir(exist_ok=True)
        for j, (content, style) in enumerate(sample):
            seconds, _ = run([python, "cli.py", str(content), "--style", str(style),
                              "-o", str(work / "batch_loop" / f"{j}.png"), *flags])
            loop_s += seconds
        rounds.append({"batch_seconds": batch_s, "batch_items_per_s": n_items / batch_s, "compiles": compiles,
                       "buckets": buckets, "loop_seconds": loop_s, "loop_items": len(sample),
                       "loop_items_per_s": len(sample) / loop_s})
        print(f"round {r + 1}: batch {n_items} items in {batch_s:.1f} s ({n_items / batch_s:.2f} items/s, "
              f"{compiles} compiles, {buckets} buckets); loop {len(sample)} items in {loop_s:.1f} s "
              f"({len(sample) / loop_s:.2f} items/s)", flush=True)
    batch_rate = statistics.median(r["batch_items_per_s"] for r in rounds)
    loop_rate = statistics.median(r["loop_items_per_s"] for r in rounds)
    result = {"items": n_items, "contents": len(contents), "styles": [s.name for s in styles], "flags": flags,
              "rounds": rounds, "batch_items_per_s": batch_rate, "loop_items_per_s": loop_rate,
              "batch_over_loop": batch_rate / loop_rate, "environment": environment()}
    path = write_json(args.json, result)
    print(f"batch/loop items/s: {batch_rate:.2f} / {loop_rate:.2f} = {batch_rate / loop_rate:.2f}x "
          f"(median of {len(rounds)} rounds); compiles {rounds[-1]['compiles']} for {rounds[-1]['buckets']} buckets; "
          f"wrote {path}")


if __name__ == "__main__":
    main()
