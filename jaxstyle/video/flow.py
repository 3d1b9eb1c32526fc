"""Optical flow and temporal-consistency machinery for video style transfer.

This implements the temporal terms of Ruder, Dosovitskiy and Brox, "Artistic style transfer for
videos" (GCPR 2016): dense optical flow between consecutive frames, backward warping of the
previous stylized frame, the forward-backward consistency (reliability) mask, the masked temporal
loss, the long-term "closest first" mask combination, and the stability error used to evaluate
the result.

Conventions
-----------
Images are float32 RGB in [0, 1], shape ``[H, W, 3]`` (or ``[T, H, W, 3]`` for a sequence).
A flow field has shape ``[H, W, 2]`` and stores ``(dx, dy)`` per pixel, in pixels:

    ``flow_{a->b}[y, x] = (dx, dy)``  means the pixel at ``(x, y)`` in frame a
    is found at ``(x + dx, y + dy)`` in frame b.

For a sequence of ``T`` frames :func:`compute_flows` returns

    ``forward[t]  = flow t   -> t+1``   (defined on frame t's pixel grid),
    ``backward[t] = flow t+1 -> t``     (defined on frame t+1's pixel grid),   t = 0 .. T-2.

:func:`warp` is *backward* warping (bilinear sampling, pull): ``warp(img, flow)[x] = img[x + flow(x)]``.
To bring the previous stylized frame ``O_t`` onto frame ``t+1``'s grid use the backward flow of
that pair, which lives on frame t+1's grid and points into frame t::

    W(O_t) = warp(O_t, backward[t])        # W(O_t)[x] = O_t[x + backward[t](x)]

Masks are float32 ``[H, W]`` on the later frame's grid: 1 where the warped previous frame is a
reliable prediction of the current frame, 0 at disocclusions, motion boundaries and (optionally)
where the correspondence falls outside the previous frame.  ``masks[t]`` belongs to the pair
``(t, t+1)`` and is used with frame ``t+1``; see :func:`consistency_mask`.

All the ``jax.numpy`` functions are pure, run under :func:`jax.jit`, are differentiable with
respect to the image (and, almost everywhere, the flow), and accept extra leading batch axes
(for example a frame axis) that broadcast between their arguments.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Mapping, Sequence

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from ..errors import UserError
from ..io.files import cache_root, write_failure

ArrayLike = np.ndarray | jax.Array

#: Flow methods accepted by :func:`compute_flow`.
FLOW_METHODS: tuple[str, ...] = ("dis", "deepflow", "farneback")

#: DIS presets: speed/quality trade-off of OpenCV's Dense Inverse Search.  ``medium`` (the default)
#: uses finer patch strides and more variational refinement iterations than ``fast``; ``ultrafast``
#: is the coarsest and quickest.  All three run in real time or better at video resolutions.
DIS_PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}

# Bump when the way flows are computed changes, so stale cache entries are not reused.
_CACHE_VERSION = "1"


# --------------------------------------------------------------------------------------------
# Optical flow (NumPy / OpenCV)
# --------------------------------------------------------------------------------------------


def deepflow_available() -> bool:
    """Whether this OpenCV build has DeepFlow (``cv2.optflow``, from opencv-contrib)."""
    return hasattr(cv2, "optflow") and hasattr(cv2.optflow, "createOptFlow_DeepFlow")


def _to_gray_u8(frame: ArrayLike, name: str) -> np.ndarray:
    """Float RGB [0, 1] ``[H, W, 3]`` (or gray ``[H, W]`` / ``[H, W, 1]``) to gray uint8 ``[H, W]``."""
    arr = np.asarray(frame)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise UserError(f"{name} must be an RGB image of shape [H, W, 3], got shape {arr.shape}")
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise UserError(f"{name} is too small for optical flow: shape {arr.shape}")
    if arr.dtype == np.uint8:
        u8 = arr
    else:
        u8 = np.clip(np.rint(arr.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    if u8.ndim == 3:
        u8 = cv2.cvtColor(np.ascontiguousarray(u8), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(u8)


def check_flow_method(method: str, preset: str = "medium") -> None:
    """The method (and DIS preset) exists and this OpenCV build has it."""
    if method not in FLOW_METHODS:
        raise UserError(f"unknown optical flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}")
    if method == "dis" and preset not in DIS_PRESETS:
        raise UserError(f"unknown DIS preset {preset!r}; choose one of {', '.join(DIS_PRESETS)}")
    if method == "deepflow" and not deepflow_available():
        raise UserError(
            "optical flow method 'deepflow' needs OpenCV's contrib modules (cv2.optflow), which this "
            "OpenCV build lacks; install opencv-contrib-python-headless instead of "
            "opencv-python-headless, or use --flow dis"
        )


def _make_estimator(method: str, preset: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A function ``(gray_a, gray_b) -> flow`` for ``method``; validated by :func:`check_flow_method`."""
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
        return lambda a, b: dis.calc(a, b, None)
    if method == "deepflow":
        deep = cv2.optflow.createOptFlow_DeepFlow()  # type: ignore[attr-defined]
        return lambda a, b: deep.calc(a, b, None)
    # Farneback: a classical dense fallback, always available in the main OpenCV modules.
    return lambda a, b: cv2.calcOpticalFlowFarneback(
        a, b, None, pyr_scale=0.5, levels=4, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0
    )


