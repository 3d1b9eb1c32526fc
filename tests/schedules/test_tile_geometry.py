"""Tiling: plan coverage/overlap/stable count, exact round trip, projective stitching, seams."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle.schedules import tile_geometry as T

SHIFTS = [(0, 0), (3, 5), (7.5, -2), (-13, 100), (1000, 1)]
CASES = [  # height, width, tile, overlap
    (50, 37, 16, 4),
    (17, 17, 16, 3),        # just larger than one tile
    (9, 40, 16, 4),         # canvas smaller than the tile in one dimension
    (5, 6, 16, 2),          # canvas smaller than the tile in both
    (64, 64, 16, 0),        # no overlap requested
    (101, 77, (24, 20), 5),  # rectangular tiles, odd sizes
]


def _starts(plan):
    return plan[:, 1, 2].astype(int), plan[:, 0, 2].astype(int)


@pytest.mark.parametrize("height,width,tile,overlap", CASES)
def test_plan_covers_with_overlap_and_stable_count(height, width, tile, overlap):
    th, tw = T.tile_shape(height, width, tile)
    assert th <= height and tw <= width
    count = T.tile_count(height, width, tile, overlap)
    for shift in SHIFTS:
        plan = T.plan_tiles(height, width, tile, overlap, shift)
        assert plan.shape == (count, 3, 3) and plan.dtype == np.float32
        assert T.is_integer_translation(plan)
        ys, xs = _starts(plan)
        assert ys.min() == 0 and xs.min() == 0                          # flush with top/left
        assert (ys + th).max() == height and (xs + tw).max() == width   # flush with bottom/right
        assert (ys >= 0).all() and (xs >= 0).all() and (ys + th <= height).all() and (xs + tw <= width).all()
        hits = np.zeros((height, width), int)
        for y, x in zip(ys, xs):
            hits[y:y + th, x:x + tw] += 1
        assert hits.min() >= 1
        # neighbouring tiles along each axis overlap by >= overlap (unless one tile spans it)
        for starts, t, length in ((np.unique(ys), th, height), (np.unique(xs), tw, width)):
            if t < length:
                assert (np.diff(starts) <= t - overlap).all(), (shift, starts)
            else:
                assert starts.tolist() == [0]


def test_shift_moves_interior_seams_and_keeps_shapes():
    tile, overlap = 16, 4
    base = T.plan_tiles(60, 60, tile, overlap)
    moved = T.plan_tiles(60, 60, tile, overlap, shift=(5, 5))
    assert base.shape == moved.shape
    seams = lambda p: set(np.unique(p[:, 1, 2]).astype(int)) - {0, 60 - tile}  # noqa: E731
    assert seams(base) and seams(moved) and not seams(base) & seams(moved)
    # the grid is periodic in the shift: shifting by a whole stride gives the same plan
    stride = (60 - tile) / math.ceil((60 - tile) / (tile - overlap))
    assert T.tile_strides(60, 60, tile, overlap) == (stride, stride)
    assert T.tile_strides(10, 60, tile, overlap) == (0.0, stride)
    np.testing.assert_array_equal(T.plan_tiles(60, 60, tile, overlap, (stride, 2 * stride)), base)


def test_plan_rejects_bad_arguments():
    with pytest.raises(ValueError):
        T.plan_tiles(40, 40, 16, 16)
    with pytest.raises(ValueError):
        T.plan_tiles(40, 40, 16, -1)
    with pytest.raises(ValueError):
        T.plan_tiles(40, 40, 0, 2)


@pytest.mark.parametrize("method", ["translate", "general", "auto"])
def test_translation_round_trip_is_exact(method):
    rng = np.random.default_rng(0)
    canvas = rng.random((45, 38, 3)).astype(np.float32)
    for shift in [(0, 0), (4, 9)]:
        plan = T.plan_tiles(45, 38, 16, 5, shift)
        th, tw = T.tile_shape(45, 38, 16)
        tiles = np.asarray(T.extract_tiles(canvas, plan, (th, tw)))
        for tile, (y, x) in zip(tiles, zip(*_starts(plan))):
            np.testing.assert_array_equal(tile, canvas[y:y + th, x:x + tw])   # bit-exact slices
        w = T.feather_weights((th, tw), 5)
        out, cov = T.stitch(tiles, plan, (45, 38), w, method=method, return_coverage=True)
        np.testing.assert_allclose(np.asarray(out), canvas, atol=1e-6, rtol=0)
        assert float(cov.min()) > 0


def _perturbed_plan(height, width, tile, overlap, angle_deg, persp):
    """Grid plan with each tile rotated about its centre and given a small perspective."""
    th, tw = T.tile_shape(height, width, tile)
    c = np.array([[1, 0, (tw - 1) / 2], [0, 1, (th - 1) / 2], [0, 0, 1]], np.float64)
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    per = np.array([[1, 0, 0], [0, 1, 0], [persp, -persp, 1]])
    local = c @ rot @ per @ np.linalg.inv(c)
    return np.stack([h @ local for h in T.plan_tiles(height, width, tile, overlap).astype(np.float64)]
                    ).astype(np.float32), (th, tw)


def _smooth_canvas(height, width):
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([0.5 + 0.4 * np.sin(0.11 * x + 0.05 * y), 0.5 + 0.3 * np.cos(0.07 * y - 0.03 * x),
                     0.1 + 0.015 * x + 0.008 * y], -1).astype(np.float32)


def test_projective_stitch_reproduces_smooth_canvas():
    height, width = 48, 40
    plan, (th, tw) = _perturbed_plan(height, width, 16, 6, angle_deg=8.0, persp=2e-3)
    assert not T.is_integer_translation(plan)
    canvas = _smooth_canvas(height, width)
    tiles = T.extract_tiles(canvas, plan, (th, tw))
    w = T.feather_weights((th, tw), 6)
    out, cov = T.stitch(tiles, plan, (height, width), w, return_coverage=True)   # auto -> general
    out, cov = np.asarray(out), np.asarray(cov)
    m = 3
    interior = np.zeros_like(cov, bool)
    interior[m:-m, m:-m] = True
    assert (cov[interior] > 1e-3).all()
    err = np.abs(out - canvas)[interior]
    assert err.max() < 1e-2, err.max()
    # not a trivial pass: ignoring the homography (plain grid placement) is visibly wrong
    grid = T.plan_tiles(height, width, 16, 6)
    wrong = np.asarray(T.stitch(tiles, grid, (height, width), w, method="general", window=(height, width)))
    assert np.abs(wrong - canvas)[interior].max() > 4 * err.max()
    # a full-canvas window (what a traced call uses) gives the same result as the tight one
    full = np.asarray(T.stitch(tiles, plan, (height, width), w, method="general", window=(height, width)))
    np.testing.assert_allclose(full, out, atol=1e-6)


def test_projective_footprint_and_uncovered_pixels():
    # one tile rotated by 45 degrees about its centre in the middle of a larger canvas
    th = tw = 10
    c = np.array([[1, 0, 4.5], [0, 1, 4.5], [0, 0, 1]])
    a = np.pi / 4
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    h = (np.array([[1, 0, 10], [0, 1, 10], [0, 0, 1]]) @ c @ rot @ np.linalg.inv(c))[None].astype(np.float32)
    tiles = np.full((1, th, tw, 2), 0.7, np.float32)
    out, cov = T.stitch(tiles, h, (30, 30), return_coverage=True)
    out, cov = np.asarray(out), np.asarray(cov)
    assert cov[14, 14] > 0.99 and cov[0, 0] == 0 and cov[14, 5] == 0 and cov[3, 14] == 0
    np.testing.assert_allclose(out[cov > 1e-8], 0.7, atol=1e-5)
    assert (out[cov <= 1e-8] == 0).all()
    # a rotated square covers ~ its area (100 px) plus a one-pixel fade
    assert 95 < cov.sum() < 140
    # H and -H are the same projective placement
    np.testing.assert_allclose(np.asarray(T.stitch(tiles, -h, (30, 30))), out, atol=1e-6)


def test_feathered_seams_have_no_steps():
    height, width, tile, overlap = 60, 45, 20, 8
    th, tw = T.tile_shape(height, width, tile)
    for shift in [(0, 0), (5, 3)]:
        plan = T.plan_tiles(height, width, tile, overlap, shift)
        offsets = np.random.default_rng(1).random(len(plan)).astype(np.float32)
        tiles = np.broadcast_to(offsets[:, None, None, None], (len(plan), th, tw, 1))
        spread = np.ptp(offsets)

        def max_step(weights):
            out = np.asarray(T.stitch(tiles, plan, (height, width), weights))[..., 0]
            return max(np.abs(np.diff(out, axis=0)).max(), np.abs(np.diff(out, axis=1)).max())

        # sin^2 cross-fade: slope <= pi / (2 overlap) of the offset difference
        assert max_step(T.feather_weights((th, tw), overlap)) <= 1.6 * spread / overlap
        assert max_step(None) > 2.5 * spread / overlap   # unfeathered blending does step


def test_feather_weights_positive_and_shaped():
    w = T.feather_weights((12, 20), 5)
    assert w.shape == (12, 20) and w.dtype == np.float32
    assert w.min() > 0 and w.max() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w[::-1, ::-1])
    assert w[0, 0] < w[1, 1] < w[3, 3] < w[6, 10]
    assert (T.feather_weights((4, 4), 0) == 1).all()
    # two ramps overlapping by exactly `overlap` cross-fade to a constant sum
    r = T.feather_weights((20, 10), 5)[10]
    np.testing.assert_allclose(r[5:] + r[:5], 1.001, atol=1e-6)


def test_jit_traces_once_across_shifts_and_is_differentiable():
    height, width, tile, overlap = 40, 33, 16, 4
    th, tw = T.tile_shape(height, width, tile)
    w = T.feather_weights((th, tw), overlap)
    traces = []

    @jax.jit
    def round_trip(canvas, plan):
        traces.append(1)
        tiles = T.extract_tiles(canvas, plan, (th, tw))
        return T.stitch(tiles, plan, (height, width), w, method="translate")

    canvas = np.random.default_rng(2).random((height, width, 3)).astype(np.float32)
    for shift in [(0, 0), (3, 1), (6, 7), (2.5, 9)]:
        out = round_trip(canvas, T.plan_tiles(height, width, tile, overlap, shift))
        np.testing.assert_allclose(np.asarray(out), canvas, atol=1e-6)
    assert len(traces) == 1

    plan = T.plan_tiles(height, width, tile, overlap)
    tiles = T.extract_tiles(canvas, plan, (th, tw))
    g = jax.grad(lambda t: jnp.sum(T.stitch(t, plan, (height, width), w, method="translate") ** 2))(tiles)
    assert g.shape == tiles.shape and bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0


@pytest.mark.parametrize("hw,tile,overlap", [((384, 512), 256, 32), ((2160, 3840), 1024, 64), ((77, 128), 64, 16),
                                             ((50, 40), 64, 8), ((101, 333), 48, 12)])
def test_minimal_plan_covers_with_overlap(hw, tile, overlap):
    h, w = hw
    th, tw = T.tile_shape(h, w, tile)
    counts = set()
    xs_by_phase = []
    for phase in (-1.0, -0.8, 0.0, 0.3, 0.8, 1.0):
        homs = T.plan_tiles_minimal(h, w, tile, overlap, phase)
        counts.add(len(homs))
        cover = np.zeros((h, w), int)
        ys = sorted(set(int(m[1, 2]) for m in homs))
        xs = sorted(set(int(m[0, 2]) for m in homs))
        xs_by_phase.append(xs)
        for m in homs:
            x0, y0 = int(m[0, 2]), int(m[1, 2])
            assert 0 <= x0 <= w - tw and 0 <= y0 <= h - th
            cover[y0:y0 + th, x0:x0 + tw] += 1
        assert cover.min() >= 1
        for starts, t in ((ys, th), (xs, tw)):
            assert all(b - a <= t - overlap for a, b in zip(starts, starts[1:])), (starts, t)
    assert counts == {T.minimal_tile_count(h, w, tile, overlap)}
    if len(xs_by_phase[0]) > 2 and xs_by_phase[1] != xs_by_phase[4]:
        assert xs_by_phase[1][1] < xs_by_phase[4][1]  # interior seams move between rounds
    # fewest tiles: one less per axis would not cover with the overlap
    n = math.ceil((w - tw) / (tw - overlap)) + 1 if tw < w else 1
    assert len(xs_by_phase[0]) == n
