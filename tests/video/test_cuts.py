"""Scene cuts: found at the join of two real clips and nowhere in the clips themselves; at a cut a
lane restarts as a first frame (the same picture as stylizing that frame alone), and the stability
measure leaves the pair across it out."""

import json
import subprocess

import imageio.v3 as iio
import numpy as np
import pytest

import jaxstyle
from jaxstyle.config import StyleConfig, VideoConfig
from jaxstyle.imaging import target_size, to_uint8
from jaxstyle.io import video as vio
from jaxstyle.io.images import read_image
from jaxstyle.video.cuts import Cuts, detect_cuts, is_cut
from jaxstyle.video.flow import FlowCache
from jaxstyle.video.lanes import plan_lanes, snap_to_cuts
from jaxstyle.video.source import VideoSource

from ..helpers import FF, MEDIA, SHALLOW, SHALLOW_LAYERS, run_main

FAST = ["--iterations", "2", "--coarse-iterations", "1", "--video-iterations", "2", "--start-size", "0",
        "--chunk", "2", "--quiet", "--network", "vgg16", *SHALLOW]


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    """8 frames of realshort.mp4, then 8 of carphone.mp4 (scaled to the same size): one cut, at 8."""
    path = tmp_path_factory.mktemp("cuts") / "joined.mp4"
    graph = ("[0:v]trim=end_frame=8,setpts=PTS-STARTPTS,fps=30[a];"
             "[1:v]trim=end_frame=8,setpts=PTS-STARTPTS,scale=320:240,setsar=1,fps=30[b];[a][b]concat=n=2:v=1[v]")
    subprocess.run([FF, "-hide_banner", "-loglevel", "error", "-y", "-i", str(MEDIA / "video" / "realshort.mp4"),
                    "-i", str(MEDIA / "video" / "carphone.mp4"), "-filter_complex", graph, "-map", "[v]",
                    "-c:v", "libx264", "-pix_fmt", "yuv444p", "-preset", "ultrafast", str(path)], check=True)
    return path


def _cuts(path, tmp_path, size=64):
    source = VideoSource(path, [MEDIA / "styles" / "starry_night.jpg"], StyleConfig(size=size).resolved())
    return detect_cuts(source, FlowCache(tmp_path / "flows"), "dis"), source


def test_the_join_is_the_only_cut(joined, tmp_path):
    cuts, _ = _cuts(joined, tmp_path)
    assert cuts.frames == [8], (cuts.reliable, cuts.histogram)
    assert cuts.reliable[7] < 0.1 and len(cuts.reliable) == 15
    for name in ("realshort", "carphone", "bigbuckbunny"):
        found, _ = _cuts(MEDIA / "video" / f"{name}.mp4", tmp_path)
        assert found.frames == [], (name, min(found.reliable), min(found.histogram))
    assert not is_cut(0.84, 0.957) and is_cut(0.02, 0.5) and is_cut(0.45, 0.6) and not is_cut(0.45, 0.9)
    assert Cuts([12]).between(11, 12) and not Cuts([12]).between(12, 13) and Cuts([12]).between(13, 10)


