"""Video stylization: many frames at once, temporally consistent, audio kept, resumable.

Schedule ("lanes")
    The T frames are split into B contiguous segments, one per *lane*, B = frames-per-device x
    devices (x processes). Step k optimizes frame k of every lane together, as one sharded batch.
    Each lane walks its segment in order like Ruder et al.: its first frame gets the full preset
    (coarse to fine); every later frame starts from the previous output warped by optical flow and
    adds a temporal loss toward the warped earlier outputs (offsets ``long_term``, combined
    "closest first") on the pixels the consistency check marks reliable. Lane i > 0 starts
    ``overlap`` frames early; in that overlap both lanes produce the frame and the output
    cross-fades from lane i-1 to lane i, so lanes join without a jump. ``--sequential`` is the
    special case B = 1. ``--passes N`` adds N-1 refinement passes in which every frame is pulled
    toward both neighbours of the previous pass, warped onto it (all frames in parallel batches).

Memory and resuming
    Frames stream from ffmpeg (one reader per lane); finished frames are written as 8-bit PNGs to a
    work directory beside the output, and the lanes' short histories (the last outputs and
    contents) are saved with Orbax after every step. The outputs a lane warps are the 8-bit frames
    it stored, so ``--resume`` after a kill continues from the last checkpoint and produces the
    same frames as an uninterrupted run. The video is assembled from the PNGs at the end, written
    under a temporary name and renamed only when complete.

Flow
    OpenCV DIS (``medium`` preset) between content frames at the working size, cached on disk per
    frame pair (``jaxstyle.flow.FlowCache``). Masks: forward-backward consistency and motion
    boundaries (Ruder et al.), see :func:`jaxstyle.flow.consistency_mask`.

Style videos
    ``--style`` may be a video: frame t uses the style frame at the same time, looped when the style
    video is shorter, and its Gram target is the average over ``style_window`` style frames around
    it (the style video is read at the content's working size once and held in memory).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import flow as flowlib
from . import imaging, video_io
from .config import StyleConfig
from .errors import UserError
from .stylize import Temporal, stylize_frames, target_size
from .vgg import Network

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif")  # outputs (and inputs)
INPUT_VIDEO_EXTENSIONS = VIDEO_EXTENSIONS + (".y4m", ".ts", ".m2ts", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv")
MIN_LANE_FRAMES = 4  # shorter lanes would leave most frames without a temporal loss


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in INPUT_VIDEO_EXTENSIONS


@dataclass
class Lane:
    index: int
    start: int          # first frame (including the overlap warm-up)
    core_start: int     # first frame this lane owns outright
    stop: int           # one past the last frame

    @property
    def length(self) -> int:
        return self.stop - self.start


def plan_lanes(n_frames: int, n_lanes: int, overlap: int) -> list[Lane]:
    """Contiguous segments, one per lane, each but the first starting ``overlap`` frames early.

    Lanes own at least ``MIN_LANE_FRAMES`` frames (so a short clip gets fewer lanes than asked);
    the overlap is at most a segment - 1 and never reaches past the previous lane's own frames.
    All lanes run in lock step, so their lengths (warm-up included) are balanced where the clip
    allows: the first lane, which has no warm-up, owns up to ``overlap`` more frames than the
    others, so no batch slot idles while the other lanes warm up.
    """
    lanes_n = max(1, min(n_lanes, n_frames // MIN_LANE_FRAMES))
    size = math.ceil(n_frames / lanes_n)
    lanes_n = math.ceil(n_frames / size)
    if lanes_n == 1:
        return [Lane(0, 0, 0, n_frames)]
    ov = min(overlap, size - 1)
    core = max((n_frames - ov) / lanes_n, MIN_LANE_FRAMES)   # frames owned by each lane after the first
    ov = min(ov, int(core))
    bounds = [0] + [int(round(n_frames - (lanes_n - i) * core)) for i in range(1, lanes_n)] + [n_frames]
    return [Lane(i, max(0, bounds[i] - (ov if i else 0)), bounds[i], bounds[i + 1]) for i in range(lanes_n)]


def blend_weight(t: int, lane: Lane) -> float:
    """Weight of ``lane`` (vs. the lane before it) for a frame in its warm-up overlap."""
    if t >= lane.core_start or lane.index == 0:
        return 1.0
    ov = lane.core_start - lane.start
    return (t - lane.start + 1) / (ov + 1)


# ----------------------------------------------------------------------------------------------
# Jitted temporal helpers (one compile per frame size)


@jax.jit
def _pair_terms(prev_out: jax.Array, forward: jax.Array, backward: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Warp an earlier output onto the current frame and its reliability mask."""
    return flowlib.warp(prev_out, backward), flowlib.consistency_mask(forward, backward)


