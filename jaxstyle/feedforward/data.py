"""Training data for feed-forward networks: folders of images and videos, streamed.

Each input is decoded once, at its training size, into a frame store on disk (one uint8 file per
image or video, read through a memory map), so the data set is never held in memory whole and a
step reads only the frames it uses. Every crop is a pure function of (seed, global sample index):
the sample's item (a per-epoch permutation), its crop offset, its flip and its style. So a resumed
run sees exactly the batches an uninterrupted one would, and each process of a multi-host job reads
only its own share of a step's samples, the same ones a single process would.

Video items are pairs of consecutive frames (when the temporal loss is on): the pair's flows come
from the engine's flow cache (computed once per pair at the store's size) and are cropped and
flipped with the frames; the occlusion mask is computed from them inside the training step.

Synthetic motion (Wang et al. 2020, "Consistent Video Style Transfer via Compound Regularization"):
a sample's earlier frame may instead be its own crop seen through a small random affine motion
(a shift of a few pixels, a slight rotation and zoom), whose flows are known exactly. Stills then
train the temporal term too, and a short clip's few real pairs are joined by unlimited made ones.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .. import imaging
from ..errors import UserError
from ..io.files import atomic_output, write_text_atomic
from ..io.images import IMAGE_EXTENSIONS, image_size, read_image
from ..io.video import expected_frame_count, is_video, iter_frames, probe
from ..video.flow import FlowCache

STORE_VERSION = 1

# the synthetic motion's range at the crop's scale, after a real clip's motion between frames at
# 256 px (median 0.2-1.1 px, 99th percentile 2.4-3.7 px on the bundled clips): the shift is up to
# 3 px; rotation and zoom about the centre add up to about 3 px each at a 256 px crop's corners
# (so up to about 10 px there, a few px over most of it), small enough that the flow's gradient
# stays under the occlusion mask's motion-boundary test.
MOTION_SHIFT_PX = 3.0
MOTION_ROTATE_DEG = 1.0
MOTION_ZOOM = 0.02


def affine_motion(rng: np.random.Generator, side: int) -> np.ndarray:
    """A random small similarity motion about the centre of a ``side`` crop, as the 2x3 matrix that
    maps a pixel (x, y) of the earlier frame to where it is in the later one."""
    angle = np.deg2rad(rng.uniform(-MOTION_ROTATE_DEG, MOTION_ROTATE_DEG))
    zoom = 1.0 + rng.uniform(-MOTION_ZOOM, MOTION_ZOOM)
    radius, direction = MOTION_SHIFT_PX * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
    a = zoom * np.asarray([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.full(2, (side - 1) / 2.0)
    shift = radius * np.asarray([np.cos(direction), np.sin(direction)])
    return np.concatenate([a, (centre + shift - a @ centre)[:, None]], axis=1)


def affine_flows(matrix: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact flows of ``matrix`` (earlier -> later pixel map) on a ``side`` crop: forward
    (earlier -> later, on the earlier grid) and backward (later -> earlier, on the later grid),
    each [side, side, 2] as (dx, dy)."""
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float64)
    grid = np.stack([xs, ys], axis=-1)
    inverse = cv2.invertAffineTransform(matrix)
    forward = grid @ matrix[:, :2].T + matrix[:, 2] - grid
    backward = grid @ inverse[:, :2].T + inverse[:, 2] - grid
    return forward.astype(np.float32), backward.astype(np.float32)


def mirrored_flow(flow: np.ndarray) -> np.ndarray:
    """The flow of the left-right mirrored frames: columns reversed and horizontal motion negated."""
    return flow[:, ::-1] * np.asarray([-1.0, 1.0], np.float32)


