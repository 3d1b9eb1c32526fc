"""Tests for jaxstyle.video.flow: optical flow, warping, consistency masks and temporal losses."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle.video import flow as F
from jaxstyle.errors import UserError

from ..helpers import texture

H, W = 56, 64  # image size used throughout: small and fast
PAD = 8  # canvas margin for integer shifts made with np.roll


def grid(h: int = H, w: int = W) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return x, y


def integer_shift_pair(dx: int, dy: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with b = a moved by (dx, dy): rolled on a larger canvas and cropped, so new content enters."""
    cx, cy = grid(H + 2 * PAD, W + 2 * PAD)
    canvas = texture(cx - PAD, cy - PAD, seed)
    a = canvas[PAD : PAD + H, PAD : PAD + W]
    b = np.roll(canvas, (dy, dx), axis=(0, 1))[PAD : PAD + H, PAD : PAD + W]
    return a, b


def subpixel_shift_pair(dx: float, dy: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with b(x) = a(x - d), both sampled from the analytic texture."""
    x, y = grid()
    return texture(x, y, seed), texture(x - dx, y - dy, seed)


def constant_flow(dx: float, dy: float, h: int = H, w: int = W) -> np.ndarray:
    return np.broadcast_to(np.array([dx, dy], np.float32), (h, w, 2)).copy()


def interior(a: np.ndarray, margin: int = 8) -> np.ndarray:
    return a[..., margin:-margin, margin:-margin, :] if a.ndim >= 3 else a[margin:-margin, margin:-margin]


# Moving square over a static textured background.
SQ, SQ_X, SQ_Y, SQ_D = 16, 22, 18, (3, 2)


def square_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Frames a, b (square moved by SQ_D), true forward/backward flows, square masks in a and b."""
    x, y = grid()
    bg = texture(x, y, 1)
    patch = 1 - 0.8 * texture(x, y, 2)[:SQ, :SQ]
    dx, dy = SQ_D
    a, b = bg.copy(), bg.copy()
    a[SQ_Y : SQ_Y + SQ, SQ_X : SQ_X + SQ] = patch
    b[SQ_Y + dy : SQ_Y + dy + SQ, SQ_X + dx : SQ_X + dx + SQ] = patch
    in_a = np.zeros((H, W), bool)
    in_a[SQ_Y : SQ_Y + SQ, SQ_X : SQ_X + SQ] = True
    in_b = np.zeros((H, W), bool)
    in_b[SQ_Y + dy : SQ_Y + dy + SQ, SQ_X + dx : SQ_X + dx + SQ] = True
    fwd = np.where(in_a[..., None], np.float32([dx, dy]), np.float32(0)).astype(np.float32)
    bwd = np.where(in_b[..., None], np.float32([-dx, -dy]), np.float32(0)).astype(np.float32)
    return a, b, fwd, bwd, in_a, in_b


def dilate(mask: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(mask)
    padded = np.pad(mask, k)
    for dy in range(2 * k + 1):
        for dx in range(2 * k + 1):
            out |= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
    return out


# ----------------------------------------------------------------------------- optical flow


@pytest.mark.parametrize("method", ["dis", "farneback"])
@pytest.mark.parametrize("shift", [(3, -2), (1.5, -0.75)])
def test_flow_recovers_translation(method: str, shift: tuple[float, float]) -> None:
    dx, dy = shift
    if float(dx).is_integer():
        a, b = integer_shift_pair(int(dx), int(dy))
    else:
        a, b = subpixel_shift_pair(dx, dy)
    flow = F.compute_flow(a, b, method=method)
    assert flow.shape == (H, W, 2) and flow.dtype == np.float32
    inner = interior(flow)
    assert abs(np.median(inner[..., 0]) - dx) < 0.5
    assert abs(np.median(inner[..., 1]) - dy) < 0.5
    assert np.median(np.abs(inner - np.float32([dx, dy]))) < 0.5


@pytest.mark.parametrize("preset", ["ultrafast", "fast", "medium"])
def test_dis_presets(preset: str) -> None:
    a, b = integer_shift_pair(3, -2)
    flow = F.compute_flow(a, b, "dis", preset)
    assert np.median(np.abs(interior(flow) - np.float32([3, -2]))) < 0.5


def test_compute_flows_directions() -> None:
    x, y = grid()
    frames = np.stack([texture(x - 2 * t, y - t) for t in range(3)])  # moves by (+2, +1) per frame
    forward, backward = F.compute_flows(frames, "dis")
    assert forward.shape == backward.shape == (2, H, W, 2)
    assert forward.dtype == backward.dtype == np.float32
    for t in range(2):
        assert np.allclose(np.median(interior(forward[t]), axis=(0, 1)), [2, 1], atol=0.5)
        assert np.allclose(np.median(interior(backward[t]), axis=(0, 1)), [-2, -1], atol=0.5)
    np.testing.assert_array_equal(forward[1], F.compute_flow(frames[1], frames[2], "dis"))


def test_deepflow_availability() -> None:
    a, b = integer_shift_pair(3, -2)
    if F.deepflow_available():
        flow = F.compute_flow(a, b, "deepflow")
        assert np.median(np.abs(interior(flow) - np.float32([3, -2]))) < 0.5
    else:
        with pytest.raises(UserError, match="opencv-contrib-python-headless"):
            F.compute_flow(a, b, "deepflow")


def test_flow_user_errors() -> None:
    a, b = integer_shift_pair(1, 1)
    with pytest.raises(UserError, match="unknown optical flow method"):
        F.compute_flow(a, b, "lucas-kanade")
    with pytest.raises(UserError, match="unknown DIS preset"):
        F.compute_flow(a, b, "dis", "ultraslow")
    with pytest.raises(UserError, match="same size"):
        F.compute_flow(a, b[:-1])
    with pytest.raises(UserError, match="shape"):
        F.compute_flow(a[..., :2], b[..., :2])
    with pytest.raises(UserError, match="frame 1 has size"):
        F.compute_flows([a, b[:-1]])
    with pytest.raises(UserError, match="empty"):
        F.compute_flows([])


# ----------------------------------------------------------------------------- warping


def test_warp_integer_shift_is_exact() -> None:
    dx, dy = 3, -2
    a, b = integer_shift_pair(dx, dy)
    # b's pixel x came from a at x - d: backward flow (b -> a) is -d on b's grid.
    warped = np.asarray(F.warp(a, constant_flow(-dx, -dy)))
    assert warped.shape == a.shape and warped.dtype == np.float32
    assert np.abs(interior(warped) - interior(b)).max() < 1e-5
    # The entering band (left 3 columns, bottom 2 rows of b) is not predictable from a.
    assert np.abs(warped[:, :dx] - b[:, :dx]).max() > 1e-3


def test_warp_bilinear_and_clamping() -> None:
    x, y = grid(6, 7)
    ramp = np.stack([x, y, x + 2 * y], -1).astype(np.float32)
    # Bilinear interpolation is exact on linear functions.
    out = np.asarray(F.warp(ramp, constant_flow(0.25, -0.5, 6, 7)))
    expected = np.stack([x + 0.25, y - 0.5, x + 0.25 + 2 * (y - 0.5)], -1)
    np.testing.assert_allclose(out[1:, :-1], expected[1:, :-1], atol=1e-5)  # away from the clamped edges
    # Samples outside the image are clamped to the border.
    far = np.asarray(F.warp(ramp, constant_flow(100.0, -100.0, 6, 7)))
    np.testing.assert_allclose(far, np.broadcast_to(ramp[0, -1], far.shape))
    np.testing.assert_allclose(np.asarray(F.warp(ramp, np.zeros((6, 7, 2), np.float32))), ramp)


def test_warp_jit_and_grad() -> None:
    a, _ = subpixel_shift_pair(0, 0)
    rng = np.random.default_rng(0)
    flow = jnp.asarray(rng.normal(0, 2, (H, W, 2)).astype(np.float32))
    eager = F.warp(a, flow)
    jitted = jax.jit(F.warp)(a, flow)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), atol=1e-6)

    target = jnp.asarray(rng.uniform(size=(H, W, 3)).astype(np.float32))

    def loss(img: jax.Array, fl: jax.Array) -> jax.Array:
        return jnp.sum((F.warp(img, fl) - target) ** 2)

    g_img, g_flow = jax.jit(jax.grad(loss, argnums=(0, 1)))(jnp.asarray(a), flow)
    assert g_img.shape == a.shape and g_flow.shape == flow.shape
    assert bool(jnp.all(jnp.isfinite(g_img))) and bool(jnp.all(jnp.isfinite(g_flow)))
    assert float(jnp.abs(g_img).sum()) > 0 and float(jnp.abs(g_flow).sum()) > 0
    # Bilinear weights sum to one, so d/dimage of sum(warp(image)) totals H*W*C.
    g_sum = jax.grad(lambda img: jnp.sum(F.warp(img, flow)))(jnp.asarray(a))
    assert float(g_sum.sum()) == pytest.approx(H * W * 3, rel=1e-5)


