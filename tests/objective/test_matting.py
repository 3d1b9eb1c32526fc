"""Matrix-free matting Laplacian against a direct sparse construction (Levin's getLaplacian1)."""

import jax
import numpy as np
import pytest
import scipy.sparse as sp

from jaxstyle.io.images import read_image
from jaxstyle.objective import matting as M


def levin_laplacian(img, eps=M.DEFAULT_EPS, r=1):
    """Direct float64 sparse L, as Levin's getLaplacian1.m: full windows only, 9x9 blocks
    ``delta_ij - (1 + (I_i - mu)^T (Sigma + eps/|w| I)^{-1} (I_j - mu)) / |w|`` accumulated."""
    img = np.asarray(img, np.float64)
    h, w, c = img.shape
    n = (2 * r + 1) ** 2
    idx = np.arange(h * w).reshape(h, w)
    rows, cols, vals = [], [], []
    for y in range(r, h - r):
        for x in range(r, w - r):
            win = idx[y - r:y + r + 1, x - r:x + r + 1].ravel()
            d = img[y - r:y + r + 1, x - r:x + r + 1].reshape(n, c)
            d = d - d.mean(0)
            inv = np.linalg.inv(d.T @ d / n + eps / n * np.eye(c))
            block = np.eye(n) - (1 + d @ inv @ d.T) / n
            rows.append(np.repeat(win, n))
            cols.append(np.tile(win, n))
            vals.append(block.ravel())
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(h * w, h * w))


def sparse_apply(lap, x):
    x = np.asarray(x, np.float64)
    flat = x.reshape(lap.shape[0], -1)
    return (lap @ flat).reshape(x.shape)


def rel_err(got, ref):
    return np.linalg.norm(np.asarray(got, np.float64) - ref) / np.linalg.norm(ref)


@pytest.fixture(scope="module")
def photo(media):
    # a 32x48 crop of the Tuebingen photo (houses, windows, a few near-grey regions)
    return read_image(media / "content" / "tubingen.jpg")[500:532, 600:648]


@pytest.fixture(scope="module")
def photo_lap(photo):
    return levin_laplacian(photo)


@pytest.fixture(scope="module")
def photo_stats(photo):
    return precompute_jit(photo, EPS)


def _photo_batch(photo, seed):
    """Three images of the photo's shape: (photo-like, affine colour transform, noise)."""
    rng = np.random.default_rng(seed)
    a = np.array([[0.6, 0.2, -0.1], [0.1, 0.5, 0.3], [-0.2, 0.1, 0.9]], np.float32)
    affine = photo @ a.T + np.array([0.1, -0.05, 0.2], np.float32)
    noisy = np.clip(photo + 0.1 * rng.standard_normal(photo.shape), 0, 1)
    return np.stack([photo, affine, noisy]).astype(np.float32)


# jitted once per shape: eager dispatch of the many small ops is slower than compiling
apply_jit = jax.jit(M.laplacian_apply, static_argnames=("r",))
stats_apply_jit = jax.jit(lambda stats, x: stats.apply(x))
precompute_jit = jax.jit(M.precompute)
energy_jit = jax.jit(M.matting_energy)
EPS = M.DEFAULT_EPS


@pytest.mark.parametrize("eps", [1e-7, 1e-4])
def test_matches_sparse_on_random_image(eps):
    rng = np.random.default_rng(0)
    guide = rng.random((12, 10, 3)).astype(np.float32)
    lap = levin_laplacian(guide, eps)
    x = rng.standard_normal((12, 10, 3)).astype(np.float32)
    assert rel_err(apply_jit(guide, x, eps), sparse_apply(lap, x)) < 1e-4
    assert rel_err(apply_jit(guide, x, eps), sparse_apply(levin_laplacian(guide, 10 * eps), x)) > 1e-6
    x1 = x[..., 0]                                            # single channel (H, W)
    got = apply_jit(guide, x1, eps)
    assert got.shape == x1.shape and rel_err(got, sparse_apply(lap, x1)) < 1e-4


def test_matches_sparse_radius_2():
    rng = np.random.default_rng(1)
    guide = rng.random((9, 11, 3)).astype(np.float32)
    x = rng.standard_normal((9, 11, 2)).astype(np.float32)
    ref = sparse_apply(levin_laplacian(guide, 1e-5, r=2), x)
    assert rel_err(apply_jit(guide, x, 1e-5, r=2), ref) < 1e-4


