"""Coarse to fine: the frames are optimized at a growing sequence of sizes, the image carried from
scale to scale (:meth:`jaxstyle.config.StyleConfig.scales`).

At each scale the objective is chosen for the scale's inputs, its targets are built batch by
batch, and :func:`jaxstyle.optim.solve` optimizes ``frames_per_device x devices`` frames at a time
(the last batch padded, so every batch of a scale has one shape and one compile). The tile
schedules run their scales through :func:`run_scales` too, with :class:`ScaleOverrides`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import jax
import numpy as np
from tqdm.auto import tqdm

from .. import imaging
from ..errors import NonFiniteLoss
from ..nets.vgg import Network
from ..objective import Objective, ScaleInputs, Windows
from ..objective import windowed
from ..optim import Problem, frame_mesh, global_frame_mesh, solve
from ..optim.solve import pad_frames, window_mesh
from .inputs import Frames, Result, initial_images


@dataclass
class ScaleOverrides:
    """What the tile schedules change at their scales."""

    style_side: float | None = None          # long side of the style statistics (default: style_scale x the scale's)
    style_targets: dict[str, np.ndarray] | None = None   # per-frame Gram targets {layer: [N, C, C]} (one scale)
    loss_weights: np.ndarray | None = None   # [N, H, W] position weights of the feature losses (one scale)
    loss_norms: dict[str, dict[str, np.ndarray]] | None = None  # per-frame layer normalizers (one scale)
    windows: tuple[int, int] | None = None   # (window, halo): feature terms evaluated window by window


def _windows(overrides: ScaleOverrides, h: int, w: int, n: int, cfg, devices, spans: bool) -> Windows | None:
    """One frame: its windows go frames_per_device at a time on every device (sharded); several
    frames, or a program over several processes (each with frames of its own): the frames are
    sharded as usual, each frame's windows one at a time."""
    if overrides.windows is None:
        return None
    single = n == 1 and not spans
    mesh, batch = None, (cfg.frames_per_device if single else 1)
    if single and len(devices) > 1:
        mesh = window_mesh(devices)
        batch *= len(devices)
    return Windows(windowed.plan(h, w, *overrides.windows), batch, mesh)


