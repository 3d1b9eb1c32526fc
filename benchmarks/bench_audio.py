"""Audio style transfer: quality of each feature variant, and time/memory of a long stereo file.

Quality (``--quality``, the default): ``../shared/media/audio/speech.wav`` styled by
``guitar_arpeggio.wav`` and by ``rain_texture.wav`` with each variant; for every run the style
Gram distance before/after (relative, the run's own features), the timbre ratio (Frechet distance
of MFCC 1..19 mean and covariance, output vs style, over content vs style) and the chroma
correlation with the content. Outputs are written to ``outputs/bench/audio/``.

Memory (``--long``): a 60 s stereo 44.1 kHz file is generated (speech and guitar tiled and
resampled by ffmpeg, panned differently per channel) and stylized by the CLI in a child process;
its peak RSS (``RUSAGE_CHILDREN``) and wall time are recorded.

    PYTHONPATH=. python benchmarks/bench_audio.py --variants ulyanov,multi,mel-multi,mel-stats
    PYTHONPATH=. python benchmarks/bench_audio.py --long
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jaxstyle.audio.metrics import audio_metrics  # noqa: E402
from jaxstyle.audio.network import VARIANTS  # noqa: E402
from jaxstyle.audio.stylize import stylize_audio  # noqa: E402
from jaxstyle.config import AudioConfig  # noqa: E402
from jaxstyle.io import audio as audio_io  # noqa: E402
from jaxstyle.io.ffmpeg import ffmpeg_exe  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media" / "audio"
OUT = ROOT / "outputs" / "bench"


def spectrogram_png(path: Path, panels: list[tuple[str, np.ndarray]], sr: int) -> None:
    """Log-mel spectrograms (dB, 80 dB range) stacked top to bottom, low frequencies at the bottom."""
    import librosa
    from PIL import Image, ImageDraw

    rows = []
    width = 0
    for label, y in panels:
        mel = librosa.feature.melspectrogram(y=np.asarray(y, np.float32), sr=sr, n_mels=128)
        db = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
        img = ((db + 80.0) / 80.0 * 255.0).clip(0, 255).astype(np.uint8)[::-1]
        img = np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)
        lut = np.stack([np.interp(np.arange(256), [0, 128, 255], c) for c in ([0, 200, 255], [0, 40, 240], [30, 90, 40])], 1)
        im = Image.fromarray(lut[img].astype(np.uint8))
        ImageDraw.Draw(im).text((4, 2), label, fill=(255, 255, 255))
        rows.append(im)
        width = max(width, im.width)
    out = Image.new("RGB", (width, sum(r.height + 4 for r in rows)), (0, 0, 0))
    top = 0
    for r in rows:
        out.paste(r, (0, top))
        top += r.height + 4
    out.save(path)


def quality(args) -> dict:
    content, sr = audio_io.read_audio(MEDIA / "speech.wav")
    if args.seconds:
        content = content[: int(args.seconds * sr)]
    rows = []
    (OUT / "audio").mkdir(parents=True, exist_ok=True)
    if args.n_mels:  # try other mel resolutions: registered as VARIANT-melN
        for name in args.variants.split(","):
            VARIANTS[f"{name}-mel{args.n_mels}"] = dataclasses.replace(VARIANTS[name], n_mels=args.n_mels,
                                                                       chroma_weight=args.chroma_weight)
        args.variants = ",".join(f"{name}-mel{args.n_mels}" for name in args.variants.split(","))
    for variant in args.variants.split(","):
        for style_name in ("guitar_arpeggio", "rain_texture"):
            style, _ = audio_io.read_audio(MEDIA / f"{style_name}.wav", sample_rate=sr, channels=1)
            overrides = {"content_weight": args.content_weight, "spectrum_content": args.spectrum_content,
                         "stats_weight": args.stats_weight, "filters": args.filters or None}
            settings = AudioConfig(variant=variant, iterations=args.iterations, griffin_lim_iters=args.griffin_lim_iters,
                                   **{k: v for k, v in overrides.items() if v is not None})
            t0 = time.perf_counter()
            out, info = stylize_audio(content, style, sr, settings)
            wall = time.perf_counter() - t0
            m = audio_metrics(content, style, out, sr, settings, info)
            audio_io.write_audio(OUT / "audio" / f"speech_{style_name}_{variant}.wav", out, sr)
            spectrogram_png(OUT / "audio" / f"speech_{style_name}_{variant}.png",
                            [("content", content[:, 0]), ("style", style[:, 0]), (f"output ({variant})", out[:, 0])], sr)
            row = {"variant": variant, "style": style_name, **m, "spectral_convergence_db": info["spectral_convergence_db"],
                   "wall_seconds": wall, "compile_seconds": info["compile_seconds"],
                   "content_weight": settings.content_weight, "iterations": settings.iterations,
                   "loss_initial": info["loss_initial"], "loss_final": info["loss_final"]}
            rows.append(row)
            print(f"{variant:10s} {style_name:16s} gram -{100 * m['gram_reduction']:5.1f}%  "
                  f"timbre {m['timbre_ratio']:.3f}  chroma {m['chroma_correlation']:.3f}  "
                  f"SC {info['spectral_convergence_db']:.1f} dB  {wall:.0f} s", flush=True)
    return {"content": "speech.wav", "seconds": args.seconds, "iterations": args.iterations,
            "griffin_lim_iters": args.griffin_lim_iters, "rows": rows}


def long_run(args) -> dict:
    work = OUT / "audio"
    work.mkdir(parents=True, exist_ok=True)
    src = work / "long_stereo_60s.wav"
    # 60 s stereo 44.1 kHz: speech tiled on the left, guitar tiled on the right, mixed partly across.
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
           "-stream_loop", "-1", "-i", str(MEDIA / "speech.wav"),
           "-stream_loop", "-1", "-i", str(MEDIA / "guitar_arpeggio.wav"),
           "-filter_complex", "[0:a]aresample=44100[a];[1:a]aresample=44100,volume=0.5[b];"
           "[a][b]join=inputs=2:channel_layout=stereo,pan=stereo|c0=0.8*c0+0.2*c1|c1=0.3*c0+0.7*c1[o]",
           "-map", "[o]", "-t", "60", "-c:a", "pcm_s16le", str(src)]
    subprocess.run(cmd, check=True)
    out = work / "long_stereo_60s_out.wav"
    metrics = work / "long_stereo_60s.json"
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, str(ROOT / "cli.py"), str(src), "--style-audio", str(MEDIA / "rain_texture.wav"),
                          "-o", str(out), "--metrics-json", str(metrics), "-q", *args.cli_args.split()],
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = {"input": "60 s stereo 44.1 kHz (generated)", "returncode": run.returncode, "wall_seconds": wall,
              "peak_rss_mib": peak_kib / 1024.0, "cli_args": args.cli_args}
    if metrics.exists():
        result["metrics"] = json.loads(metrics.read_text())
    print(f"60 s stereo 44.1 kHz: rc {run.returncode}, {wall:.0f} s, peak RSS {peak_kib / 1024:.0f} MiB")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="ulyanov,mel-stats")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--griffin-lim-iters", type=int, default=100)
    parser.add_argument("--content-weight", type=float)
    parser.add_argument("--filters", type=int)
    parser.add_argument("--n-mels", type=int, help="run the variants with this many mel bands")
    parser.add_argument("--chroma-weight", type=float, default=0.0, help="with --n-mels: the variant's chroma content weight")
    parser.add_argument("--spectrum-content", type=float, help="override the variant's share of content loss on log1p|STFT|")
    parser.add_argument("--stats-weight", type=float, help="override the variant's statistics weight")
    parser.add_argument("--seconds", type=float, help="use only the first SEC seconds of speech.wav")
    parser.add_argument("--long", action="store_true", help="the 60 s stereo memory/time run instead")
    parser.add_argument("--cli-args", default="", help="--long: extra CLI flags")
    parser.add_argument("--json", help="where to write the results (default outputs/bench/audio-*.json)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    result = long_run(args) if args.long else quality(args)
    result["load_average"] = os.getloadavg()
    path = Path(args.json) if args.json else OUT / ("audio-long.json" if args.long else "audio-quality.json")
    path.write_text(json.dumps(result, indent=2, default=float))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