def training_size(height: int, width: int, crop: int, frame_size: int | None) -> tuple[int, int]:
    """The size an input of height x width is stored at: its long side ``frame_size``, or its
    short side ``crop``. Raises UserError when a crop does not fit."""
    if frame_size:
        h, w = imaging.scaled_size(height, width, frame_size)
    else:
        scale = crop / min(height, width)
        h, w = max(crop, int(round(height * scale))), max(crop, int(round(width * scale)))
    if min(h, w) < crop:
        raise UserError(f"a {width}x{height} input at --frame-size {frame_size} is {w}x{h} px, smaller than the "
                        f"{crop} px crops (--size); use a larger --frame-size or a smaller --size")
    return h, w


def find_inputs(paths: Sequence[str | os.PathLike], what: str = "--data",
                skip: str | os.PathLike | None = None) -> list[Path]:
    """Image and video files of ``paths`` (files, or folders searched recursively), sorted within a
    folder, each once; raises UserError for a missing path or when nothing usable is found. A
    folder's search leaves out ``skip`` (the model directory being written: its previews are not
    data) and hidden files and folders."""
    skip = Path(skip).resolve() if skip is not None else None
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if not path.exists():
            raise UserError(f"{what} {path} does not exist")
        if path.is_dir():
            # (-o that is DATA or holds it is no model inside the data: refused as a model folder later)
            inside = skip if skip is not None and path.resolve() in skip.parents else None
            files = sorted(p for p in path.rglob("*") if p.is_file() and _usable(p)
                           and not any(part.startswith(".") for part in p.relative_to(path).parts)
                           and (inside is None or inside not in p.resolve().parents))
            if not files:
                raise UserError(f"{what} {path} holds no images or videos")
            found += files
        elif _usable(path):
            found.append(path)
        else:
            raise UserError(f"{what} {path} is neither an image nor a video")
    seen: set[Path] = set()  # (a file named twice, or in two given folders, is one input)
    return [p for p in found if not (p.resolve() in seen or seen.add(p.resolve()))]


def check_sizes(paths: Sequence[Path], crop: int, frame_size: int | None, previews: int = 0,
                pairs: bool = False) -> int:
    """Every input is readable and large enough for the crops, and the data gives more items than
    the previews hold out (headers only, a video's frames as its container counts them; before any
    work: :class:`TrainingData` counts the decoded frames again); returns the number of items."""
    items = 0
    for path in paths:
        if is_video(path):
            info = probe(path)
            height, width = info.height, info.display_width
            frames = max(1, expected_frame_count(info))
            items += frames - 1 if pairs and frames > 1 else frames
        else:
            height, width = image_size(path)
            items += 1
        training_size(height, width, crop, frame_size)
    _check_previews(items, previews)
    return items


def _check_previews(items: int, previews: int) -> None:
    if items <= previews:
        raise UserError(f"the data gives {items} training item(s); --previews {previews} would hold out all "
                        "of them (use fewer previews, --preview-every 0, or more data)")