def run_scales(frames: Frames, cfg, network: Network, *, devices: Sequence[jax.Device] | None = None,
               progress: bool | Callable[[int, dict], None] = False,
               on_chunk: Callable[[int, int, dict, float], None] | None = None,
               overrides: ScaleOverrides | None = None) -> Result:
    """Stylize ``frames`` coarse to fine with a resolved config; raises NonFiniteLoss (with the last
    finite result attached as ``.result``) when the loss stops being finite."""
    t_start = time.perf_counter()
    overrides = overrides or ScaleOverrides()
    n = frames.count
    height, width = frames.size
    devices = list(devices or jax.local_devices())  # a program over other processes is asked for explicitly
    mine = [d for d in devices if d.process_index == jax.process_index()]
    if len(mine) < len(devices):
        # one program over every process's devices: each process brings n frames of its own, in
        # batches of per_device x its devices (every process must bring the same n)
        per_device = min(cfg.frames_per_device, -(-n // len(mine)))
        used, batch = len(devices), per_device * len(mine)
        mesh = global_frame_mesh(devices)
    else:
        per_device = min(cfg.frames_per_device, -(-n // len(devices)))
        used = min(len(devices), -(-n // per_device))
        batch = per_device * used
        mesh = frame_mesh(batch, per_device, devices[:used])
    n_batches = -(-n // batch)
    scales = cfg.scales(height, width)
    images = None
    metrics: dict[str, Any] = {
        "network": network.describe(), "network_sha256": network.sha256, "devices": used, "frames_per_batch": batch,
        "device_kind": devices[0].device_kind if devices else "", "frames": n, "size": [height, width],
        "optimizer": cfg.optimizer, "preset": cfg.preset, "scales": [], "compile_seconds": 0.0,
        "config": dataclasses.asdict(cfg),
    }
    total_iters = sum(cfg.iterations if i == len(scales) - 1 else cfg.coarse_iterations for i in range(len(scales)))
    bar = None
    if progress is True:
        bar = tqdm(total=total_iters * n_batches, unit="it", dynamic_ncols=True, leave=True, desc="stylizing")
    nonfinite = False
    for si, (h, w) in enumerate(scales):
        iters = cfg.iterations if si == len(scales) - 1 else cfg.coarse_iterations
        contents = imaging.resize(frames.contents, h, w)
        images = initial_images(frames.init, contents, frames.styles, cfg.seed) if images is None \
            else imaging.resize(images, h, w)
        inputs = ScaleInputs(
            network, contents, frames.guides, frames.styles, frames.blend,
            style_side=overrides.style_side if overrides.style_side is not None else cfg.style_scale * max(h, w),
            frame_styles=frames.frame_styles, style_targets=overrides.style_targets, regions=frames.regions,
            temporal=frames.temporal, loss_weights=overrides.loss_weights, loss_norms=overrides.loss_norms,
            windows=overrides.windows)
        objective = Objective.select(cfg, inputs)
        weights = objective.weights(cfg, inputs)
        windows = _windows(overrides, h, w, n, cfg, devices, len(mine) < len(devices))
        problem = Problem(objective, network, cfg.optimizer, cfg.learning_rate, windows, mesh)
        scale_out, scale_init, scale_final = [], {}, {}
        compile_s = run_s = 0.0
        for start in range(0, n, batch):
            sl = slice(start, min(n, start + batch))
            m = sl.stop - sl.start
            targets = objective.targets(inputs, sl)
            x = images[sl]
            if m < batch:  # keep one shape per scale: pad the last batch
                x = np.concatenate([x, np.repeat(x[-1:], batch - m, 0)])
                targets = pad_frames(targets, batch - m)

            def _progress(step, losses):
                if bar is not None:
                    bar.update(step)
                    bar.set_postfix(loss=f"{float(np.mean(losses['total'][:m])):.4g}", scale=f"{si + 1}/{len(scales)}")
                elif callable(progress):
                    progress(step, losses)

            cb = None
            if on_chunk is not None:
                cb = lambda done, losses, secs, _si=si: on_chunk(_si, done, losses, secs)  # noqa: E731
            res = solve(problem, x, targets, weights, iters, chunk=cfg.chunk, progress=_progress, on_chunk=cb)
            scale_out.append(res.images[:m])
            for k, v in res.losses_initial.items():
                scale_init.setdefault(k, []).extend(v[:m].tolist())
            for k, v in res.losses_final.items():
                scale_final.setdefault(k, []).extend(v[:m].tolist())
            compile_s += res.compile_seconds
            run_s += res.run_seconds
            nonfinite |= res.nonfinite
            if nonfinite:
                scale_out.append(images[sl.stop:])
                break
        images = np.concatenate(scale_out)
        metrics["scales"].append({
            "size": [h, w], "iterations": iters, "initial": scale_init, "final": scale_final,
            "compile_seconds": compile_s, "run_seconds": run_s,
        })
        if windows is not None:
            metrics["scales"][-1]["windows"] = {"count": windows.count, "at_once": windows.batch,
                                                "devices": windows.devices}
        metrics["compile_seconds"] += compile_s
        if nonfinite:
            break
    if bar is not None:
        bar.close()
    out = np.clip(images, 0.0, 1.0).astype(np.float32)
    if out.shape[1:3] != (height, width):
        out = imaging.resize(out, height, width)
    metrics["initial"] = metrics["scales"][0]["initial"] if metrics["scales"] else {}
    metrics["final"] = metrics["scales"][-1]["final"] if metrics["scales"] else {}
    metrics["iterations"] = sum(s["iterations"] for s in metrics["scales"])
    metrics["wall_seconds"] = time.perf_counter() - t_start
    metrics["nonfinite"] = nonfinite
    result = Result(out, metrics)
    if nonfinite:
        err = NonFiniteLoss("the loss became NaN or infinite; kept the last finite image")
        err.result = result  # type: ignore[attr-defined]
        raise err
    return result
