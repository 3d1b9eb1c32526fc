"""Overlapping tiles for large frames: planning, extraction, feathered stitching.

Each tile is an image of ``th x tw`` pixels placed on the canvas by a 3x3 homography ``H``
that maps *tile* pixel coordinates to *canvas* pixel coordinates::

    [u, v, s]^T = H @ [x, y, 1]^T,      canvas point = (u / s, v / s)

Conventions
-----------
* Coordinates are ``(x, y) = (column, row)`` and integer coordinates are pixel *centres*:
  pixel ``[row, col]`` of an array sits at ``(x, y) = (col, row)``. A tile whose top-left
  pixel lies at canvas ``[y0, x0]`` is the translation ``[[1, 0, x0], [0, 1, y0], [0, 0, 1]]``.
* Sampling is bilinear. :func:`extract_tiles` clamps to the canvas edge outside the canvas;
  :func:`stitch` treats a tile as zero (with zero weight) outside its pixel grid, so a tile's
  footprint fades out over one pixel beyond its outermost pixel centres. For integer
  translations both are exact (the fractional weights are exactly 0).
* Arrays are channels-last: canvas ``(H, W, C)``, tiles ``(T, th, tw, C)``; float32.
* The planner works in NumPy (host side, shapes must be static anyway); extraction and
  stitching are jitted JAX functions, differentiable with respect to the pixel values.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "tile_shape", "tile_count", "tile_strides", "plan_tiles", "translation", "is_integer_translation",
    "extract_tiles", "feather_weights", "stitch",
]


# ----------------------------------------------------------------------------------- planning

def _pair(v) -> tuple[int, int]:
    if np.ndim(v) == 0:
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def tile_shape(height: int, width: int, tile) -> tuple[int, int]:
    """The ``(th, tw)`` actually used: ``tile`` (int or ``(th, tw)``) clamped to the canvas."""
    th, tw = _pair(tile)
    if th < 1 or tw < 1:
        raise ValueError(f"tile size must be positive, got {tile}")
    return min(th, int(height)), min(tw, int(width))


def _axis_count(length: int, t: int, overlap: int) -> int:
    """Tiles along one axis: 1 if the tile spans the axis, else ``ceil((L - t)/(t - o)) + 2``."""
    if t >= length:
        return 1
    if overlap >= t:
        raise ValueError(f"overlap {overlap} must be smaller than the tile size {t}")
    return math.ceil((length - t) / (t - overlap)) + 2


def _axis_starts(length: int, t: int, overlap: int, shift: float) -> np.ndarray:
    n = _axis_count(length, t, overlap)
    if n == 1:
        return np.zeros(1, np.int64)
    m = n - 2                               # minimal number of strides
    span = length - t                       # first tile at 0, last at span
    stride = span / m                       # <= t - overlap
    # Grid phi + i*stride, i = 0..n-1, with phi in [-stride, 0), clamped into [0, span]; the end
    # tiles stay flush. shift = 0 gives phi = -stride/2: end gaps of stride/2, no duplicates.
    phi = math.fmod(float(shift) + stride / 2, stride)
    if phi < 0:
        phi += stride
    phi -= stride
    pos = np.floor(phi + np.arange(n) * stride + 0.5)
    return np.clip(pos, 0, span).astype(np.int64)


def tile_count(height: int, width: int, tile, overlap: int) -> int:
    """Number of tiles :func:`plan_tiles` returns, the same for every ``shift``."""
    th, tw = tile_shape(height, width, tile)
    return _axis_count(int(height), th, int(overlap)) * _axis_count(int(width), tw, int(overlap))


def tile_strides(height: int, width: int, tile, overlap: int) -> tuple[float, float]:
    """Interior grid stride ``(sy, sx)`` of :func:`plan_tiles` (0 where one tile spans the axis)."""
    th, tw = tile_shape(height, width, tile)

    def one(length, t):
        n = _axis_count(int(length), t, int(overlap))
        return 0.0 if n == 1 else (length - t) / (n - 2)

    return one(int(height), th), one(int(width), tw)


def translation(x0, y0) -> np.ndarray:
    """3x3 float32 homography placing a tile's pixel ``[0, 0]`` at canvas ``(x0, y0)``."""
    h = np.eye(3, dtype=np.float32)
    h[0, 2], h[1, 2] = x0, y0
    return h