@jax.jit
def _combine(warped: jax.Array, masks: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Closest-first combination of several warped earlier outputs into one target and mask."""
    weights = flowlib.long_term_masks(masks)
    total = jnp.sum(weights, axis=0)
    target = jnp.sum(weights[..., None] * warped, axis=0) / jnp.maximum(total, 1e-6)[..., None]
    return target, total


def to_u8(image: np.ndarray) -> np.ndarray:
    return imaging.to_uint8(image)


def from_u8(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, np.float32) / 255.0


# ----------------------------------------------------------------------------------------------


@dataclass
class VideoJob:
    input: Path
    styles: list[Path]
    output: Path
    config: StyleConfig
    frames_dir: Path | None = None
    start: float = 0.0
    duration: float | None = None
    audio: bool = True
    quality: int = 18
    resume: bool = False
    work_dir: Path | None = None
    keep_work: bool = False
    process_id: int = 0
    num_processes: int = 1
    progress: bool = True
    metrics: dict[str, Any] = field(default_factory=dict)


class VideoStylizer:
    def __init__(self, job: VideoJob, network: Network, log=print):
        self.job = job
        self.cfg = job.config
        self.network = network
        self.log = log
        self.info = video_io.probe(job.input)
        if self.info.is_still:
            raise UserError(f"{job.input} is a still image, not a video")
        self.n_frames = video_io.expected_frame_count(self.info, job.start, job.duration)
        if self.n_frames < 1:
            raise UserError(f"{job.input} has no frames in the selected segment")
        self.fps = self.info.fps
        self.first_frame = round(Fraction(job.start) * self.fps) if job.start else 0
        self.height, self.width = target_size(self.info.height, self.info.width, self.cfg.size)
        if min(self.height, self.width) < 16:
            raise UserError(f"working size {self.width}x{self.height} is too small; use a larger --size")
        self.local_devices = jax.local_devices()
        global_devices = len(self.local_devices) * job.num_processes
        n_lanes = 1 if self.cfg.sequential else self.cfg.frames_per_device * global_devices
        self.lanes = plan_lanes(self.n_frames, n_lanes, self.cfg.overlap)
        per_process = math.ceil(len(self.lanes) / job.num_processes)
        self.my_lanes = self.lanes[job.process_id * per_process:(job.process_id + 1) * per_process]
        self.work = job.work_dir or job.output.with_name(f".{job.output.name}.jaxstyle-work")
        self.flow_cache = flowlib.FlowCache(self.work / "flows")
        self.style_images, self.style_video = self._load_styles()
        self.style_labels = self._load_style_masks()

    # ---- inputs -------------------------------------------------------------------------------
    def _load_styles(self):
        images, video = [], None
        for path in self.job.styles:
            if is_video(path):
                if video is not None or len(self.job.styles) > 1:
                    raise UserError("a style video cannot be blended with other styles")
                info = video_io.probe(path)
                h, w = target_size(info.height, info.width, max(self.height, self.width))
                video = np.stack(list(video_io.iter_frames(path, info, size=(w, h))))
                if len(video) == 0:
                    raise UserError(f"style video {path} has no frames")
                self.style_fps = info.fps
                images.append(video[0])
            else:
                images.append(imaging.read_image(path))
        return images, video

    def _load_style_masks(self):
        if self.cfg.content_mask is None:
            return None
        if self.style_video is not None:
            raise UserError("semantic masks cannot be combined with a style video")
        from .masks import read_style_masks

        labels = read_style_masks(self.cfg.style_mask, self.style_images)
        mask = Path(self.cfg.content_mask)
        if is_video(mask):
            self.mask_info = video_io.probe(mask)
        else:
            self.mask_info = None
            self.mask_image = imaging.read_image(mask)
        return labels

    def prepare_masks(self) -> None:
        """Content mask video -> one label array per frame (working size) in the work directory,
        decoded in one streaming pass. Frame i of the mask goes with frame i of the processed
        segment (same start time); a shorter mask video repeats its last frame."""
        if self.style_labels is None or self.mask_info is None:
            return
        from .masks import content_labels

        folder = self.work / "masks"
        if (folder / "done").exists():
            return
        folder.mkdir(parents=True, exist_ok=True)
        t = -1
        frames = video_io.iter_frames(self.cfg.content_mask, self.mask_info, start=self.job.start,
                                      duration=self.job.duration)
        for t, frame in enumerate(frames):
            if t >= self.n_frames:
                frames.close()
                break
            np.save(folder / f"{t:06d}.npy", content_labels(frame, self.style_labels, self.height, self.width))
        if t < 0:
            raise UserError(f"--content-mask {self.cfg.content_mask} has no frames")
        (folder / "done").write_text("ok")

    def regions_for(self, frames: Sequence[int]):
        """Semantic regions of the frames at times ``frames`` (None without masks)."""
        if self.style_labels is None:
            return None
        from .masks import build_regions, content_labels

        if self.mask_info is None:
            labels = content_labels(self.mask_image, self.style_labels, self.height, self.width)
            stack = np.broadcast_to(labels, (len(frames),) + labels.shape)
        else:
            folder = self.work / "masks"
            last = max(int(p.stem) for p in folder.glob("*.npy"))
            stack = np.stack([np.load(folder / f"{min(t, last):06d}.npy") for t in frames])
        return build_regions(stack, self.style_labels, (self.height, self.width),
                             [s.shape[:2] for s in self.style_images])

    def frame_styles(self, frames: Sequence[int]) -> list[list[np.ndarray]] | None:
        """Style video: the style frames at the same time (looped), a window around each."""
        if self.style_video is None:
            return None
        n = len(self.style_video)
        half = self.cfg.style_window // 2
        out = []
        for t in frames:
            center = int(round(float(Fraction(t) / self.fps * self.style_fps)))
            out.append([self.style_video[(center + d) % n] for d in range(-half, half + 1)])
        return out

    def reader(self, first: int, count: int):
        start = float((self.first_frame + first) / self.fps) if (self.first_frame + first) else 0.0
        duration = float(Fraction(count) / self.fps)
        return video_io.iter_frames(self.job.input, self.info, size=(self.width, self.height),
                                    start=start, duration=duration)

    # ---- work directory -----------------------------------------------------------------------
    def fingerprint(self) -> dict:
        stat = self.job.input.stat()
        cfg = dataclasses.asdict(self.cfg)
        return {"input": str(self.job.input.resolve()), "size": stat.st_size, "mtime": stat.st_mtime,
                "styles": [str(p.resolve()) for p in self.job.styles], "config": cfg,
                "start": self.job.start, "duration": self.job.duration, "network": self.network.sha256,
                "lanes": [dataclasses.astuple(lane) for lane in self.lanes], "frames": self.n_frames,
                "work_size": [self.height, self.width], "processes": self.job.num_processes}

    def prepare_work_dir(self) -> None:
        manifest = self.work / "manifest.json"
        fp = json.loads(json.dumps(self.fingerprint(), default=str))
        if self.job.resume and manifest.is_file():
            old = json.loads(manifest.read_text())
            if old != fp:
                raise UserError(f"cannot resume: {self.work} belongs to a run with other inputs or settings")
            return
        if self.job.process_id == 0:
            if self.work.exists() and not manifest.is_file() and any(self.work.iterdir()):
                raise UserError(f"work directory {self.work} is not empty and is not a jaxstyle work directory; "
                                "choose another --work-dir")
            if self.work.exists() and not self.job.resume:
                self.remove_work()
            (self.work / "frames").mkdir(parents=True, exist_ok=True)
            tmp = manifest.with_suffix(".tmp")
            tmp.write_text(json.dumps(fp, indent=1))
            os.replace(tmp, manifest)
        else:  # wait until process 0 has prepared the work directory for these very settings
            deadline = time.time() + 600
            while True:
                try:
                    if json.loads(manifest.read_text()) == fp:
                        break
                except (OSError, ValueError):
                    pass
                if time.time() > deadline:
                    raise UserError(f"process 0 never prepared {self.work} for these settings")
                time.sleep(0.2)

    def remove_work(self) -> None:
        """Delete the work directory, which holds only what this engine wrote (it has our manifest)."""
        if (self.work / "manifest.json").is_file():
            shutil.rmtree(self.work, ignore_errors=True)

    def frame_path(self, t: int, lane: int, pass_index: int = 1) -> Path:
        folder = "frames" if pass_index == 1 else f"pass{pass_index}"
        return self.work / folder / f"{t:06d}_{lane:03d}.png"

    def save_png(self, path: Path, image_u8: np.ndarray) -> None:
        import imageio.v3 as iio

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.png")
        iio.imwrite(tmp, image_u8)
        os.replace(tmp, path)

    def load_png(self, path: Path) -> np.ndarray:
        import imageio.v3 as iio

        return np.asarray(iio.imread(path))

    def save_checkpoint(self, step: int, tree: dict) -> None:
        """Checkpoint the lanes' histories after ``step``.

        One process: an Orbax CheckpointManager (the last two steps kept). Several processes: each
        process writes its own atomically replaced ``.npz``, because Orbax's managers synchronize
        every process on each save and restore, which does not fit processes that run their lanes
        independently and may resume separately.
        """
        if self.job.num_processes == 1:
            self._manager().save(step, args=_standard_save(tree))
            self._manager().wait_until_finished()
            return
        flat = {"step": np.int64(step)}
        for lane, data in tree.items():
            for t, image in data["outputs"].items():
                flat[f"{lane}/{t}"] = image
        path = self.work / f"ckpt_p{self.job.process_id}.npz"
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, **flat)
        os.replace(tmp, path)

    def load_checkpoint(self) -> tuple[int, dict] | None:
        if self.job.num_processes == 1:
            manager = self._manager()
            last = manager.latest_step()
            if last is None:
                return None
            import orbax.checkpoint as ocp

            return last, manager.restore(last, args=ocp.args.StandardRestore())
        path = self.work / f"ckpt_p{self.job.process_id}.npz"
        if not path.is_file():
            return None
        tree: dict = {}
        with np.load(path) as data:
            step = int(data["step"])
            for key in data.files:
                if key != "step":
                    lane, t = key.split("/")
                    tree.setdefault(lane, {"outputs": {}})["outputs"][t] = data[key]
        return step, tree

    def _manager(self):
        if getattr(self, "_orbax", None) is None:
            import orbax.checkpoint as ocp

            options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True)
            self._orbax = ocp.CheckpointManager((self.work / "ckpt").resolve(), options=options)
        return self._orbax

    # ---- pass 1: lanes --------------------------------------------------------------------------
    def temporal_inputs(self, t: int, contents: dict[int, np.ndarray], outputs: dict[int, np.ndarray]):
        """(init, target, mask) for frame t from the lane's history of contents and 8-bit outputs."""
        warped, masks = [], []
        for j in self.cfg.long_term:
            if t - j not in outputs:
                continue
            pair = np.stack([contents[t - j], contents[t]])
            forward, backward = self.flow_cache.get(pair, self.cfg.flow)
            w_, m_ = _pair_terms(jnp.asarray(from_u8(outputs[t - j])), jnp.asarray(forward[0]),
                                 jnp.asarray(backward[0]))
            warped.append(w_)
            masks.append(m_)
        target, mask = _combine(jnp.stack(warped), jnp.stack(masks))
        return np.asarray(warped[0]), np.asarray(target), np.asarray(mask)

    def run_lanes(self) -> dict:
        cfg, lanes = self.cfg, self.my_lanes
        history = max(cfg.long_term)
        steps = max(lane.length for lane in self.lanes)
        start_step = 0
        contents: list[dict[int, np.ndarray]] = [dict() for _ in lanes]
        outputs: list[dict[int, np.ndarray]] = [dict() for _ in lanes]
        restored = self.load_checkpoint() if self.job.resume else None
        if restored is not None:
            last, state = restored
            for i, lane in enumerate(lanes):
                for key, value in state.get(f"lane{i}", {"outputs": {}})["outputs"].items():
                    outputs[i][int(key)] = np.asarray(value)
                if outputs[i]:  # the contents of the history are decoded again, not stored
                    first = min(outputs[i])
                    last_t = max(outputs[i])
                    for t, frame in zip(range(first, last_t + 1), self.reader(first, last_t + 1 - first)):
                        contents[i][t] = frame
            start_step = last + 1
            self.log(f"resuming at step {start_step} of {steps}")
        readers = [self.reader(lane.start + start_step, lane.length - start_step)
                   if start_step < lane.length else iter(()) for lane in lanes]
        later = dataclasses.replace(cfg, start_size=0, iterations=cfg.video_iterations)
        stats = {"iterations_first": 0, "iterations_later": 0, "steps": steps, "first_frame_losses": [],
                 "later_frame_losses": [], "compile_seconds": 0.0}
        bar = None
        if self.job.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, initial=start_step, unit="step", desc=f"lanes x{len(self.lanes)}",
                       dynamic_ncols=True)
        t0 = time.perf_counter()
        for k in range(start_step, steps):
            batch, inits, targets, masks, frames_t = [], [], [], [], []
            for i, lane in enumerate(lanes):
                t = lane.start + min(k, lane.length - 1)
                if k < lane.length:
                    frame = next(readers[i], None)
                    if frame is None:
                        raise UserError(f"{self.job.input} ended early (frame {t} of {self.n_frames})")
                    contents[i][t] = frame
                frames_t.append(t)
                batch.append(contents[i][t])
                if k > 0:
                    init, target, mask = self.temporal_inputs(t, contents[i], outputs[i]) if k < lane.length \
                        else (from_u8(outputs[i][t]), from_u8(outputs[i][t]), np.zeros(batch[-1].shape[:2], np.float32))
                    inits.append(init)
                    targets.append(target)
                    masks.append(mask)
            frames = np.stack(batch)
            styles_per_frame = self.frame_styles(frames_t)
            if k == 0:
                result = stylize_frames(frames, self.style_images, cfg, network=self.network,
                                        frame_styles=styles_per_frame, devices=self.local_devices,
                                        regions=self.regions_for(frames_t))
                stats["iterations_first"] = result.metrics["iterations"]
                stats["first_frame_losses"] = result.metrics["final"]["total"]
                stats["first_frame_trace"] = self._trace(result.metrics)
            else:
                temporal = Temporal(np.stack(targets), np.stack(masks), cfg.temporal_weight)
                result = stylize_frames(frames, self.style_images, later, network=self.network,
                                        init=np.stack(inits), temporal=temporal,
                                        frame_styles=styles_per_frame, devices=self.local_devices,
                                        regions=self.regions_for(frames_t))
                stats["iterations_later"] = result.metrics["iterations"]
                if k == 1:
                    stats["second_frame_trace"] = self._trace(result.metrics)
            stats["compile_seconds"] += result.metrics["compile_seconds"]
            for i, lane in enumerate(lanes):
                if k < lane.length:
                    t = frames_t[i]
                    out = to_u8(result.images[i])
                    outputs[i][t] = out
                    self.save_png(self.frame_path(t, lane.index), out)
                    for old in [x for x in outputs[i] if x <= t - history]:
                        outputs[i].pop(old)
                        contents[i].pop(old, None)
            self.save_checkpoint(k, {f"lane{i}": {"outputs": {str(t): v for t, v in outputs[i].items()}}
                                     for i in range(len(lanes))})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(frames_per_s=f"{(k + 1 - start_step) * len(lanes) / (time.perf_counter() - t0):.2f}")
        if bar is not None:
            bar.close()
        if getattr(self, "_orbax", None) is not None:
            self._orbax.close()
        stats["lane_seconds"] = time.perf_counter() - t0
        return stats

    @staticmethod
    def _trace(metrics: dict) -> list[float]:
        return [float(np.mean(s["final"]["total"])) for s in metrics["scales"]]

    # ---- refinement passes ----------------------------------------------------------------------
    def assembled_frame(self, t: int, pass_index: int) -> np.ndarray:
        """Frame t of a pass at the working size, uint8 (lanes cross-faded in pass 1)."""
        if pass_index > 1:
            return self.load_png(self.frame_path(t, 0, pass_index))
        owners = [lane for lane in self.lanes if lane.start <= t < lane.stop]
        if len(owners) == 1:
            return self.load_png(self.frame_path(t, owners[0].index))
        a, b = owners[0], owners[-1]
        alpha = blend_weight(t, b)
        img = (1 - alpha) * from_u8(self.load_png(self.frame_path(t, a.index))) \
            + alpha * from_u8(self.load_png(self.frame_path(t, b.index)))
        return to_u8(img)

    def refine(self, pass_index: int) -> None:
        """All frames in parallel batches, each pulled toward both neighbours of the previous pass."""
        cfg = dataclasses.replace(self.cfg, start_size=0, iterations=self.cfg.video_iterations)
        n = self.n_frames
        batch = max(1, self.cfg.frames_per_device * len(self.local_devices))
        mine = [t for t in range(n) if t % self.job.num_processes == self.job.process_id]
        for s in range(0, len(mine), batch):
            ts = mine[s:s + batch]
            reader = self.reader(max(0, ts[0] - 1), min(n, ts[-1] + 2) - max(0, ts[0] - 1))
            contents = {max(0, ts[0] - 1) + i: f for i, f in enumerate(reader)}
            prev = {t: from_u8(self.assembled_frame(t, pass_index - 1)) for t in contents}
            inits, targets, masks = [], [], []
            for t in ts:
                warped, ms = [], []
                for u in (t - 1, t + 1):
                    if u in prev:
                        fwd, bwd = self.flow_cache.get(np.stack([contents[u], contents[t]]), self.cfg.flow)
                        w_, m_ = _pair_terms(jnp.asarray(prev[u]), jnp.asarray(fwd[0]), jnp.asarray(bwd[0]))
                        warped.append(np.asarray(w_))
                        ms.append(np.asarray(m_))
                total = np.sum(ms, axis=0)
                target = np.sum([m[..., None] * w for m, w in zip(ms, warped)], axis=0) / np.maximum(total, 1e-6)[..., None]
                inits.append(prev[t])
                targets.append(target)
                masks.append(total)
            frames = np.stack([contents[t] for t in ts])
            pad = batch - len(ts)
            if pad:
                frames = np.concatenate([frames, np.repeat(frames[-1:], pad, 0)])
                inits += [inits[-1]] * pad
                targets += [targets[-1]] * pad
                masks += [masks[-1]] * pad
            temporal = Temporal(np.stack(targets), np.stack(masks), self.cfg.temporal_weight)
            result = stylize_frames(frames, self.style_images, cfg, network=self.network, init=np.stack(inits),
                                    temporal=temporal, frame_styles=self.frame_styles(ts + [ts[-1]] * pad),
                                    regions=self.regions_for(ts + [ts[-1]] * pad),
                                    devices=self.local_devices)
            for i, t in enumerate(ts):
                self.save_png(self.frame_path(t, 0, pass_index), to_u8(result.images[i]))

    # ---- barrier, assembly, metrics --------------------------------------------------------------
    def barrier(self, name: str) -> None:
        if self.job.num_processes == 1:
            return
        marker = self.work / f"{name}_p{self.job.process_id}.done"
        marker.write_text("ok")
        deadline = time.time() + 24 * 3600
        while not all((self.work / f"{name}_p{p}.done").exists() for p in range(self.job.num_processes)):
            if time.time() > deadline:
                raise UserError(f"timed out waiting for the other processes at {name}")
            time.sleep(0.2)

    def assemble(self, last_pass: int) -> dict:
        job = self.job
        errors: list[float] = []
        prev = prev_content = None
        reader = self.reader(0, self.n_frames)
        audio_from = job.input if job.audio else None
        audio_start = job.start if job.start else 0.0
        audio_duration = float(Fraction(self.n_frames) / self.fps) if (job.start or job.duration) else None
        out_size = (self.info.height, self.info.width)
        with video_io.VideoWriter(job.output, self.info.width, self.info.height, self.fps, quality=job.quality,
                                  audio_from=audio_from, audio_start=audio_start,
                                  audio_duration=audio_duration) as writer:
            for t in range(self.n_frames):
                frame = from_u8(self.assembled_frame(t, last_pass))
                content = next(reader)
                if prev is not None:
                    fwd, bwd = self.flow_cache.get(np.stack([prev_content, content]), self.cfg.flow)
                    warped, mask = _pair_terms(jnp.asarray(prev), jnp.asarray(fwd[0]), jnp.asarray(bwd[0]))
                    errors.append(float(flowlib.temporal_loss(jnp.asarray(frame), warped, mask)))
                full = imaging.resize(frame, *out_size) if frame.shape[:2] != out_size else frame
                writer.write(full)
                if job.frames_dir is not None:
                    self.save_png(job.frames_dir / f"frame_{t:06d}.png", to_u8(full))
                prev, prev_content = frame, content
        errs = np.asarray(errors)
        return {"pair_temporal_errors": errs.tolist(),
                "stability_error": float(np.sqrt(errs.mean())) if len(errs) else 0.0,
                "max_pair_over_median": float(errs.max() / max(np.median(errs), 1e-12)) if len(errs) else 0.0}

    def run(self) -> dict:
        t0 = time.perf_counter()
        self.prepare_work_dir()
        if self.job.process_id == 0:
            self.prepare_masks()
        self.barrier("masks")
        self.log(f"video {self.info.width}x{self.info.height} @ {float(self.fps):.3f} fps, {self.n_frames} frames "
                 f"-> working size {self.width}x{self.height}; {len(self.lanes)} lane(s) "
                 f"({len(self.my_lanes)} here), {max(lane.length for lane in self.lanes)} steps")
        stats = self.run_lanes() if self.my_lanes else {"iterations_first": 0, "iterations_later": 0, "steps": 0,
                                                         "compile_seconds": 0.0}
        self.barrier("pass1")
        for p in range(2, self.cfg.passes + 1):
            self.refine(p)
            self.barrier(f"pass{p}")
        metrics: dict[str, Any] = {"lanes": [dataclasses.asdict(lane) for lane in self.lanes], **stats}
        if self.job.process_id == 0:
            metrics.update(self.assemble(self.cfg.passes))
            if not self.job.keep_work:
                self.remove_work()
        wall = time.perf_counter() - t0
        metrics.update({
            "frames": self.n_frames, "fps": str(self.fps), "work_size": [self.height, self.width],
            "output_size": [self.info.height, self.info.width], "wall_seconds": wall,
            "frames_per_second": self.n_frames / wall, "network": self.network.describe(),
            "devices": len(self.local_devices), "processes": self.job.num_processes,
            # the optimizer iterations actually spent, overlap frames included, per output frame
            "iterations_per_frame": (stats["iterations_first"] * len(self.lanes) + stats["iterations_later"]
                                     * (sum(lane.length for lane in self.lanes) - len(self.lanes))) / self.n_frames
            + (self.cfg.passes - 1) * self.cfg.video_iterations,
            "lane_frames_computed": sum(lane.length for lane in self.lanes),
            "config": dataclasses.asdict(self.cfg),
        })
        return metrics


def _standard_save(tree):
    import orbax.checkpoint as ocp

    return ocp.args.StandardSave(tree)


def stylize_video(job: VideoJob, network: Network, log=print) -> dict:
    return VideoStylizer(job, network, log).run()
