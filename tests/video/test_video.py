"""Video engine end to end (jaxstyle.video through the CLI): real media with audio, odd sizes and
NTSC rates, the lane schedule, sharded == unsharded, multi-process == single process,
kill-and-resume == uninterrupted, one-line errors for bad input, and style videos.

Everything is tiny (<= 48x36 working size, <= 12 frames, 2 iterations) so the file runs in a few
minutes on two CPU cores. Runs that need a different number of (fake CPU) devices than the 8 of
this process, or several processes, use the CLI in subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from jaxstyle import imaging
from jaxstyle.cli import main
from jaxstyle.io.images import read_image
from jaxstyle.io import video as vio
from jaxstyle.video import MIN_LANE_FRAMES, join_weight, plan_lanes

from ..helpers import FF, MEDIA, ROOT, SHALLOW, assert_one_line_error, cli_env, free_port
FAST = ["--iterations", "2", "--coarse-iterations", "1", "--video-iterations", "2", "--start-size", "0",
        "--chunk", "2", "--quiet", "--network", "vgg16", *SHALLOW]


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def ff(*args: str) -> None:
    res = subprocess.run([FF, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *map(str, args)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert res.returncode == 0, res.stderr.decode()


def make_clip(path: Path, size: str = "32x24", rate: str = "25", frames: int = 8) -> Path:
    """A moving testsrc2 clip without audio (H.264 4:4:4, so odd sizes work)."""
    w, h = map(int, size.split("x"))
    # testsrc2 rounds odd sizes down to even ones: make it larger, then crop in 4:4:4.
    source = f"testsrc2=size={w + w % 2}x{h + h % 2}:rate={rate},format=yuv444p,crop={w}:{h}:0:0"
    ff("-f", "lavfi", "-i", source, "-frames:v", frames,
       "-c:v", "libx264", "-pix_fmt", "yuv444p", "-preset", "ultrafast", path)
    return path


def audio_seconds(path: Path) -> float:
    """Decoded length of the first audio stream, by counting PCM samples."""
    res = subprocess.run([FF, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:a:0",
                          "-ac", "1", "-ar", "48000", "-f", "s16le", "-"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert res.returncode == 0, res.stderr.decode()
    return len(res.stdout) / 2 / 48000


def run_main(argv, capsys) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def pngs(directory: Path) -> dict[str, np.ndarray]:
    return {p.name: iio.imread(p) for p in sorted(Path(directory).glob("*.png")) if not p.name.startswith(".")}


def max_level_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> int:
    """Largest difference in 8-bit levels between two sets of frames with the same names."""
    assert sorted(a) == sorted(b)
    return max(int(np.abs(a[k].astype(np.int16) - b[k].astype(np.int16)).max()) for k in a)


def assert_same_frames(a: dict[str, np.ndarray], b: dict[str, np.ndarray], what: str) -> None:
    """Two differently compiled programs (sharded or not, one process or two) that must compute the
    same frames. They agree to float rounding, but on some CPUs the two programs round differently,
    and a last-bit difference can flip a decision (a pixel of an occlusion mask at its threshold, a
    line-search step) that the later frames of the lane carry on: seen on one CPU, up to 11 levels in
    7% of one frame's pixels (mean 0.5 level), every other frame within a level. So each frame's mean
    difference must be at most a level: a frame from the wrong lane, device or position differs by
    more (even the neighbouring frame of these tiny clips: 2.5-10 levels), a wrong collective by far
    more."""
    assert sorted(a) == sorted(b) and a
    diffs = {k: np.abs(a[k].astype(np.int16) - b[k].astype(np.int16)) for k in a}
    means = {k: float(d.mean()) for k, d in diffs.items()}
    worst = max(means, key=means.get)
    largest = max(int(d.max()) for d in diffs.values())
    print(f"{what}: max difference {largest} levels; worst frame {worst}, mean {means[worst]:.3f} levels")
    assert means[worst] <= 1.0, (worst, means[worst])


def cli_start(argv, devices: int) -> subprocess.Popen:
    """The CLI in a subprocess; its stderr goes to a temporary file (``stderr_text``), never a pipe."""
    errfile = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "jaxstyle", *map(str, argv)], cwd=ROOT, env=cli_env(devices),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errfile)
    proc.errfile = errfile  # type: ignore[attr-defined]
    return proc


def stderr_text(proc: subprocess.Popen) -> str:
    proc.errfile.seek(0)  # type: ignore[attr-defined]
    return proc.errfile.read().decode("utf-8", "replace")  # type: ignore[attr-defined]


def cli_wait(procs: list[subprocess.Popen], timeout: float = 400) -> list[str]:
    """Wait for all; on a timeout SIGKILL the ones still running (only these, by pid) and fail."""
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        pytest.fail("CLI subprocess timed out:\n" + "\n---\n".join(stderr_text(p) for p in procs))
    errs = [stderr_text(proc) for proc in procs]
    for proc, err in zip(procs, errs):
        assert proc.returncode == 0, err
    return errs


def two_processes_and_one(common: list, tmp_path: Path, devices_per_process: int) -> tuple[list[str], dict]:
    """Run `common` as one program over two processes (``multi``, a coordinator on localhost) beside
    one process with as many devices as both (``single``), each with its own frames and metrics;
    returns (stderr of [multi 0, multi 1, single], {"multi": metrics, "single": metrics})."""
    port = free_port()
    multi = [cli_start([*common, "-o", tmp_path / "multi.mp4", "--work-dir", tmp_path / "work_multi",
                        "--frames-dir", tmp_path / "frames_multi", "--metrics-json", tmp_path / "multi.json",
                        "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)],
                       devices_per_process)
             for i in range(2)]
    single = cli_start([*common, "-o", tmp_path / "single.mp4", "--frames-dir", tmp_path / "frames_single",
                        "--metrics-json", tmp_path / "single.json"], 2 * devices_per_process)
    errs = cli_wait([*multi, single])
    return errs, {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in ("multi", "single")}


@pytest.fixture(scope="module")
def style(media) -> Path:
    return media / "styles" / "starry_night.jpg"


@pytest.fixture(scope="module")
def clip8(tmp_path_factory) -> Path:
    """8 frames of 32x24 at 25 fps (the real clip's working size, so compiled programs are reused)."""
    return make_clip(tmp_path_factory.mktemp("clip8") / "clip8.mp4")


# ------------------------------------------------------------------------------------------------
# 1. real clip end to end
# ------------------------------------------------------------------------------------------------


def test_real_clip_segment_end_to_end(capsys, media, style, tmp_path, vgg16):
    real = media / "video" / "realshort.mp4"
    before = real.read_bytes()
    out = tmp_path / "real_out.mp4"
    metrics_path = tmp_path / "metrics.json"
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    for name in ("frame_000006.png", "frame_000009.png", "notes.txt"):  # an earlier, longer run's
        (frames_dir / name).write_bytes(b"earlier")
    code, err = run_main([real, "--style", style, "-o", out, "--size", "32", "--duration", "0.2",
                          "--metrics-json", metrics_path, "--frames-dir", frames_dir, *FAST], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    assert "removed 2 frame PNG(s) numbered 6 and up" in err and (frames_dir / "notes.txt").exists()

    info = vio.probe(out)
    assert (info.width, info.height) == (320, 240)
    assert info.fps == Fraction(1501, 50)
    assert info.frame_count == 6
    assert info.num_audio_streams == 1
    frame_period = 1 / float(info.fps)
    assert abs(audio_seconds(out) - 6 * frame_period) <= frame_period, audio_seconds(out)

    metrics = json.loads(metrics_path.read_text())
    assert metrics["frames"] == 6 and metrics["fps"] == "1501/50"
    assert metrics["work_size"] == [24, 32] and metrics["output_size"] == [240, 320]
    assert len(metrics["pair_temporal_errors"]) == 5
    assert all(np.isfinite(e) and e >= 0 for e in metrics["pair_temporal_errors"])
    assert np.isfinite(metrics["stability_error"]) and metrics["stability_error"] > 0
    assert metrics["frames_per_second"] > 0
    assert metrics["iterations_per_frame"] == 2
    later = metrics["later_frame_losses"]
    firsts = {lane["start"] for lane in metrics["lanes"]}
    assert {t for t, _ in later} | firsts == set(range(6)) and all(np.isfinite(v) and v > 0 for _, v in later)
    assert metrics["start"] == 0 and metrics["duration"] == 0.2

    frames = pngs(frames_dir)
    assert sorted(frames) == [f"frame_{t:06d}.png" for t in range(6)]
    assert all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for f in frames.values())
    # The output really is stylized (not a copy of the content) and the video matches the PNGs.
    content = np.stack(list(vio.iter_frames(real, vio.probe(real), duration=0.2)))
    decoded = np.stack(list(vio.iter_frames(out, info)))
    stacked = np.stack([frames[k] for k in sorted(frames)]).astype(np.float32) / 255
    assert np.abs(decoded - stacked).mean() < 0.03
    assert np.abs(stacked - content).mean() > 0.01

    # The work directory (default: beside the output) is gone, no temporary files are left.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "metrics.json", "real_out.mp4"]
    assert real.read_bytes() == before

    silent = tmp_path / "silent.mp4"
    code, err = run_main([real, "--style", style, "-o", silent, "--size", "32", "--duration", "0.2",
                          "--no-audio", *FAST], capsys)
    assert code == 0, err
    info = vio.probe(silent)
    assert info.audio == () and info.frame_count == 6 and info.fps == Fraction(1501, 50)


# ------------------------------------------------------------------------------------------------
# 2. odd size, NTSC rate, no audio
# ------------------------------------------------------------------------------------------------


def test_odd_size_ntsc_clip_without_audio(capsys, style, tmp_path, vgg16):
    clip = make_clip(tmp_path / "odd.mp4", size="35x27", rate="30000/1001", frames=8)
    assert vio.probe(clip).audio == ()
    out = tmp_path / "odd_out.mp4"
    code, err = run_main([clip, "--style", style, "-o", out, *FAST], capsys)
    assert code == 0, err
    info = vio.probe(out)
    assert (info.width, info.height) == (35, 27)
    assert info.fps == Fraction(30000, 1001)
    assert info.frame_count == 8
    assert info.audio == ()
    assert not info.variable_frame_rate


def test_a_one_frame_clip_has_no_stability_to_report(capsys, style, tmp_path, vgg16):
    clip = make_clip(tmp_path / "one.mp4", frames=1)
    code, err = run_main([clip, "--style", style, "-o", tmp_path / "one_out.mp4", "--metrics-json",
                          tmp_path / "m.json", *FAST], capsys)
    assert code == 0, err
    assert "1 frame in" in err and "no frame pair to measure stability on" in err and "stability error" not in err
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["stability_error"] is None and data["pair_temporal_errors"] == []
    assert vio.probe(tmp_path / "one_out.mp4").frame_count == 1


def test_anamorphic_clip_is_stylized_in_square_pixels(capsys, style, tmp_path, vgg16):
    """Pixels 4:3 wide (as in DV or the 'carphone' clip): the frames are stylized at the display
    aspect, so strokes are not stretched on screen, and written back at the stored size with the
    same pixel aspect and language tag."""
    clip = tmp_path / "anamorphic.mp4"
    ff("-f", "lavfi", "-i", "testsrc2=size=24x24:rate=25", "-frames:v", 6, "-vf", "setsar=4/3",
       "-metadata:s:v:0", "language=deu", "-c:v", "libx264", "-pix_fmt", "yuv444p", "-preset", "ultrafast", clip)
    source_info = vio.probe(clip)
    assert (source_info.width, source_info.display_width, source_info.sample_aspect) == (24, 32, Fraction(4, 3))
    out, metrics_path = tmp_path / "out.mp4", tmp_path / "metrics.json"
    code, err = run_main([clip, "--style", style, "-o", out, "--metrics-json", metrics_path, *FAST], capsys)
    assert code == 0, err
    metrics = json.loads(metrics_path.read_text())
    assert metrics["work_size"] == [24, 32] and metrics["output_size"] == [24, 24]
    info = vio.probe(out)
    assert (info.width, info.height, info.frame_count) == (24, 24, 6)
    assert (info.sample_aspect, info.language) == (Fraction(4, 3), "deu")


# ------------------------------------------------------------------------------------------------
# 3. lanes
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_frames", [1, 2, 5, 8, 9, 12, 37, 100])
@pytest.mark.parametrize("n_lanes", [1, 2, 3, 4, 8, 16, 200])
@pytest.mark.parametrize("overlap", [0, 1, 6])
def test_plan_lanes_cover_every_frame(n_frames, n_lanes, overlap):
    lanes = plan_lanes(n_frames, n_lanes, overlap)
    assert 1 <= len(lanes) <= max(1, min(n_lanes, n_frames // MIN_LANE_FRAMES))
    if len(lanes) > 1:
        assert all(lane.stop - lane.core_start >= MIN_LANE_FRAMES for lane in lanes[:-1])
    assert [lane.index for lane in lanes] == list(range(len(lanes)))
    # Core segments are contiguous, disjoint and cover 0..n-1 exactly.
    assert lanes[0].start == lanes[0].core_start == 0
    assert lanes[-1].stop == n_frames
    for a, b in zip(lanes, lanes[1:]):
        assert b.core_start == a.stop
    owned = [t for lane in lanes for t in range(lane.core_start, lane.stop)]
    assert owned == list(range(n_frames))
    for lane in lanes:
        assert 0 <= lane.start <= lane.core_start < lane.stop <= n_frames
        assert lane.stop - lane.core_start >= min(n_frames, MIN_LANE_FRAMES)
    # Every lane but the first warms up by the same overlap (at most the asked one).
    warm = {lane.core_start - lane.start for lane in lanes[1:]}
    assert len(warm) <= 1 and all(0 <= w <= overlap for w in warm)
    if len(lanes) > 1 and overlap:
        assert warm.pop() > 0
    # Lock-step lanes are balanced: where every lane can own MIN_LANE_FRAMES, lengths differ by <= 1.
    if len(lanes) > 1 and (n_frames - overlap) / len(lanes) >= MIN_LANE_FRAMES + 1:
        assert max(lane.length for lane in lanes) - min(lane.length for lane in lanes) <= 1, lanes
    # Each frame belongs to one lane, or to two neighbours in the later one's warm-up, where the
    # cross-fade weight of the later lane rises strictly inside (0, 1).
    for t in range(n_frames):
        owners = [lane for lane in lanes if lane.start <= t < lane.stop]
        assert len(owners) in (1, 2), (t, owners)
        assert join_weight(t, owners[0], 0) == 1.0
        if len(owners) == 2:
            a, b = owners
            assert b.index == a.index + 1 and b.start <= t < b.core_start
            assert 0.0 < join_weight(t, b, 0) < 1.0
            if t > b.start:
                assert join_weight(t, b, 0) > join_weight(t - 1, b, 0)


def test_plan_lanes_examples():
    lanes = plan_lanes(16, 4, 6)
    assert [(lane.start, lane.core_start, lane.stop) for lane in lanes] == [(0, 0, 4), (1, 4, 8), (5, 8, 12), (9, 12, 16)]
    assert len(plan_lanes(8, 4, 6)) == 2  # lanes keep at least MIN_LANE_FRAMES frames
    lanes = plan_lanes(12, 2, 3)  # balanced: the first lane takes the second's warm-up length
    assert [(lane.start, lane.core_start, lane.stop) for lane in lanes] == [(0, 0, 8), (5, 8, 12)]
    lanes = plan_lanes(96, 8, 8)
    assert {lane.length for lane in lanes} == {19} and lanes[1].start == 11
    assert [(lane.start, lane.stop) for lane in plan_lanes(12, 1, 6)] == [(0, 12)]
    assert len(plan_lanes(3, 8, 6)) == 1
    # asking for more overlap than fits gives the most that fits, never less than a smaller ask
    assert [lane.core_start - lane.start for lane in plan_lanes(40, 4, 16)][1:] == [8, 8, 8]
    for n in range(8, 90):
        fits = [max([lane.core_start - lane.start for lane in plan_lanes(n, 4, ov)]) for ov in range(0, 24)]
        assert fits == sorted(fits), (n, fits)


def test_sequential_is_one_lane(capsys, clip8, style, tmp_path, vgg16):
    """--sequential: one lane walking all 8 frames (8 steps, temporal loss from frame 1 on).
    (--frames-per-device 4 on one device runs in test_sharded_equals_unsharded.)"""
    out, metrics = tmp_path / "seq.mp4", tmp_path / "seq.json"
    code, err = run_main([clip8, "--style", style, "-o", out, "--metrics-json", metrics,
                          "--frames-dir", tmp_path / "frames", "--sequential", *FAST], capsys)
    assert code == 0, err
    assert vio.probe(out).frame_count == 8
    assert len(pngs(tmp_path / "frames")) == 8
    data = json.loads(metrics.read_text())
    assert data["lanes"] == [{"index": 0, "start": 0, "core_start": 0, "stop": 8}] and data["steps"] == 8
    assert data["iterations_first"] == 2 and data["iterations_later"] == 2 and data["iterations_per_frame"] == 2
    assert len(data["pair_temporal_errors"]) == 7 and np.isfinite(data["stability_error"])


def _still_clip(path: Path, frames: int = 8) -> Path:
    """A camera held still on a photo (a little sensor noise per frame): the direct flow from the
    first frame to any other is reliable."""
    photo = imaging.resize(read_image(MEDIA / "content" / "tubingen.jpg"), 24, 32)
    rng = np.random.default_rng(0)
    with vio.VideoWriter(path, 32, 24, 25, quality=0) as writer:
        for _ in range(frames):
            writer.write(np.clip(photo + rng.normal(0, 0.01, photo.shape), 0, 1))
    return path


def test_lanes_are_anchored_on_the_first_frame(capsys, style, tmp_path, vgg16):
    """On a still shot the second lane starts from the first frame's output warped (its first frame
    costs a later frame's iterations), so the lanes meet in nearly the same stylization and the
    cross-fade is smoother than with --no-anchor, where it starts afresh. (``--fade 0``: the plain
    cross-fade over the overlap, which shows the lanes' difference most.)"""
    clip = _still_clip(tmp_path / "still.mp4")
    base = [clip, "--style", style, "--frames-per-device", "2", "--iterations", "12", "--video-iterations", "6",
            "--start-size", "0", "--chunk", "6", "--fade", "0", "--quiet", "--network", "vgg16", *SHALLOW]
    runs = {}
    for name, extra in (("anchored", []), ("fresh", ["--no-anchor"])):
        code, err = run_main([*base, *extra, "-o", tmp_path / f"{name}.mp4", "--metrics-json",
                              tmp_path / f"{name}.json", "--frames-dir", tmp_path / name], capsys)
        assert code == 0, err
        runs[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert len(runs["anchored"]["lanes"]) == 2
    assert runs["anchored"]["anchored_lanes"] == 1 and runs["fresh"]["anchored_lanes"] == 0
    # 2 lanes of 4 and 7 frames: 2 first frames without the anchor, 1 with it
    for name, firsts in (("fresh", 2), ("anchored", 1)):
        m = runs[name]
        assert m["iterations_per_frame"] == pytest.approx(
            (firsts * m["iterations_first"] + (11 - firsts) * m["iterations_later"]) / 8), name
    # the first frames' losses: the lanes that started afresh only (not the batch's padding rows)
    assert len(runs["fresh"]["first_frame_losses"]) == 2 and len(runs["anchored"]["first_frame_losses"]) == 1
    # every later frame's loss once per lane that computed it (the shorter lane idles at its end)
    lanes, later = runs["fresh"]["lanes"], runs["fresh"]["later_frame_losses"]
    assert sorted(t for t, _ in later) == sorted(t for lane in lanes for t in range(lane["start"] + 1, lane["stop"]))
    a, f = runs["anchored"]["stability_error"], runs["fresh"]["stability_error"]
    print(f"still shot, 2 lanes: e_stab anchored {a:.4f}, fresh {f:.4f}")
    assert a < 0.7 * f
    # the frames are the anchored run's own, not the fresh run's
    assert max_level_diff(pngs(tmp_path / "anchored"), pngs(tmp_path / "fresh")) > 0


def test_sharded_equals_unsharded(clip8, style, tmp_path, vgg16):
    """2 lanes as --frames-per-device 1 on 2 devices vs --frames-per-device 2 on 1 device."""
    runs = {"sharded": (2, "1"), "single": (1, "2")}
    procs = []
    for name, (devices, fpd) in runs.items():
        procs.append(cli_start([clip8, "--style", style, "-o", tmp_path / f"{name}.mp4", "--frames-per-device", fpd,
                                "--work-dir", tmp_path / f"work_{name}", "--keep-work",
                                "--frames-dir", tmp_path / f"frames_{name}",
                                "--metrics-json", tmp_path / f"{name}.json", *FAST], devices))
    cli_wait(procs)
    m = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in runs}
    assert m["sharded"]["devices"] == 2 and m["single"]["devices"] == 1
    assert m["sharded"]["lanes"] == m["single"]["lanes"]
    # 2 lanes of 4 frames, the second starting 3 frames early (overlap = a segment - 1)
    assert [(x["start"], x["core_start"], x["stop"]) for x in m["single"]["lanes"]] == [(0, 0, 4), (1, 4, 8)]
    assert m["single"]["steps"] == 7
    # Per-lane frames in the work dirs (overlap frames of both lanes included), then the output frames.
    work = {name: pngs(tmp_path / f"work_{name}" / "frames") for name in runs}
    assert len(work["single"]) == 8 + 3
    assert_same_frames(work["sharded"], work["single"], "sharded vs unsharded, lane frames")
    final = {name: pngs(tmp_path / f"frames_{name}") for name in runs}
    assert len(final["single"]) == 8
    assert_same_frames(final["sharded"], final["single"], "sharded vs unsharded, output frames")


# ------------------------------------------------------------------------------------------------
# 4. multi-process (jax.distributed, two local processes)
# ------------------------------------------------------------------------------------------------


def test_two_processes_form_one_mesh_equal_to_one_process(style, tmp_path, vgg16):
    """2 processes with 4 fake CPU devices each run one program over an 8-device mesh (8 lanes, a
    refinement pass); the frames equal one process with 8 devices (``assert_same_frames``).

    The two compiled programs (one with cross-process collectives) agree to float rounding. Adam,
    because a last-bit difference flips L-BFGS line-search decisions more often; even so, on one CPU
    a lane's last two frames came out up to 11 levels apart in a few pixels."""
    clip = make_clip(tmp_path / "clip32.mp4", frames=32)
    common = [clip, "--style", style, "--frames-per-device", "1", "--overlap", "0", "--passes", "2", "--optimizer", "adam",
              *FAST]
    errs, m = two_processes_and_one(common, tmp_path, 4)
    assert "process 1 of 2" in errs[0] and "process 2 of 2" in errs[1]
    assert "8 lane(s) (4 here)" in errs[0] and "8 lane(s) (4 here)" in errs[1]
    assert "wrote" in errs[0] and "wrote" not in errs[1]  # only process 0 assembles
    assert m["multi"]["processes"] == 2 and m["multi"]["devices"] == 8 == m["single"]["devices"]
    assert m["multi"]["lanes"] == m["single"]["lanes"] and len(m["single"]["lanes"]) == 8
    # the anchor (lane 0's first frame, on process 0) reaches the lanes of both processes
    print(f"anchored lanes: {m['multi']['anchored_lanes']} of 7")
    assert m["multi"]["anchored_lanes"] == m["single"]["anchored_lanes"] >= 4
    assert vio.probe(tmp_path / "multi.mp4").frame_count == 32
    assert not (tmp_path / "work_multi").exists()
    frames = {name: pngs(tmp_path / f"frames_{name}") for name in ("multi", "single")}
    assert len(frames["multi"]) == 32
    assert_same_frames(frames["multi"], frames["single"], "two processes (one 8-device mesh) vs one process")


# ------------------------------------------------------------------------------------------------
# 5. kill and resume
# ------------------------------------------------------------------------------------------------


# 12 frames: one lane of 12 steps; or 3 lanes of 4 frames with a 2-frame warm-up (6 steps, 16 PNGs:
# the overlap frames are stored once per lane): each lane's history comes back from the checkpoint
RESUME_MODES = {"sequential": (["--sequential"], 1, 12, 12),
                "lanes": (["--frames-per-device", "1", "--overlap", "2"], 3, 6, 16)}


@pytest.mark.parametrize("mode", sorted(RESUME_MODES))
def test_kill_and_resume_matches_uninterrupted_run(capsys, style, tmp_path, vgg16, mode):
    schedule, per_step, steps, n_pngs = RESUME_MODES[mode]
    clip = make_clip(tmp_path / "clip12.mp4", size="32x24", frames=12)
    out = tmp_path / "resumed.mp4"
    work = tmp_path / "work"
    args = [clip, "--style", style, "-o", out, *schedule, "--work-dir", work, "--keep-work", *FAST]
    # Same 8 fake devices as this process, so the resumed (in-process) run computes exactly the same.
    proc = cli_start(args, devices=8)
    deadline = time.monotonic() + 300
    try:
        while True:
            done = [p for p in (work / "frames").glob("*.png") if not p.name.startswith(".")] \
                if (work / "frames").is_dir() else []
            if len(done) >= 2 * per_step + 1:  # (two steps written: the first is checkpointed)
                break
            assert proc.poll() is None, f"finished before it could be killed: {stderr_text(proc)}"
            assert time.monotonic() < deadline, "no frames appeared"
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    # only the killed job's lock is left (taken over by the next run), no temporary file
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".resumed")] == [".resumed.mp4.jaxstyle-lock"]
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (work / "frames").glob("*.png")
              if not p.name.startswith(".")}
    assert 2 * per_step < len(before) < n_pngs, sorted(before)
    checkpoints = [int(p.name) for p in (work / "ckpt").iterdir() if p.name.isdigit()]
    assert checkpoints, "no finished checkpoint"
    last_step = max(checkpoints)

    code, err = run_main([*args, "--resume", "--frames-dir", tmp_path / "frames_resumed", "--metrics-json",
                          tmp_path / "resumed.json"], capsys)
    assert code == 0, err
    assert f"resuming at step {last_step + 1} of {steps}" in err and "took over the lock" in err
    # the metrics say what they cover: no rate or first-frame figures for steps this run did not do
    metrics = json.loads((tmp_path / "resumed.json").read_text())
    assert metrics["resumed_at_step"] == last_step + 1 and metrics["frames_per_second"] is None
    assert metrics["first_frame_losses"] == [] and metrics["iterations_per_frame"] is None
    assert f"resumed at step {last_step + 1}), stability error" in err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".resumed")]
    assert vio.probe(out).frame_count == 12
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (work / "frames").glob("*.png")
             if not p.name.startswith(".")}
    assert len(after) == n_pngs
    changed = sorted(name for name in before if after[name] != before[name])
    # Frames up to the last checkpoint were kept; only an in-flight step (written, not yet
    # checkpointed) may have been recomputed: the frames of one step, one per lane.
    lane_starts = {lane.index: lane.start for lane in plan_lanes(12, per_step, 2)}
    step_of = {name: int(name[:6]) - lane_starts[int(name[7:10])] for name in before}  # "{t:06d}_{lane:03d}.png"
    assert all(step_of[name] > last_step for name in changed), (changed, last_step)
    assert len(changed) <= per_step, changed

    code, err = run_main([clip, "--style", style, "-o", tmp_path / "straight.mp4", *schedule,
                          "--work-dir", tmp_path / "work_straight", "--keep-work",
                          "--frames-dir", tmp_path / "frames_straight", *FAST], capsys)
    assert code == 0, err
    assert "resuming" not in err and " frames/s), stability error" in err
    resumed, straight = pngs(tmp_path / "frames_resumed"), pngs(tmp_path / "frames_straight")
    assert len(resumed) == 12
    diff = max_level_diff(resumed, straight)
    with capsys.disabled():
        print(f"{mode}: killed with {len(before)} frames written, last checkpoint step {last_step}, recomputed "
              f"{changed}; resumed vs uninterrupted: max difference {diff} levels")
    assert diff == 0
    assert max_level_diff(pngs(work / "frames"), pngs(tmp_path / "work_straight" / "frames")) == 0