def plan_tiles(height: int, width: int, tile, overlap: int, shift=(0, 0)) -> np.ndarray:
    """Grid of translated tiles covering a ``height x width`` canvas.

    Returns ``(T, 3, 3)`` float32 homographies (tile coords -> canvas coords, integer
    translations, row-major order: rows of tiles top to bottom, left to right in a row).
    The tile size is :func:`tile_shape` (``tile`` clamped to the canvas). Guarantees:

    * every tile lies fully inside the canvas, the first row/column is flush with the top/left
      edge and the last with the bottom/right edge, so the union covers the whole canvas;
    * neighbouring tiles along an axis overlap by at least ``overlap`` pixels (their starts
      differ by at most ``tile - overlap``), unless the tile spans that axis;
    * ``T = tile_count(height, width, tile, overlap)`` does not depend on ``shift``:
      per axis ``n = ceil((L - t) / (t - overlap)) + 2`` (one more than the minimum), or 1 if
      the tile spans the axis. Shapes, and hence compiled functions, are stable across rounds.

    ``shift = (dy, dx)``, or a scalar for both, in pixels (any real; only its value modulo the
    stride matters) moves the interior seams down/right. The interior grid has a regular stride
    :func:`tile_strides` (``(L - t) / ceil((L - t) / (t - overlap))``, starts rounded to
    integers); tiles pushed past an edge are clamped flush to it, so near
    ``shift = stride / 2`` (mod stride) two tiles coincide or nearly coincide at an edge
    (harmless: the stitcher averages them). ``shift = 0`` places the grid symmetrically (both
    end gaps are half a stride). To move every seam by half a stride each round use
    ``shift = k * np.array(tile_strides(...)) / 2`` in round ``k``.
    """
    height, width, overlap = int(height), int(width), int(overlap)
    if height < 1 or width < 1:
        raise ValueError(f"canvas must be non-empty, got {height}x{width}")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    th, tw = tile_shape(height, width, tile)
    sy, sx = (float(v) for v in ((shift, shift) if np.ndim(shift) == 0 else shift))
    ys = _axis_starts(height, th, overlap, sy)
    xs = _axis_starts(width, tw, overlap, sx)
    return np.stack([translation(x, y) for y in ys for x in xs]).astype(np.float32)


def _minimal_starts(length: int, t: int, overlap: int, phase: float) -> np.ndarray:
    if t >= length:
        return np.zeros(1, np.int64)
    if overlap >= t:
        raise ValueError(f"overlap {overlap} must be smaller than the tile size {t}")
    n = math.ceil((length - t) / (t - overlap)) + 1
    span = length - t
    even = span / (n - 1)
    slack = max(0.0, (t - overlap) - even)       # how far an interior tile may move
    pos = np.arange(n) * even
    pos[1:-1] += float(np.clip(phase, -1.0, 1.0)) * slack
    return np.clip(np.floor(pos + 0.5), 0, span).astype(np.int64)


def minimal_tile_count(height: int, width: int, tile, overlap: int) -> int:
    """Number of tiles :func:`plan_tiles_minimal` returns (the same for every ``phase``)."""
    th, tw = tile_shape(height, width, tile)
    return len(_minimal_starts(int(height), th, int(overlap), 0.0)) * len(_minimal_starts(int(width), tw, int(overlap), 0.0))


def plan_tiles_minimal(height: int, width: int, tile, overlap: int, phase=0.0) -> np.ndarray:
    """Like :func:`plan_tiles` with the fewest tiles: ``ceil((L - t)/(t - overlap)) + 1`` per axis,
    evenly spread, end tiles flush with the canvas edges, neighbours overlapping by >= ``overlap``.

    ``phase`` (in [-1, 1], a scalar or ``(py, px)``) moves the interior tiles of an axis by
    ``phase * slack``, where ``slack`` is how far they can move while every overlap stays
    >= ``overlap``: seams move between rounds as far as the grid allows (not at all along an axis
    with only two tiles, whose wide overlap region is fixed). The tile count never depends on
    ``phase``, so one compiled shape serves every round.
    """
    height, width, overlap = int(height), int(width), int(overlap)
    th, tw = tile_shape(height, width, tile)
    py, px = (float(phase), float(phase)) if np.ndim(phase) == 0 else (float(phase[0]), float(phase[1]))
    ys = _minimal_starts(height, th, overlap, py)
    xs = _minimal_starts(width, tw, overlap, px)
    return np.stack([translation(x, y) for y in ys for x in xs]).astype(np.float32)


def is_integer_translation(homographies, tol: float = 0.0) -> bool:
    """True if every (concrete) homography is ``[[1,0,a],[0,1,b],[0,0,1]]`` with integer a, b."""
    h = np.asarray(homographies, np.float64).reshape(-1, 3, 3)
    lin = h[:, :, :2].copy()
    ok = np.allclose(lin, np.broadcast_to(np.eye(3)[:, :2], lin.shape), rtol=0, atol=tol)
    ok &= np.allclose(h[:, 2, 2], 1, rtol=0, atol=tol)
    t = h[:, :2, 2]
    return bool(ok and np.allclose(t, np.round(t), rtol=0, atol=tol))