def test_a_lane_restarts_at_the_cut(capsys, joined, tmp_path, vgg16):
    style = MEDIA / "styles" / "starry_night.jpg"
    base = [joined, "--style", style, "--size", "48", "--sequential", "--keep-work", *FAST]
    code, err = run_main([*base, "--passes", "2", "--work-dir", tmp_path / "work", "--metrics-json",
                          tmp_path / "m.json", "-o", tmp_path / "out.mp4"], capsys)
    assert code == 0, err
    assert "scene cuts before frames 8" in err
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["scene_cuts"] == [8] and metrics["restarts"] == 1
    assert len(metrics["pair_temporal_errors"]) == 14  # 15 pairs, less the one across the cut
    # the frame after the cut is a first frame: the same as that content frame stylized alone
    info = vio.probe(joined)
    h, w = target_size(info.height, info.width, 48)
    frame = list(vio.iter_frames(joined, info, size=(w, h)))[8]
    cfg = StyleConfig(size=48, iterations=2, coarse_iterations=1, start_size=0, chunk=2, network="vgg16",
                      **SHALLOW_LAYERS)
    alone = jaxstyle.stylize_frames(frame[None], [read_image(style)], cfg, network=vgg16)
    lane = iio.imread(tmp_path / "work" / "frames" / "000008_000.png")
    assert np.abs(lane.astype(int) - to_uint8(alone.images[0]).astype(int)).max() <= 1
    # without detection the lane warps across it: frame 8 starts from frame 7's output
    code, err = run_main([*base, "--no-scene-cuts", "--duration", "0.32", "--work-dir", tmp_path / "plain",
                          "-o", tmp_path / "plain.mp4"], capsys)
    assert code == 0, err
    plain = iio.imread(tmp_path / "plain" / "frames" / "000008_000.png")
    assert np.abs(plain.astype(int) - lane.astype(int)).mean() > 1.0


def test_joins_move_onto_nearby_cuts_and_no_lane_gets_longer():
    lanes = plan_lanes(72, 4, 8)  # joins at 24, 40, 56; warm-ups from 16, 32, 48
    snapped = snap_to_cuts(lanes, Cuts([36, 63]))
    # 36 lies in lane 2's warm-up (32..40): the join moves there and lane 2 starts afresh at the cut;
    # 63 is in lane 3's own frames, past where lane 2 could reach without growing: left to a restart
    assert [(lane.start, lane.core_start, lane.stop) for lane in snapped] == \
        [(0, 0, 24), (16, 24, 36), (36, 36, 56), (48, 56, 72)]
    assert snap_to_cuts(lanes, Cuts()) == lanes and snap_to_cuts(lanes[:1], Cuts([36])) == lanes[:1]
    rng = np.random.default_rng(0)
    for _ in range(300):
        n, count, overlap = int(rng.integers(8, 120)), int(rng.integers(2, 9)), int(rng.integers(0, 10))
        lanes = plan_lanes(n, count, overlap)
        cuts = Cuts(sorted(set(rng.integers(1, n, size=int(rng.integers(0, 5))).tolist())))
        snapped = snap_to_cuts(lanes, cuts)
        assert len(snapped) == len(lanes) and snapped[0].start == 0 and snapped[-1].stop == n
        assert max(lane.length for lane in snapped) <= max(lane.length for lane in lanes)
        assert sum(lane.length for lane in snapped) <= sum(lane.length for lane in lanes)
        for a, b in zip(snapped, snapped[1:]):
            assert b.core_start == a.stop and a.core_start < a.stop and b.start <= b.core_start
            if b.start == b.core_start and b.start != [x for x in lanes if x.index == b.index][0].start:
                assert b.start in cuts  # a join that moved sits on a cut, with no warm-up
        owned = [t for lane in snapped for t in range(lane.core_start, lane.stop)]
        assert owned == list(range(n))


def test_lanes_join_at_the_cut(capsys, joined, tmp_path):
    """Lanes on the joined clip: the lane whose join is the cut (8) drops its warm-up (5..7) and starts
    there afresh; no lane restarts at the cut."""
    style = MEDIA / "styles" / "starry_night.jpg"
    code, err = run_main([joined, "--style", style, "--size", "48", "--frames-per-device", "2",
                          *FAST, "--metrics-json", tmp_path / "m.json", "-o", tmp_path / "out.mp4"], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "m.json").read_text())
    lanes = [(lane["start"], lane["core_start"], lane["stop"]) for lane in metrics["lanes"]]
    planned = [(lane.start, lane.core_start, lane.stop) for lane in plan_lanes(16, len(lanes), VideoConfig().overlap)]
    assert len(lanes) == 4 and planned[2] == (5, 8, 12) and lanes == [*planned[:2], (8, 8, 12), planned[3]]
    assert metrics["restarts"] == 0 and metrics["lane_frames_computed"] == 22  # planned: 25
    assert len(metrics["pair_temporal_errors"]) == 14