def _usable(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS or is_video(path)


@dataclass(frozen=True)
class Stored:
    """One input in the frame store."""

    source: str
    path: Path          # raw uint8 frames [frames, height, width, 3]
    frames: int
    height: int
    width: int
    is_video: bool

    def open(self) -> np.ndarray:
        return np.memmap(self.path, np.uint8, "r", shape=(self.frames, self.height, self.width, 3))


def _store_key(source: Path, crop: int, frame_size: int | None) -> str:
    stat = source.stat()
    text = f"v{STORE_VERSION}|{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{crop}|{frame_size}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def store_input(source: Path, folder: Path, crop: int, frame_size: int | None) -> Stored:
    """Decode ``source`` into ``folder`` at its training size (once: a stored input is reused).
    The frames are written under a temporary name and renamed, the description last."""
    folder.mkdir(parents=True, exist_ok=True)
    key = _store_key(source, crop, frame_size)
    raw, meta = folder / f"{key}.u8", folder / f"{key}.json"
    if meta.is_file() and raw.is_file():
        info = json.loads(meta.read_text())
        if raw.stat().st_size == info["frames"] * info["height"] * info["width"] * 3:
            return Stored(str(source), raw, info["frames"], info["height"], info["width"], info["is_video"])
    video = is_video(source)
    count = 0
    with atomic_output(raw) as tmp, open(tmp, "wb") as out:
        if video:
            info = probe(source)
            h, w = training_size(info.height, info.display_width, crop, frame_size)  # square pixels
            for frame in iter_frames(source, info, size=(w, h)):
                out.write(imaging.to_uint8(frame).tobytes())
                count += 1
            if not count:
                raise UserError(f"--data {source}: the video has no frames")
        else:
            image = read_image(source)
            h, w = training_size(image.shape[0], image.shape[1], crop, frame_size)
            out.write(imaging.to_uint8(imaging.resize(image, h, w)).tobytes())
            count = 1
    write_text_atomic(meta, json.dumps({"source": str(source), "frames": count, "height": h, "width": w,
                                        "is_video": video}))
    return Stored(str(source), raw, count, h, w, video)


@dataclass
class Batch:
    """One process's share of a step: crops [b, s, s, 3] and, for pairs, the earlier frames and the
    flows between them (zero flow and ``paired`` 0 for stills)."""

    contents: np.ndarray
    styles: np.ndarray            # [b] style index of each sample
    previous: np.ndarray | None = None
    forward: np.ndarray | None = None     # [b, s, s, 2] flow previous -> content (previous's grid)
    backward: np.ndarray | None = None    # [b, s, s, 2] flow content -> previous (content's grid)
    paired: np.ndarray | None = None      # [b] 1 where the sample is a real pair of video frames


class TrainingData:
    """The items of a training run and the crops of every step (see the module docstring).

    ``pairs``: video items are consecutive frame pairs (the temporal loss); image items are then
    stills paired with themselves, or, with ``motion`` > 0, with a synthetic motion of themselves.
    ``motion``: the share of video samples whose pair is a synthetic motion instead of the real
    previous frame (stills always take one). The first ``previews`` items, spread evenly over the
    data, are held out: never trained on, stylized for the preview sheets.
    """

    def __init__(self, stored: Sequence[Stored], crop: int, *, pairs: bool, seed: int, n_styles: int,
                 previews: int, flows: FlowCache | None = None, flow_method: str = "dis", motion: float = 0.0):
        self.stored, self.crop, self.pairs, self.seed, self.n_styles = list(stored), crop, pairs, seed, n_styles
        self.motion = motion
        self.flows, self.flow_method = flows, flow_method
        self._arrays = [s.open() for s in self.stored]
        items = []
        for i, s in enumerate(self.stored):
            first = 1 if (pairs and s.is_video and s.frames > 1) else 0
            items += [(i, t) for t in range(first, s.frames)]
        _check_previews(len(items), previews)
        held = set(np.linspace(0, len(items) - 1, previews).round().astype(int).tolist()) if previews else set()
        self.preview_items = [items[k] for k in sorted(held)]
        self.items = [item for k, item in enumerate(items) if k not in held]

    @property
    def any_pairs(self) -> bool:
        return self.pairs and (self.motion > 0 or any(s.is_video and s.frames > 1 for s in self.stored))

    def __len__(self) -> int:
        return len(self.items)

    def describe(self) -> str:
        videos = sum(s.is_video for s in self.stored)
        return (f"{len(self.stored) - videos} image(s), {videos} video(s): {len(self.items)} training item(s)"
                f"{' (frame pairs)' if self.any_pairs else ''}, {len(self.preview_items)} held out")

    def item_of(self, sample: int) -> tuple[int, int]:
        """The item of global sample index ``sample``: epochs are permutations of the items."""
        epoch, position = divmod(sample, len(self.items))
        order = np.random.default_rng([self.seed, 1, epoch]).permutation(len(self.items))
        return self.items[int(order[position])]

    def batch(self, samples: Sequence[int]) -> Batch:
        """The crops of the global sample indices ``samples``."""
        parts = [self._sample(g) for g in samples]
        contents = np.stack([p[0] for p in parts])
        styles = np.asarray([p[1] for p in parts], np.int32)
        if not self.any_pairs:
            return Batch(contents, styles)
        return Batch(contents, styles, np.stack([p[2] for p in parts]), np.stack([p[3] for p in parts]),
                     np.stack([p[4] for p in parts]), np.asarray([p[5] for p in parts], np.float32))

    def _sample(self, g: int):
        source, t = self.item_of(g)
        rng = np.random.default_rng([self.seed, 2, g])
        style = int(rng.integers(self.n_styles))
        y, x, flip = self._crop_at(rng, source)
        current = self._crop(source, t, y, x, flip)
        if not self.any_pairs:
            return current, style
        real = self.stored[source].is_video and t > 0
        motion_rng = np.random.default_rng([self.seed, 3, g])  # its own stream: the crops stay as without
        if self.motion > 0 and (not real or motion_rng.uniform() < self.motion):
            return (current, style) + self._synthetic_pair(motion_rng, source, t, y, x, flip)
        if real:
            previous = self._crop(source, t - 1, y, x, flip)
            forward, backward = self._flows(source, t)
            forward, backward = (self._crop_flow(f, y, x, flip) for f in (forward, backward))
            return current, style, previous, forward, backward, 1.0
        zero = np.zeros(current.shape[:2] + (2,), np.float32)
        return current, style, current, zero, zero, 0.0

    def _synthetic_pair(self, rng, source: int, t: int, y: int, x: int, flip: bool):
        """The crop at (y, x) of frame t seen one synthetic motion earlier, and the exact flows."""
        matrix = affine_motion(rng, self.crop)
        # earlier pixel q shows the scene point at later pixel M q, i.e. at M q + (x, y) in the frame
        to_frame = matrix + np.asarray([[0, 0, x], [0, 0, y]], np.float64)
        frame = np.asarray(self._arrays[source][t])  # uint8, as stored: only the crop's pixels are read
        previous = cv2.warpAffine(frame, to_frame, (self.crop, self.crop), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REFLECT)
        previous = imaging.from_uint8(previous)
        forward, backward = affine_flows(matrix, self.crop)
        if flip:
            previous = previous[:, ::-1]
            forward, backward = mirrored_flow(forward), mirrored_flow(backward)
        return (np.ascontiguousarray(previous, np.float32), np.ascontiguousarray(forward, np.float32),
                np.ascontiguousarray(backward, np.float32), 1.0)

    def _crop_at(self, rng, source: int) -> tuple[int, int, bool]:
        s = self.stored[source]
        return (int(rng.integers(s.height - self.crop + 1)), int(rng.integers(s.width - self.crop + 1)),
                bool(rng.integers(2)))

    def _crop(self, source: int, t: int, y: int, x: int, flip: bool) -> np.ndarray:
        crop = self._arrays[source][t, y:y + self.crop, x:x + self.crop]
        crop = crop[:, ::-1] if flip else crop
        return imaging.from_uint8(np.ascontiguousarray(crop))

    def _crop_flow(self, flow: np.ndarray, y: int, x: int, flip: bool) -> np.ndarray:
        crop = flow[y:y + self.crop, x:x + self.crop]
        if flip:
            crop = mirrored_flow(crop)
        return np.ascontiguousarray(crop, np.float32)

    def _flows(self, source: int, t: int) -> tuple[np.ndarray, np.ndarray]:
        frames = imaging.from_uint8(np.asarray(self._arrays[source][t - 1:t + 1]))
        forward, backward = self.flows.get(frames, self.flow_method)
        return forward[0], backward[0]

    def preview_frames(self) -> np.ndarray:
        """The held-out frames, centre-cropped to the training crop [P, s, s, 3]."""
        out = []
        for source, t in self.preview_items:
            s = self.stored[source]
            out.append(self._crop(source, t, (s.height - self.crop) // 2, (s.width - self.crop) // 2, False))
        return np.stack(out) if out else np.zeros((0, self.crop, self.crop, 3), np.float32)