# ------------------------------------------------------------------------------------------------
# 6. bad input: one line, exit 2, nothing touched
# ------------------------------------------------------------------------------------------------


def test_bad_video_inputs_are_one_line_errors(capsys, style, clip8, tmp_path, vgg16):
    out = tmp_path / "out.mp4"

    corrupt = tmp_path / "corrupt.mp4"
    data = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    corrupt.write_bytes(data)
    code, err = run_main([corrupt, "--style", style, "-o", out, *FAST], capsys)
    assert_one_line_error(code, err, "corrupt.mp4")
    assert corrupt.read_bytes() == data

    audio_only = tmp_path / "audio_only.mp4"
    ff("-f", "lavfi", "-i", "sine=duration=0.3", "-c:a", "aac", audio_only)
    zero = tmp_path / "zero_frames.mp4"  # a video track with no frames
    ff("-f", "lavfi", "-i", "testsrc2=size=32x24:rate=25", "-frames:v", "0", "-c:v", "libx264", zero)
    for path in (audio_only, zero):
        data = path.read_bytes()
        code, err = run_main([path, "--style", style, "-o", out, *FAST], capsys)
        assert_one_line_error(code, err, path.name)
        assert path.read_bytes() == data

    code, err = run_main([clip8, "--style", style, "-o", out, "--start", "5", *FAST], capsys)
    assert_one_line_error(code, err, "5")

    code, err = run_main([clip8, "--style", tmp_path / "missing.jpg", "-o", out, *FAST], capsys)
    assert_one_line_error(code, err, "missing.jpg")
    text = tmp_path / "style.txt"
    text.write_text("not an image")
    code, err = run_main([clip8, "--style", text, "-o", out, *FAST], capsys)
    assert_one_line_error(code, err, "style.txt")
    missing_video = tmp_path / "nope.mp4"
    code, err = run_main([missing_video, "--style", style, "-o", out, *FAST], capsys)
    assert_one_line_error(code, err, "nope.mp4")

    data = clip8.read_bytes()
    code, err = run_main([clip8, "--style", style, "-o", clip8, *FAST], capsys)
    assert_one_line_error(code, err, "same file")
    assert clip8.read_bytes() == data
    code, err = run_main([clip8, "--style", style, "-o", tmp_path / "out.txt", *FAST], capsys)
    assert_one_line_error(code, err, "unsupported output format")
    # --sequential is one lane: the lanes' own flags would change nothing
    code, err = run_main([clip8, "--style", style, "-o", out, "--sequential", "--overlap", "4", "--no-anchor", *FAST],
                         capsys)
    assert_one_line_error(code, err, "--overlap, --no-anchor apply to the lanes schedule, and --sequential")
    code, err = run_main(["batch", "--contents", clip8.parent, "--styles", style, "--out-dir", tmp_path / "job",
                          "--sequential", "--fade", "4"], capsys)  # a job's flags: said before any item runs
    assert_one_line_error(code, err, "--fade applies to the lanes schedule")
    assert not (tmp_path / "job").exists()

    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------------