def test_warp_batched_equals_per_frame() -> None:
    rng = np.random.default_rng(1)
    images = rng.uniform(size=(3, H, W, 3)).astype(np.float32)
    flows = rng.normal(0, 3, (3, H, W, 2)).astype(np.float32)
    per_frame = np.stack([np.asarray(F.warp(images[i], flows[i])) for i in range(3)])
    np.testing.assert_allclose(np.asarray(jax.vmap(F.warp)(images, flows)), per_frame, atol=1e-6)
    np.testing.assert_allclose(np.asarray(F.warp(images, flows)), per_frame, atol=1e-6)
    # One image, several flows: leading axes broadcast.
    one = np.stack([np.asarray(F.warp(images[0], flows[i])) for i in range(3)])
    np.testing.assert_allclose(np.asarray(F.warp(images[0], flows)), one, atol=1e-6)


# ----------------------------------------------------------------------------- consistency masks


def test_mask_translation_marks_entering_band() -> None:
    dx, dy = 3, -2
    mask = np.asarray(F.consistency_mask(constant_flow(dx, dy), constant_flow(-dx, -dy)))
    assert mask.shape == (H, W) and mask.dtype == np.float32
    expected = np.ones((H, W), np.float32)
    expected[:, :dx] = 0  # entered from the left
    expected[H + dy :, :] = 0  # entered from the bottom
    np.testing.assert_array_equal(mask, expected)
    # Without the bounds check a pure translation is consistent everywhere.
    unbounded = F.consistency_mask(constant_flow(dx, dy), constant_flow(-dx, -dy), check_bounds=False)
    assert np.asarray(unbounded).min() == 1

    # With DIS flows, the entering band is still caught and the rest is mostly reliable.
    a, b = integer_shift_pair(dx, dy)
    mask = np.asarray(F.consistency_mask(F.compute_flow(a, b), F.compute_flow(b, a)))
    assert mask[:, :dx].mean() < 0.3 and mask[H + dy :, :].mean() < 0.3
    assert interior(mask, 6).mean() > 0.9