def compute_flow(
    frame_a: ArrayLike, frame_b: ArrayLike, method: str = "dis", preset: str = "medium"
) -> np.ndarray:
    """Dense optical flow from ``frame_a`` to ``frame_b``.

    Args:
        frame_a, frame_b: float32 RGB images in [0, 1], shape ``[H, W, 3]`` (same shape).
        method: ``'dis'`` (OpenCV Dense Inverse Search, default), ``'deepflow'`` (needs
            opencv-contrib, i.e. ``cv2.optflow``; raises :class:`UserError` when the build lacks it)
            or ``'farneback'``.
        preset: DIS preset, one of ``'ultrafast'``, ``'fast'``, ``'medium'`` (default; see
            :data:`DIS_PRESETS`). Ignored by the other methods.

    Returns:
        float32 ``[H, W, 2]`` with ``flow[y, x] = (dx, dy)``: the pixel at ``(x, y)`` in
        ``frame_a`` is at ``(x + dx, y + dy)`` in ``frame_b``. Frames are converted to 8-bit
        grayscale before estimation.
    """
    check_flow_method(method, preset)
    a = _to_gray_u8(frame_a, "frame_a")
    b = _to_gray_u8(frame_b, "frame_b")
    if a.shape != b.shape:
        raise UserError(f"frames must have the same size for optical flow, got {a.shape} and {b.shape}")
    flow = _make_estimator(method, preset)(a, b)
    return np.ascontiguousarray(flow, dtype=np.float32)


def compute_flows(
    frames: ArrayLike | Sequence[ArrayLike], method: str = "dis", preset: str = "medium"
) -> tuple[np.ndarray, np.ndarray]:
    """Forward and backward flows between consecutive frames of a sequence.

    Args:
        frames: ``[T, H, W, 3]`` float32 RGB in [0, 1] (an array or a sequence of ``[H, W, 3]``).
        method, preset: as for :func:`compute_flow`.

    Returns:
        ``(forward, backward)``, each float32 ``[T-1, H, W, 2]``: ``forward[t]`` is the flow
        ``t -> t+1`` (on frame t's grid) and ``backward[t]`` the flow ``t+1 -> t`` (on frame
        t+1's grid).  With fewer than two frames both are empty (``[0, H, W, 2]``).
    """
    check_flow_method(method, preset)
    grays = [_to_gray_u8(f, f"frame {i}") for i, f in enumerate(frames)]
    if not grays:
        raise UserError("cannot compute optical flow of an empty frame sequence")
    h, w = grays[0].shape
    for i, g in enumerate(grays):
        if g.shape != (h, w):
            raise UserError(f"frame {i} has size {g.shape}, expected {(h, w)} like frame 0")
    estimate = _make_estimator(method, preset)
    n = len(grays) - 1
    forward = np.empty((n, h, w, 2), np.float32)
    backward = np.empty((n, h, w, 2), np.float32)
    for t in range(n):
        forward[t] = estimate(grays[t], grays[t + 1])
        backward[t] = estimate(grays[t + 1], grays[t])
    return forward, backward