# 7. style video
# ------------------------------------------------------------------------------------------------


def test_style_video(capsys, clip8, tmp_path, vgg16):
    style_clip = tmp_path / "style.mp4"
    ff("-f", "lavfi", "-i", "testsrc2=size=48x36:rate=10", "-frames:v", "4", "-c:v", "libx264",
       "-pix_fmt", "yuv444p", "-preset", "ultrafast", style_clip)
    assert vio.probe(style_clip).frame_count == 4
    out = tmp_path / "styled.mp4"
    metrics = tmp_path / "m.json"
    code, err = run_main([clip8, "--style", style_clip, "-o", out, "--frames-per-device", "1",
                          "--style-window", "3", "--metrics-json", metrics, *FAST], capsys)
    assert code == 0, err
    info = vio.probe(out)
    assert (info.width, info.height, info.frame_count) == (32, 24, 8)
    data = json.loads(metrics.read_text())
    assert data["styles"] == [str(style_clip)] and len(data["pair_temporal_errors"]) == 7

    # A style video cannot be blended with a still style.
    code, err = run_main([clip8, "--style", style_clip, "--style", style_clip, "-o", tmp_path / "x.mp4", *FAST],
                         capsys)
    assert_one_line_error(code, err, "style video")


def test_mask_size_and_colours_are_checked_before_any_work(capsys, clip8, style, tmp_path):
    """A content mask of another size than the video, or with no colour of the style mask: one line
    before the work directory exists (the same rules as for an image)."""
    style_mask = tmp_path / "style_mask.png"
    iio.imwrite(style_mask, np.broadcast_to(np.array([255, 0, 0], np.uint8), iio.imread(style).shape[:2] + (3,)).copy())
    wrong_size, green = tmp_path / "wrong_size.png", tmp_path / "green.png"
    iio.imwrite(wrong_size, np.full((48, 64, 3), (255, 0, 0), np.uint8))
    iio.imwrite(green, np.full((24, 32, 3), (0, 255, 0), np.uint8))
    out = tmp_path / "v.mp4"
    for mask, needle in [(wrong_size, "is 64x48 px but the video is 32x24"), (green, "no colour of the content mask")]:
        code, err = run_main([clip8, "--style", style, "-o", out, *FAST, "--content-mask", mask, "--style-mask", style_mask,
                              "--frames-dir", tmp_path / "frames"], capsys)
        assert_one_line_error(code, err, needle)
        assert "network:" not in err  # (checked before the network loads)
        assert not out.exists() and not (tmp_path / ".v.mp4.jaxstyle-work").exists() and not (tmp_path / "frames").exists()


