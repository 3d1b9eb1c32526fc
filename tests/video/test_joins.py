"""Lane joins (jaxstyle.video.joins): the later lane takes over over ``--fade`` frames, measured in
the overlap and carried by the content's flow past it; a cut stops the carry; ``--fade`` no longer
than the overlap is the plain cross-fade."""

import numpy as np
import pytest

from jaxstyle.imaging import from_uint8, to_uint8
from jaxstyle.video.assemble import StabilityMeter
from jaxstyle.video.cuts import Cuts
from jaxstyle.video.flow import FlowCache
from jaxstyle.video.joins import LaneJoiner, join_weight
from jaxstyle.video.lanes import Lane, plan_lanes
from jaxstyle.video.workdir import WorkDir

from ..helpers import texture

H, W = 40, 56
U8 = 1 / 255 + 1e-6


def _scene(seed: int, h: int, w: int) -> np.ndarray:
    """A smooth texture of h x w px that DIS can follow."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return texture(x, y, seed, extent=(w, h))


def _work(tmp_path, lanes, frame_of) -> WorkDir:
    """A work directory holding every lane's frames: ``frame_of(t, lane index)``."""
    work = WorkDir(tmp_path / "work")
    for lane in lanes:
        for t in range(lane.start, lane.stop):
            work.save_png(work.frame_path(t, lane.index), to_uint8(frame_of(t, lane.index)))
    return work


def _join(work, lanes, contents, fade, tmp_path, cuts=None) -> list[np.ndarray]:
    joiner = LaneJoiner(work, lanes, FlowCache(tmp_path / "flows"), "dis", cuts, fade)
    return [from_uint8(joiner.frame(t, c)) for t, c in enumerate(contents)]


@pytest.fixture(scope="module")
def still():
    """A still shot: 20 identical frames, two lanes overlapping by 4 (lane 1 starts at frame 8)."""
    lanes = [Lane(0, 0, 0, 12), Lane(1, 8, 12, 20)]
    return lanes, [_scene(0, H, W)] * 20


@pytest.mark.parametrize("fade", [0, 4, 9])
def test_still_shot_fades_linearly_over_fade_frames(still, fade, tmp_path):
    """Lane 0 paints 0.25, lane 1 0.75: the output is 0.75 - 0.5 (1 - r), r rising linearly from lane
    1's first frame over max(fade, overlap) + 1 frames; a fade no longer than the overlap is the
    cross-fade (lane 1 alone from its own frames on)."""
    lanes, contents = still
    work = _work(tmp_path, lanes, lambda t, i: np.full((H, W, 3), 0.25 if i == 0 else 0.75, np.float32))
    out = _join(work, lanes, contents, fade, tmp_path)
    length = max(fade, 4)
    for t, frame in enumerate(out):
        r = 0.0 if t < 8 else min(1.0, (t - 8 + 1) / (length + 1))
        assert join_weight(t, lanes[1], fade) == pytest.approx(r) or t < 8
        np.testing.assert_allclose(frame, 0.75 - 0.5 * (1 - r), atol=U8, err_msg=f"frame {t}, fade {fade}")
    assert np.array_equal(out[12], from_uint8(work.load_png(work.frame_path(12, 1)))) == (fade <= 4)


def test_a_cut_stops_the_carry(still, tmp_path):
    """From a scene cut on, the later lane alone (no difference carried across it)."""
    lanes, contents = still
    work = _work(tmp_path, lanes, lambda t, i: np.full((H, W, 3), 0.25 if i == 0 else 0.75, np.float32))
    out = _join(work, lanes, contents, 9, tmp_path, Cuts(frames=[14]))
    np.testing.assert_allclose(out[13], 0.75 - 0.5 * (1 - 6 / 10), atol=U8)
    for t in range(14, 20):
        np.testing.assert_allclose(out[t], 0.75, atol=U8)


def test_no_overlap_carries_the_previous_output(still, tmp_path):
    """``--overlap 0``: the difference is the previous output warped onto the later lane's first frame."""
    _, contents = still
    lanes = plan_lanes(20, 2, 0)
    assert lanes[1].start == lanes[1].core_start
    s = lanes[1].start
    work = _work(tmp_path, lanes, lambda t, i: np.full((H, W, 3), 0.25 if i == 0 else 0.75, np.float32))
    hard = _join(work, lanes, contents, 0, tmp_path)
    np.testing.assert_allclose(hard[s], 0.75, atol=U8)
    soft = _join(work, lanes, contents, 5, tmp_path)
    for t in range(s, s + 7):
        np.testing.assert_allclose(soft[t], 0.75 - 0.5 * (1 - min(1, (t - s + 1) / 6)), atol=U8)


def test_carried_difference_follows_the_motion(tmp_path):
    """A camera pan (3 px per frame): lane 1 differs from lane 0 by a pattern fixed to the scene. The
    carried difference moves with it, so a longer fade is steadier (e_stab) than the cross-fade,
    and steadier than carrying the difference without the flow would be."""
    n, step = 24, 3
    scene, pattern = _scene(1, H, W + step * n), _scene(2, H, W + step * n) - 0.5
    contents = [scene[:, step * t:step * t + W] for t in range(n)]
    lanes = [Lane(0, 0, 0, 12), Lane(1, 8, 12, n)]
    work = _work(tmp_path, lanes, lambda t, i: np.clip(
        0.2 + 0.6 * contents[t] + (0.3 * pattern[:, step * t:step * t + W] if i else 0), 0, 1))

    def e_stab(frames):
        meter = StabilityMeter(FlowCache(tmp_path / "flows"), "dis")
        for t, (frame, content) in enumerate(zip(frames, contents)):
            meter.add(t, frame, content)
        return meter.metrics()["stability_error"]

    crossfade, carried = e_stab(_join(work, lanes, contents, 0, tmp_path)), e_stab(_join(work, lanes, contents, 12, tmp_path))
    assert carried < 0.8 * crossfade, (carried, crossfade)
    # the same ramp with the last measured difference held in place instead of warped along the pan
    lane = {i: [from_uint8(work.load_png(work.frame_path(t, i))) if lanes[i].start <= t < lanes[i].stop else None
                for t in range(n)] for i in (0, 1)}
    held = []
    for t in range(n):
        r = join_weight(t, lanes[1], 12)
        if t < 8:
            held.append(lane[0][t])
        else:
            difference = lane[0][min(t, 11)] - lane[1][min(t, 11)]
            held.append(np.clip(lane[1][t] + (1 - r) * difference, 0, 1))
    assert carried < 0.9 * e_stab(held), (carried, e_stab(held))


def test_an_interrupted_frame_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    """Ctrl-C while a frame PNG is written (into the work directory or --frames-dir): the frame there
    before is kept and no temporary file is left beside it."""
    import imageio.v3 as iio

    from jaxstyle.video import workdir

    target = tmp_path / "frame_000003.png"
    WorkDir.save_png(target, np.zeros((4, 4, 3), np.uint8))
    before = target.read_bytes()

    write = iio.imwrite

    def interrupted(path, image, **kw):
        write(path, image, **kw)  # the temporary file is written, then the interrupt comes
        raise KeyboardInterrupt

    monkeypatch.setattr(workdir.iio, "imwrite", interrupted)
    with pytest.raises(KeyboardInterrupt):
        WorkDir.save_png(target, np.full((4, 4, 3), 255, np.uint8))
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [target.name]