# ---------------------------------------------------------------------------------- sampling

def _project(h, x, y):
    """Apply 3x3 ``h`` to coordinate arrays; elementwise (exact for integer translations,
    unlike a matmul that may run in TF32/bf16 on accelerators). Returns ``(u, v, s)``."""
    u = h[0, 0] * x + h[0, 1] * y + h[0, 2]
    v = h[1, 0] * x + h[1, 1] * y + h[1, 2]
    s = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    return u, v, s


def _inv3(h):
    """Inverse of a 3x3 matrix by the adjugate (exact for translations)."""
    a, b, c = h[0]
    d, e, f = h[1]
    g, k, m = h[2]
    c00, c01, c02 = e * m - f * k, -(d * m - f * g), d * k - e * g
    c10, c11, c12 = -(b * m - c * k), a * m - c * g, -(a * k - b * g)
    c20, c21, c22 = b * f - c * e, -(a * f - c * d), a * e - b * d
    det = a * c00 + b * c01 + c * c02
    adj = jnp.array([[c00, c10, c20], [c01, c11, c21], [c02, c12, c22]])
    return adj / det


def _bilinear(img, y, x, mode: str):
    """Sample ``img`` (h, w, C) at float coords (any shape). ``mode``: 'edge' clamps to the
    border, 'zero' treats outside pixels as 0. Returns ``coords.shape + (C,)``."""
    h, w = img.shape[0], img.shape[1]
    y0 = jnp.floor(y)
    x0 = jnp.floor(x)
    fy = (y - y0)[..., None]
    fx = (x - x0)[..., None]
    y0 = y0.astype(jnp.int32)
    x0 = x0.astype(jnp.int32)

    def tap(yi, xi):
        v = img[jnp.clip(yi, 0, h - 1), jnp.clip(xi, 0, w - 1)]
        if mode == "zero":
            inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
            v = jnp.where(inside[..., None], v, 0)
        return v

    top = tap(y0, x0) * (1 - fx) + tap(y0, x0 + 1) * fx
    bot = tap(y0 + 1, x0) * (1 - fx) + tap(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bot * fy


@partial(jax.jit, static_argnames=("tile_hw",))
def _extract(canvas, homographies, tile_hw):
    th, tw = tile_hw
    y, x = jnp.meshgrid(jnp.arange(th, dtype=canvas.dtype), jnp.arange(tw, dtype=canvas.dtype),
                        indexing="ij")

    def one(h):
        u, v, s = _project(h.astype(canvas.dtype), x, y)
        return _bilinear(canvas, v / s, u / s, "edge")

    return jax.vmap(one)(homographies)


def extract_tiles(canvas, homographies, tile_hw):
    """Sample tiles from ``canvas``: ``out[t, y, x] = canvas at H_t @ (x, y, 1)``.

    ``canvas`` ``(H, W, C)``, ``homographies`` ``(T, 3, 3)``, ``tile_hw = (th, tw)`` ->
    ``(T, th, tw, C)``. Bilinear, clamped to the canvas edge outside it; exact for integer
    translations. Jitted (``tile_hw`` static).
    """
    canvas = jnp.asarray(canvas)
    if not jnp.issubdtype(canvas.dtype, jnp.floating):
        canvas = canvas.astype(jnp.float32)
    return _extract(canvas, jnp.asarray(homographies, canvas.dtype), tuple(int(v) for v in tile_hw))


# ----------------------------------------------------------------------------------- blending

def feather_weights(tile_hw, overlap: int, floor: float = 1e-3) -> np.ndarray:
    """Separable raised-cosine weight map ``(th, tw)`` float32, in ``[floor, 1]``.

    Along each axis, a pixel at distance ``d`` (0 for the outermost pixel) from the nearest
    tile edge gets ``floor + (1 - floor) * sin^2(pi/2 * (d + 0.5) / overlap)`` if
    ``d < overlap``, else 1; the map is the product of the two axes. Two tiles overlapping by
    exactly ``overlap`` pixels then cross-fade with weights summing to a constant (sin^2 +
    cos^2), a seam-free blend; the ``floor > 0`` keeps canvas-border pixels (covered by one
    tile only) at positive weight. ``overlap <= 0`` gives all ones.
    """
    th, tw = _pair(tile_hw)
    if not 0 < floor <= 1:
        raise ValueError(f"floor must be in (0, 1], got {floor}")

    def ramp(n):
        d = np.minimum(np.arange(n), np.arange(n)[::-1]).astype(np.float64)
        if overlap <= 0:
            return np.ones(n)
        r = np.sin(0.5 * np.pi * np.minimum((d + 0.5) / overlap, 1.0)) ** 2
        return floor + (1 - floor) * r

    return np.outer(ramp(th), ramp(tw)).astype(np.float32)


def _corners(h, th, tw):
    """Canvas coords of the tile's bilinear support corners (one pixel beyond the centres)."""
    cx = np.array([-1.0, tw, -1.0, tw])
    cy = np.array([-1.0, -1.0, th, th])
    u, v, s = _project(h, cx, cy)
    return u, v, s


def _window_for(homographies, tile_hw, canvas_hw) -> tuple[int, int]:
    """Static per-tile canvas window ``(bh, bw)`` enclosing every tile's footprint."""
    th, tw = tile_hw
    hc, wc = canvas_hw
    bh = bw = 0
    for h in np.asarray(homographies, np.float64).reshape(-1, 3, 3):
        if _project(h, (tw - 1) / 2, (th - 1) / 2)[2] < 0:
            h = -h
        u, v, s = _corners(h, th, tw)
        if np.any(s <= 1e-12):                     # footprint crosses the horizon: whole canvas
            return hc, wc
        u, v = u / s, v / s
        bh = max(bh, int(np.ceil(v.max()) - np.floor(v.min())) + 3)
        bw = max(bw, int(np.ceil(u.max()) - np.floor(u.min())) + 3)
    return min(bh, hc), min(bw, wc)


def _normalize(num, den, min_weight):
    covered = den > min_weight
    return jnp.where(covered[..., None], num / jnp.where(covered, den, 1)[..., None], 0), den


@partial(jax.jit, static_argnames=("canvas_hw",))
def _stitch_translate(tiles, weights, homographies, canvas_hw, min_weight):
    t, th, tw, c = tiles.shape
    hc, wc = canvas_hw
    offs = jnp.round(homographies[:, :2, 2]).astype(jnp.int32)      # (T, 2) = (x0, y0)
    w = jnp.broadcast_to(weights, (t, th, tw))

    def body(carry, inp):
        num, den = carry
        tile, wt, off = inp
        start = (off[1], off[0])
        num = jax.lax.dynamic_update_slice(
            num, jax.lax.dynamic_slice(num, start + (0,), (th, tw, c)) + tile * wt[..., None],
            start + (0,))
        den = jax.lax.dynamic_update_slice(
            den, jax.lax.dynamic_slice(den, start, (th, tw)) + wt, start)
        return (num, den), None

    init = (jnp.zeros((hc, wc, c), tiles.dtype), jnp.zeros((hc, wc), tiles.dtype))
    (num, den), _ = jax.lax.scan(body, init, (tiles, w, offs))
    return _normalize(num, den, min_weight)


@partial(jax.jit, static_argnames=("canvas_hw", "window"))
def _stitch_general(tiles, weights, homographies, canvas_hw, window, min_weight):
    t, th, tw, c = tiles.shape
    hc, wc = canvas_hw
    bh, bw = window
    w = jnp.broadcast_to(weights, (t, th, tw))
    gy, gx = jnp.meshgrid(jnp.arange(bh, dtype=tiles.dtype), jnp.arange(bw, dtype=tiles.dtype),
                          indexing="ij")
    cx = jnp.array([-1.0, tw, -1.0, tw], tiles.dtype)
    cy = jnp.array([-1.0, -1.0, th, th], tiles.dtype)

    def body(carry, inp):
        num, den = carry
        tile, wt, h = inp
        # H and -H are the same homography: fix the sign so the tile centre has s > 0
        h = h * jnp.where(_project(h, (tw - 1) / 2, (th - 1) / 2)[2] < 0, -1, 1).astype(h.dtype)
        u, v, s = _project(h, cx, cy)
        good = jnp.all(s > 0)
        oy = jnp.where(good, jnp.floor(jnp.min(v / s)) - 1, 0)
        ox = jnp.where(good, jnp.floor(jnp.min(u / s)) - 1, 0)
        oy = jnp.clip(oy, 0, hc - bh).astype(jnp.int32)
        ox = jnp.clip(ox, 0, wc - bw).astype(jnp.int32)
        hi = _inv3(h)
        tx, ty, ts = _project(hi, gx + ox.astype(tiles.dtype), gy + oy.astype(tiles.dtype))
        valid = ts > 0
        ts = jnp.where(valid, ts, 1)
        tx, ty = tx / ts, ty / ts
        prem = jnp.concatenate([tile * wt[..., None], wt[..., None]], -1)   # premultiplied
        smp = _bilinear(prem, ty, tx, "zero") * valid[..., None]
        num = jax.lax.dynamic_update_slice(
            num, jax.lax.dynamic_slice(num, (oy, ox, 0), (bh, bw, c)) + smp[..., :c], (oy, ox, 0))
        den = jax.lax.dynamic_update_slice(
            den, jax.lax.dynamic_slice(den, (oy, ox), (bh, bw)) + smp[..., c], (oy, ox))
        return (num, den), None

    init = (jnp.zeros((hc, wc, c), tiles.dtype), jnp.zeros((hc, wc), tiles.dtype))
    (num, den), _ = jax.lax.scan(body, init, (tiles, w, homographies))
    return _normalize(num, den, min_weight)


def _is_concrete(x) -> bool:
    try:
        np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return False
    return True


def stitch(tiles, homographies, canvas_hw, weights=None, *, method: str = "auto",
           window=None, min_weight: float = 1e-8, return_coverage: bool = False):
    """Blend tiles onto a canvas: ``sum_t w_t * tile_t / sum_t w_t`` (each warped by ``H_t``).

    * ``tiles`` ``(T, th, tw, C)``; ``homographies`` ``(T, 3, 3)`` tile -> canvas;
      ``canvas_hw = (H, W)``; ``weights`` ``(th, tw)`` (shared, e.g. :func:`feather_weights`)
      or ``(T, th, tw)``; ``None`` means all ones.
    * Each canvas pixel is inverse-mapped through ``H_t^{-1}``; tile and weight are sampled
      bilinearly (premultiplied ``w * tile`` and ``w`` separately), zero outside the tile.
    * Pixels whose summed weight is ``<= min_weight`` (no coverage) are 0. With
      ``return_coverage=True`` returns ``(canvas, weight_sum)``, ``weight_sum`` ``(H, W)``;
      ``weight_sum > min_weight`` is the coverage mask.
    * ``method``: ``"translate"`` assumes integer translations (rounded) and adds each tile
      with ``dynamic_update_slice`` (exact, O(T * tile) work); ``"general"`` handles any
      projective placement; ``"auto"`` picks ``"translate"`` when the homographies are concrete
      integer translations, else ``"general"``.
    * ``window = (bh, bw)`` (general path): static canvas window, per tile, that encloses the
      tile's footprint; work and memory are ``O(T * bh * bw + H * W)``. By default it is
      computed from concrete homographies; if they are traced (``stitch`` called under an outer
      ``jit``) it defaults to the whole canvas (correct, but ``O(T * H * W)`` work).

    Tiles are accumulated one at a time with ``lax.scan`` (never ``T`` full canvases in
    memory); jitted and differentiable w.r.t. ``tiles`` (and ``weights``).
    """
    tiles = jnp.asarray(tiles)
    if not jnp.issubdtype(tiles.dtype, jnp.floating):
        tiles = tiles.astype(jnp.float32)
    if tiles.ndim != 4:
        raise ValueError(f"tiles must be (T, th, tw, C), got {tiles.shape}")
    t, th, tw, _ = tiles.shape
    canvas_hw = (int(canvas_hw[0]), int(canvas_hw[1]))
    weights = jnp.ones((th, tw), tiles.dtype) if weights is None else jnp.asarray(weights, tiles.dtype)
    concrete = _is_concrete(homographies)
    if method == "auto":
        method = "translate" if concrete and is_integer_translation(homographies) else "general"
    hom = jnp.asarray(homographies, tiles.dtype)
    if hom.shape != (t, 3, 3):
        raise ValueError(f"homographies must be ({t}, 3, 3), got {hom.shape}")
    if method == "translate":
        if concrete:
            offs = np.round(np.asarray(homographies)[:, :2, 2])
            if (offs[:, 0].min() < 0 or offs[:, 1].min() < 0 or offs[:, 0].max() + tw > canvas_hw[1]
                    or offs[:, 1].max() + th > canvas_hw[0]):
                raise ValueError("translate path needs tiles fully inside the canvas")
        out, den = _stitch_translate(tiles, weights, hom, canvas_hw, min_weight)
    elif method == "general":
        if window is None:
            window = _window_for(homographies, (th, tw), canvas_hw) if concrete else canvas_hw
        window = (min(int(window[0]), canvas_hw[0]), min(int(window[1]), canvas_hw[1]))
        out, den = _stitch_general(tiles, weights, hom, canvas_hw, window, min_weight)
    else:
        raise ValueError(f"unknown method {method!r}")
    return (out, den) if return_coverage else out