def test_mask_video(capsys, clip8, style, tmp_path, vgg16):
    """A content mask video (left half red, right half blue; H.264, so colours are snapped) and a
    style mask with only red: the style goes to the left half of every frame."""
    mask_clip = tmp_path / "mask.mp4"
    ff("-f", "lavfi", "-i", "color=c=red:s=16x24:r=25", "-f", "lavfi", "-i", "color=c=blue:s=16x24:r=25",
       "-filter_complex", "hstack", "-frames:v", "6", "-c:v", "libx264", "-pix_fmt", "yuv444p",
       "-preset", "ultrafast", mask_clip)
    style_img = iio.imread(style)
    style_mask = tmp_path / "style_mask.png"
    iio.imwrite(style_mask, np.broadcast_to(np.array([255, 0, 0], np.uint8), style_img.shape[:2] + (3,)).copy())
    out, frames_dir, plain_dir = tmp_path / "masked.mp4", tmp_path / "masked", tmp_path / "plain"
    args = [clip8, "--style", style, "--frames-per-device", "2", *FAST, "--iterations", "12", "--chunk", "6",
            "--video-iterations", "6", "--style-weight", "100"]
    code, err = run_main([*args, "-o", out, "--frames-dir", frames_dir, "--content-mask", mask_clip,
                          "--style-mask", style_mask], capsys)
    assert code == 0, err
    assert vio.probe(out).frame_count == 8
    code, err = run_main([*args, "-o", tmp_path / "plain.mp4", "--frames-dir", plain_dir], capsys)
    assert code == 0, err
    contents = np.stack([f for f in vio.iter_frames(clip8)])
    masked = np.stack([v for _, v in sorted(pngs(frames_dir).items())]).astype(np.float32) / 255
    plain = np.stack([v for _, v in sorted(pngs(plain_dir).items())]).astype(np.float32) / 255
    left, right = slice(0, 13), slice(19, 32)
    change = lambda x, cols: float(np.abs(x[:, :, cols] - contents[:, :, cols]).mean())  # noqa: E731
    assert change(masked, right) < 0.6 * change(masked, left), (change(masked, right), change(masked, left))
    assert change(masked, right) < 0.6 * change(plain, right), (change(masked, right), change(plain, right))


def test_a_work_directory_from_before_carry_existed_still_resumes():
    """--carry is the trained network's: the optimizer's fingerprint leaves it out, so a manifest
    written before the setting existed still matches."""
    import dataclasses as dc

    from jaxstyle.config import StyleConfig
    from jaxstyle.video.job import _config_record

    config = StyleConfig().resolved()
    before = dc.asdict(config)
    del before["video"]["carry"]
    assert _config_record(config) == before