def test_matches_sparse_on_real_photo(photo, photo_lap, photo_stats):
    """Real photos have near-collinear colours where eps = 1e-7 makes Delta ill-conditioned."""
    rng = np.random.default_rng(2)
    x = _photo_batch(photo, 2)
    x[0] = rng.standard_normal(photo.shape)
    got = np.asarray(stats_apply_jit(photo_stats, x))
    ref = [sparse_apply(photo_lap, v) for v in x]
    assert rel_err(got[0], ref[0]) < 1e-4           # white noise
    assert rel_err(got[2], ref[2]) < 1e-4           # noisy photo
    # an affine recolouring of the photo is (nearly) in the null space: compare absolutely
    assert np.abs(got[1] - ref[1]).max() < 1e-4 * np.abs(ref[0]).max()


def test_symmetric_psd_and_constants_in_null_space():
    rng = np.random.default_rng(3)
    guide = rng.random((12, 10, 3)).astype(np.float32)
    n = 12 * 10
    basis = np.eye(n, dtype=np.float32).reshape(n, 12, 10, 1)       # L from L @ e_i, batched
    lap = np.asarray(apply_jit(guide, basis, EPS), np.float64).reshape(n, n).T
    np.testing.assert_allclose(lap, lap.T, atol=1e-4 * np.abs(lap).max())
    eig = np.linalg.eigvalsh((lap + lap.T) / 2)
    assert eig.min() > -1e-4 * eig.max()
    # near-null space = affine functions of the colours (1, R, G, B); the rest is clearly positive
    assert eig[3] < 1e-4 * eig.max() and eig[4] > 1e-3
    ones = np.ones((12, 10, 3), np.float32)
    assert np.abs(np.asarray(apply_jit(guide, ones, EPS))).max() < 1e-4
    np.testing.assert_allclose(lap.sum(1), 0, atol=1e-4)
    # border pixels belong to fewer windows: L_ii sums over 1, 2, 3, 4, 6 or 9 windows
    np.testing.assert_array_equal(M.window_counts(4, 5), [[1, 2, 3, 2, 1], [2, 4, 6, 4, 2],
                                                          [2, 4, 6, 4, 2], [1, 2, 3, 2, 1]])
    np.testing.assert_allclose(np.diag(lap).reshape(12, 10) > 0, True)


def test_locally_affine_colour_transforms_cost_nothing(photo, photo_stats):
    """Matting L annihilates (up to eps) any affine function of the guide's colours."""
    x = _photo_batch(photo, 4)
    e = np.sum(x * np.asarray(stats_apply_jit(photo_stats, x)), axis=(1, 2, 3))
    assert e[0] < 1e-3 * e[2] and e[1] < 1e-3 * e[2]
    assert e[2] > 0


def test_gradient_is_twice_laplacian(photo, photo_lap, photo_stats):
    v = np.random.default_rng(5).random(photo.shape).astype(np.float32)
    grad = jax.jit(jax.grad(lambda s, x: s.energy(x), argnums=1))(photo_stats, v)
    assert rel_err(grad, 2 * sparse_apply(photo_lap, v)) < 1e-4


def test_jit_batched_and_precomputed_agree():
    rng = np.random.default_rng(6)
    guides = rng.random((2, 12, 10, 3)).astype(np.float32)
    images = rng.random((2, 12, 10, 3)).astype(np.float32)
    laps = [levin_laplacian(g) for g in guides]
    single = np.array([np.sum(v * sparse_apply(lap, v)) for lap, v in zip(laps, images)])
    # one guide per image: stats computed once outside the loop, passed through jit as a pytree
    stats = precompute_jit(guides, EPS)
    assert stats.batched and stats.mu.shape == (2, 10, 8, 3) and stats.inv.shape == (2, 10, 8, 3, 3)
    batched = jax.jit(lambda s, v: s.energy(v))(stats, images)
    assert batched.shape == (2,)
    np.testing.assert_allclose(np.asarray(batched), single, rtol=1e-4)
    # one shared guide for a batch of images
    shared = np.asarray(energy_jit(guides[0], images, EPS))
    np.testing.assert_allclose(shared[0], single[0], rtol=1e-4)
    assert abs(shared[1] - single[1]) > 1e-2 * abs(single[1])   # a different guide does matter
    np.testing.assert_allclose(shared[1], np.sum(images[1] * sparse_apply(laps[0], images[1])), rtol=1e-4)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        M.precompute(np.zeros((2, 5, 3), np.float32))
    with pytest.raises(ValueError):
        M.precompute(np.zeros((5, 5, 4), np.float32))