def test_mask_moving_square_true_flow() -> None:
    _, _, fwd, bwd, in_a, in_b = square_scene()
    mask = np.asarray(jax.jit(F.consistency_mask)(fwd, bwd))
    uncovered = in_a & ~in_b  # background in b that the square covered in a
    assert uncovered.sum() > 50
    assert mask[uncovered].max() == 0
    assert mask[~dilate(in_a | in_b, 2)].min() == 1  # static background
    assert mask[in_b & ~dilate(~in_b, 2)].min() == 1  # inside the square (consistent motion)
    assert set(np.unique(mask)) == {0.0, 1.0}


def test_mask_moving_square_dis_flow() -> None:
    a, b, _, _, in_a, in_b = square_scene()
    forward, backward = F.compute_flows(np.stack([a, b]), "dis")
    mask = np.asarray(F.consistency_mask(forward[0], backward[0]))
    uncovered = in_a & ~in_b
    assert 1 - mask[uncovered].mean() > 0.6  # most of the disoccluded region is unreliable
    assert mask[~dilate(in_a | in_b, 4)].mean() > 0.7  # most of the static background is reliable
    assert mask[in_b & ~dilate(~in_b, 2)].mean() > 0.8


def test_mask_batched() -> None:
    _, _, fwd, bwd, _, _ = square_scene()
    fwds = np.stack([fwd, constant_flow(1, 2)])
    bwds = np.stack([bwd, constant_flow(-1, -2)])
    batched = np.asarray(F.consistency_mask(fwds, bwds))
    assert batched.shape == (2, H, W)
    for i in range(2):
        np.testing.assert_array_equal(batched[i], np.asarray(F.consistency_mask(fwds[i], bwds[i])))
    np.testing.assert_array_equal(np.asarray(jax.vmap(F.consistency_mask)(fwds, bwds)), batched)


# ----------------------------------------------------------------------------- temporal losses