def default_cache_dir() -> Path:
    """``$JAXSTYLE_CACHE/flows`` if set, else ``$XDG_CACHE_HOME/jaxstyle/flows`` (``~/.cache``)."""
    return cache_root() / "flows"


class FlowCache:
    """On-disk cache of a video's forward/backward flows, so they are computed once per video.

    Each entry is one ``.npz`` file in ``cache_dir`` named by a SHA-256 of the frames' shape, dtype
    and bytes plus the flow method and preset.  Writes are atomic (temporary file + rename), and an
    unreadable or mismatched entry is simply recomputed.

    Example::

        cache = FlowCache("~/.cache/jaxstyle/flows")
        forward, backward = cache.get(frames, method="dis", preset="medium")
    """

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None):
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()

    @staticmethod
    def key(frames: ArrayLike | Sequence[ArrayLike], method: str = "dis", preset: str = "medium") -> str:
        """Hex digest identifying (frames, method, preset)."""
        arr = np.ascontiguousarray(np.asarray(frames))
        h = hashlib.sha256()
        # DIS is the only method with presets; normalise so other methods share one entry.
        preset_part = preset if method == "dis" else "-"
        header = f"jaxstyle-flow-v{_CACHE_VERSION}|{method}|{preset_part}|{arr.dtype.str}|{arr.shape}|"
        h.update(header.encode())
        h.update(memoryview(arr).cast("B"))
        return h.hexdigest()

    def path(
        self, frames: ArrayLike | Sequence[ArrayLike], method: str = "dis", preset: str = "medium"
    ) -> Path:
        """File that holds (or would hold) the flows for these frames."""
        return self.cache_dir / f"{self.key(frames, method, preset)}.npz"

    def get(
        self, frames: ArrayLike | Sequence[ArrayLike], method: str = "dis", preset: str = "medium"
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(forward, backward)`` as from :func:`compute_flows`, read from the cache if present."""
        check_flow_method(method, preset)
        arr = np.asarray(frames)
        if arr.ndim != 4:
            raise UserError(f"frames must have shape [T, H, W, C], got {arr.shape}")
        path = self.path(arr, method, preset)
        expected = (max(arr.shape[0] - 1, 0), arr.shape[1], arr.shape[2], 2)
        cached = self._load(path, expected)
        if cached is not None:
            return cached
        # Looked up at call time so that the module-level function can be replaced (e.g. in tests).
        forward, backward = compute_flows(arr, method, preset)
        self._save(path, forward, backward)
        return forward, backward

    @staticmethod
    def _load(path: Path, expected: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                forward = np.asarray(data["forward"], np.float32)
                backward = np.asarray(data["backward"], np.float32)
        except (OSError, KeyError, ValueError):
            return None
        if forward.shape != expected or backward.shape != expected:
            return None
        return forward, backward

    def _save(self, path: Path, forward: np.ndarray, backward: np.ndarray) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=self.cache_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, forward=forward.astype(np.float32), backward=backward.astype(np.float32))
            os.replace(tmp, path)
        except BaseException as exc:
            if os.path.exists(tmp):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise write_failure(path, exc) from None
            raise


# --------------------------------------------------------------------------------------------
# Warping, masks and temporal losses (pure jax.numpy)
# --------------------------------------------------------------------------------------------


def _pixel_grid(h: int, w: int, dtype: jnp.dtype) -> tuple[jax.Array, jax.Array]:
    ys = jnp.arange(h, dtype=dtype)[:, None]
    xs = jnp.arange(w, dtype=dtype)[None, :]
    return xs, ys


def warp(image: jax.Array, flow: jax.Array) -> jax.Array:
    """Backward-warp ``image`` by ``flow`` with bilinear sampling and border clamping.

    ``out[..., y, x, :] = image[..., y + flow[..., y, x, 1], x + flow[..., y, x, 0], :]``, where the
    sample position is clamped to the image (edge pixels are repeated).  An integer flow gives an
    exact copy of the sampled pixels.

    To warp the previous stylized frame ``O_{t-1}`` onto frame t, pass the backward flow
    ``t -> t-1`` (defined on frame t's grid): ``warp(O_{t-1}, backward[t-1])``.

    Args:
        image: ``[..., H, W, C]``.
        flow: ``[..., H, W, 2]`` holding ``(dx, dy)``; leading axes broadcast against ``image``'s.

    Returns:
        ``[..., H, W, C]`` in ``image``'s (floating) dtype.
    """
    image = jnp.asarray(image)
    flow = jnp.asarray(flow)
    if not jnp.issubdtype(image.dtype, jnp.floating):
        image = image.astype(jnp.float32)
    h, w, c = image.shape[-3:]
    if flow.shape[-3:] != (h, w, 2):
        raise ValueError(f"flow shape {flow.shape} does not match image shape {image.shape}")
    batch = jnp.broadcast_shapes(image.shape[:-3], flow.shape[:-3])
    image = jnp.broadcast_to(image, batch + (h, w, c))
    flow = jnp.broadcast_to(flow.astype(jnp.promote_types(flow.dtype, jnp.float32)), batch + (h, w, 2))

    xs, ys = _pixel_grid(h, w, flow.dtype)
    sx = jnp.clip(xs + flow[..., 0], 0.0, w - 1)
    sy = jnp.clip(ys + flow[..., 1], 0.0, h - 1)
    x0f = jnp.floor(sx)
    y0f = jnp.floor(sy)
    wx = (sx - x0f)[..., None].astype(image.dtype)
    wy = (sy - y0f)[..., None].astype(image.dtype)
    x0 = x0f.astype(jnp.int32)
    y0 = y0f.astype(jnp.int32)
    x1 = jnp.minimum(x0 + 1, w - 1)
    y1 = jnp.minimum(y0 + 1, h - 1)

    flat = image.reshape(batch + (h * w, c))

    def gather(yi: jax.Array, xi: jax.Array) -> jax.Array:
        idx = (yi * w + xi).reshape(batch + (h * w, 1))
        return jnp.take_along_axis(flat, idx, axis=-2).reshape(batch + (h, w, c))

    top = gather(y0, x0) * (1 - wx) + gather(y0, x1) * wx
    bottom = gather(y1, x0) * (1 - wx) + gather(y1, x1) * wx
    return top * (1 - wy) + bottom * wy


def _flow_gradient_sq(flow: jax.Array) -> jax.Array:
    """``|∇u|^2 + |∇v|^2`` of ``flow [..., H, W, 2]`` by central differences (one-sided at edges)."""

    def diff(f: jax.Array, axis: int) -> jax.Array:
        n = f.shape[axis]
        if n < 2:
            return jnp.zeros_like(f)
        idx = jnp.arange(n)
        hi = jnp.take(f, jnp.minimum(idx + 1, n - 1), axis=axis)
        lo = jnp.take(f, jnp.maximum(idx - 1, 0), axis=axis)
        span = (jnp.minimum(idx + 1, n - 1) - jnp.maximum(idx - 1, 0)).astype(f.dtype)
        shape = [1] * f.ndim
        shape[axis] = n
        return (hi - lo) / span.reshape(shape)

    dy = diff(flow, flow.ndim - 3)
    dx = diff(flow, flow.ndim - 2)
    return jnp.sum(dx**2 + dy**2, axis=-1)


def consistency_mask(
    forward_flow: jax.Array, backward_flow: jax.Array, check_bounds: bool = True
) -> jax.Array:
    """Ruder et al.'s reliability mask for frame t+1 relative to frame t.

    Args:
        forward_flow: flow ``t -> t+1``, ``[..., H, W, 2]``, on frame t's grid (``forward[t]``).
        backward_flow: flow ``t+1 -> t``, ``[..., H, W, 2]``, on frame t+1's grid (``backward[t]``).
        check_bounds: also mark unreliable the pixels whose correspondence
            ``x + w(x)`` lies outside frame t (by more than half a pixel): content entering the
            frame at an edge, which the forward-backward test cannot see because the sample is
            clamped to the border.

    The mask lives on frame t+1's grid, like ``warp(O_t, backward_flow)``.  For each pixel x of
    frame t+1 let ``w = backward_flow(x)`` and ``ŵ = forward_flow(x + w)`` (the forward flow warped
    to frame t+1, i.e. ``warp(forward_flow, backward_flow)``).  With consistent flows
    ``ŵ ≈ -w``.  A pixel is unreliable (mask 0) when

    - disocclusion:    ``|w + ŵ|^2 > 0.01 (|w|^2 + |ŵ|^2) + 0.5``, or
    - motion boundary: ``|∇u|^2 + |∇v|^2 > 0.01 |ŵ|^2 + 0.002`` where ``(u, v) = w`` is the
      backward flow (central differences), or
    - (with ``check_bounds``) out of frame, as above;

    otherwise it is 1.

    Returns:
        float32 ``[..., H, W]``: 1 where reliable, 0 otherwise.
    """
    forward_flow = jnp.asarray(forward_flow, jnp.float32)
    backward_flow = jnp.asarray(backward_flow, jnp.float32)
    w_ = backward_flow
    w_hat = warp(forward_flow, backward_flow)
    sum_sq = jnp.sum((w_ + w_hat) ** 2, axis=-1)
    norm_w = jnp.sum(w_**2, axis=-1)
    norm_hat = jnp.sum(w_hat**2, axis=-1)
    disoccluded = sum_sq > 0.01 * (norm_w + norm_hat) + 0.5
    boundary = _flow_gradient_sq(w_) > 0.01 * norm_hat + 0.002
    unreliable = disoccluded | boundary
    if check_bounds:
        h, w = backward_flow.shape[-3:-1]
        xs, ys = _pixel_grid(h, w, jnp.float32)
        tx = xs + w_[..., 0]
        ty = ys + w_[..., 1]
        outside = (tx < -0.5) | (tx > w - 0.5) | (ty < -0.5) | (ty > h - 0.5)
        unreliable = unreliable | outside
    return jnp.where(unreliable, 0.0, 1.0).astype(jnp.float32)


def temporal_loss(output: jax.Array, warped_prev: jax.Array, mask: jax.Array) -> jax.Array:
    """Masked temporal loss ``(1/D) Σ mask · (output - warped_prev)^2`` with ``D = H·W·C``.

    Args:
        output: current frame ``[..., H, W, C]``.
        warped_prev: previous output warped onto this frame, ``[..., H, W, C]``.
        mask: ``[..., H, W]`` weights (1 = reliable), broadcast over channels.

    Returns:
        ``[...]``: a scalar for a single frame, one value per frame for batched input.
    """
    output = jnp.asarray(output)
    h, w, c = output.shape[-3:]
    diff = (output - warped_prev) ** 2
    return jnp.sum(jnp.asarray(mask)[..., None] * diff, axis=(-3, -2, -1)) / (h * w * c)


def pair_temporal_errors(outputs: jax.Array, backward_flows: jax.Array, masks: jax.Array) -> jax.Array:
    """Per-pair masked temporal errors of a stylized sequence.

    Args:
        outputs: ``[T, H, W, 3]`` stylized frames, RGB in [0, 1].
        backward_flows: ``[T-1, H, W, 2]``; ``backward_flows[t]`` is the flow ``t+1 -> t``.
        masks: ``[T-1, H, W]``; ``masks[t]`` is ``consistency_mask(forward[t], backward[t])``.

    Returns:
        ``[T-1]``: entry t is ``(1/D) Σ M_t (O_{t+1} - W(O_t))^2`` with
        ``W(O_t) = warp(O_t, backward_flows[t])`` and ``D = H·W·3``.
    """
    outputs = jnp.asarray(outputs)
    warped = warp(outputs[:-1], backward_flows)
    return temporal_loss(outputs[1:], warped, masks)


def stability_error(outputs: jax.Array, backward_flows: jax.Array, masks: jax.Array) -> jax.Array:
    """Stability error ``sqrt(mean_t (1/D) Σ M_t (O_t - W(O_{t-1}))^2)`` of a sequence (scalar).

    Same arguments as :func:`pair_temporal_errors`; this is the square root of their mean.
    Lower is more temporally stable; 0 means each frame is exactly the warp of its predecessor on
    the reliable pixels.
    """
    return jnp.sqrt(jnp.mean(pair_temporal_errors(outputs, backward_flows, masks)))


def long_term_masks(masks: jax.Array) -> jax.Array:
    """Combine long-term consistency masks "closest first" (Ruder et al., Sec. 4.2).

    Args:
        masks: ``[J, H, W]`` (more leading axes are fine after the first) reliability masks
            ``c_{t-j}`` for the offsets ``j`` in J, **ordered closest first** (increasing j).

    Returns:
        ``[J, H, W]`` weights ``max(c_{t-j} - Σ_{k in J, k < j} c_{t-k}, 0)``: each pixel is
        constrained by the nearest earlier frame in which it is reliable, and farther frames only
        fill in what the nearer ones cannot see.
    """
    masks = jnp.asarray(masks)
    earlier = jnp.cumsum(masks, axis=0) - masks
    return jnp.maximum(masks - earlier, 0.0)


def long_term_weights(
    t: int, offsets: Sequence[int] = (1, 2, 4), *, masks: Mapping[int, ArrayLike]
) -> tuple[tuple[int, ...], jax.Array]:
    """Long-term temporal weights for frame ``t`` from the offsets that exist.

    Args:
        t: index of the current frame.
        offsets: the set J of earlier-frame offsets (e.g. ``(1, 2, 4)``); only ``j <= t`` are used.
        masks: ``{j: c_{t-j}}``, the ``[H, W]`` reliability mask of frame t relative to frame
            ``t-j``, i.e. ``consistency_mask(flow (t-j) -> t, flow t -> (t-j))``.

    Returns:
        ``(used_offsets, weights)``: the offsets ``j`` with ``t - j >= 0``, sorted closest first,
        and their ``[len(used_offsets), H, W]`` weights from :func:`long_term_masks`, to be used
        as ``Σ_j temporal_loss(O_t, warp(O_{t-j}, flow t -> t-j), weights[j])``.  For ``t == 0``
        there are none and ``weights`` is an empty ``[0, 1, 1]`` array.
    """
    if t < 0:
        raise ValueError(f"frame index must be non-negative, got {t}")
    if any(j <= 0 for j in offsets):
        raise ValueError(f"long-term offsets must be positive, got {tuple(offsets)}")
    used = tuple(sorted({int(j) for j in offsets if j <= t}))
    missing = [j for j in used if j not in masks]
    if missing:
        raise ValueError(f"no mask given for offsets {missing} (frame {t})")
    if not used:
        return used, jnp.zeros((0, 1, 1), jnp.float32)
    stacked = jnp.stack([jnp.asarray(masks[j], jnp.float32) for j in used])
    return used, long_term_masks(stacked)