def test_temporal_loss() -> None:
    a, b, fwd, bwd, _, _ = square_scene()
    mask = F.consistency_mask(fwd, bwd)
    warped = F.warp(a, bwd)
    assert float(F.temporal_loss(b, warped, mask)) < 1e-10  # perfect warp on reliable pixels
    assert float(F.temporal_loss(b, warped, jnp.ones((H, W)))) > 1e-3  # disocclusions are wrong
    noisy = b + 0.1 * np.random.default_rng(0).normal(size=b.shape).astype(np.float32)
    assert float(F.temporal_loss(noisy, warped, mask)) > 1e-3
    # Exact value: (1/D) * sum(mask * diff^2) with D = H*W*3.
    half = np.zeros((H, W), np.float32)
    half[: H // 2] = 1
    value = F.temporal_loss(jnp.ones((H, W, 3)), jnp.zeros((H, W, 3)), half)
    assert float(value) == pytest.approx(0.5)
    grad = jax.grad(lambda o: F.temporal_loss(o, warped, mask))(jnp.asarray(noisy))
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_stability_error() -> None:
    x, y = grid()
    frames = np.stack([texture(x - 2 * t, y + t) for t in range(4)])
    forward, backward = F.compute_flows(frames, "dis")
    masks = F.consistency_mask(forward, backward)
    assert masks.shape == (3, H, W)
    # A sequence in which each frame is exactly the warp of its predecessor.
    outs = [jnp.asarray(frames[0])]
    for t in range(3):
        outs.append(F.warp(outs[-1], backward[t]))
    outputs = jnp.stack(outs)
    stable = jax.jit(F.stability_error)(outputs, backward, masks)
    assert float(stable) < 1e-6
    # Independent noise frames are very unstable.
    noise = np.random.default_rng(0).uniform(size=(4, H, W, 3)).astype(np.float32)
    pairs = F.pair_temporal_errors(noise, backward, masks)
    assert pairs.shape == (3,)
    assert bool(jnp.all(pairs > 0.05))
    unstable = F.stability_error(noise, backward, masks)
    assert float(unstable) > 0.25
    assert float(unstable) == pytest.approx(float(jnp.sqrt(jnp.mean(pairs))), rel=1e-6)


# ----------------------------------------------------------------------------- long-term weights


def test_long_term_masks_closest_first() -> None:
    c1 = [1, 0, 0, 1, 0]
    c2 = [1, 1, 0, 0, 0]
    c4 = [1, 1, 1, 1, 0]
    masks = np.array([c1, c2, c4], np.float32)[:, None, :]  # [J=3, H=1, W=5]
    weights = np.asarray(F.long_term_masks(masks))
    np.testing.assert_array_equal(weights[:, 0], [[1, 0, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0]])

    # Property: each pixel goes to the closest reliable frame, and nowhere else.
    rand = (np.random.default_rng(0).uniform(size=(3, H, W)) > 0.5).astype(np.float32)
    w = np.asarray(jax.jit(F.long_term_masks)(rand))
    any_reliable = rand.max(0) > 0
    np.testing.assert_array_equal(w.sum(0), any_reliable.astype(np.float32))
    first = np.argmax(rand > 0, axis=0)
    np.testing.assert_array_equal(np.argmax(w, axis=0)[any_reliable], first[any_reliable])


def test_long_term_weights() -> None:
    ones = np.ones((H, W), np.float32)
    zeros = np.zeros((H, W), np.float32)
    used, weights = F.long_term_weights(3, (4, 1, 2), masks={1: zeros, 2: ones})
    assert used == (1, 2)
    assert weights.shape == (2, H, W)
    assert float(weights[0].max()) == 0 and float(weights[1].min()) == 1
    used, weights = F.long_term_weights(0, masks={})
    assert used == () and weights.shape[0] == 0
    with pytest.raises(ValueError, match="no mask"):
        F.long_term_weights(5, (1, 2), masks={1: ones})


# ----------------------------------------------------------------------------- flow cache


def test_flow_cache(tmp_path, monkeypatch) -> None:
    x, y = grid()
    frames = np.stack([texture(x - t, y, 3) for t in range(3)])
    calls: list[tuple[str, str]] = []
    real = F.compute_flows

    def counting(frames_, method="dis", preset="medium"):
        calls.append((method, preset))
        return real(frames_, method, preset)

    monkeypatch.setattr(F, "compute_flows", counting)
    cache = F.FlowCache(tmp_path / "flows")
    fwd1, bwd1 = cache.get(frames, "dis", "fast")
    assert len(calls) == 1
    assert cache.path(frames, "dis", "fast").is_file()
    fwd2, bwd2 = cache.get(frames, "dis", "fast")
    assert len(calls) == 1  # served from disk
    np.testing.assert_array_equal(fwd1, fwd2)
    np.testing.assert_array_equal(bwd1, bwd2)
    # A fresh cache object on the same directory also hits.
    fwd3, _ = F.FlowCache(tmp_path / "flows").get(frames.copy(), "dis", "fast")
    assert len(calls) == 1
    np.testing.assert_array_equal(fwd1, fwd3)
    # Other presets, methods or frames are different entries.
    cache.get(frames, "dis", "medium")
    cache.get(frames, "farneback")
    changed = frames.copy()
    changed[1, 0, 0, 0] += 0.01
    cache.get(changed, "dis", "fast")
    assert len(calls) == 4
    # A corrupt entry is recomputed rather than trusted.
    cache.path(frames, "dis", "fast").write_bytes(b"not an npz")
    fwd4, _ = cache.get(frames, "dis", "fast")
    assert len(calls) == 5
    np.testing.assert_array_equal(fwd1, fwd4)
    assert not list((tmp_path / "flows").glob(".tmp-*"))
