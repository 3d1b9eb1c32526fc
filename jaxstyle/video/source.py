"""What a video job reads: the content video (probed, streamed at the working size, a segment of
it), its style images or style video, and its semantic masks (an image, or a mask video decoded
once into the work directory)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UserError
from ..imaging import target_size
from ..io import video as video_io
from ..io.images import read_image
from ..io.labels import content_labels, read_style_masks
from ..objective import Regions, build_regions


def load_content_mask(config, info, style_images: Sequence[np.ndarray], start: float = 0.0,
                      duration: float | None = None):
    """The style masks' labels, the content mask image (None for a mask video) and the mask video's
    probe (None for an image), checked as an image's masks are: the content mask at the video's size,
    and its colours meeting the style masks' (a mask video's first frame of the segment). The CLI
    calls it before the work starts; :class:`VideoSource` again when it loads."""
    labels = read_style_masks(config.style_mask, style_images)
    mask = Path(config.content_mask)
    mask_image, mask_info = None, (video_io.probe(mask) if video_io.is_video(mask) else None)
    if mask_info is None:
        mask_image = first = read_image(mask)
        size = first.shape[1], first.shape[0]
    else:
        size = mask_info.width, mask_info.height
        if start and round(Fraction(start) * mask_info.fps) >= video_io.expected_frame_count(mask_info):
            raise UserError(f"--content-mask {mask} ({mask_info.duration:.3f}s) has no frame at --start {start:g}s")
        frames = video_io.iter_frames(mask, mask_info, start=start, duration=duration)
        first = next(iter(frames), None)
        frames.close()
        if first is None:
            raise UserError(f"--content-mask {mask} has no frames")
    if size != (info.width, info.height):
        raise UserError(f"--content-mask {mask} is {size[0]}x{size[1]} px but the video is {info.width}x{info.height}")
    height, width = target_size(info.height, info.display_width, config.size)
    build_regions(content_labels(first, labels, height, width), labels, (height, width),
                  [s.shape[:2] for s in style_images])
    return labels, mask_image, mask_info


class VideoSource:
    """The content video of a job at its working size, with its styles and masks. (The lanes,
    refinement and assembly read only :meth:`reader`, ``n_frames``, ``fps``, the working size, the
    styles and the masks: :class:`FramesSource` gives the same from frames in memory.)"""

    # frames [B, H, W, 3] -> initial images (``--init network``: a trained network's output)
    warm_start = None

    def __init__(self, path: Path, style_paths: Sequence[Path], config, start: float = 0.0,
                 duration: float | None = None):
        self.path = path
        self.config = config
        self.info = video_io.probe(path)
        if self.info.is_still:
            raise UserError(f"{path} is a still image, not a video")
        self.n_frames = video_io.expected_frame_count(self.info, start, duration)
        if self.n_frames < 1:
            raise UserError(f"{path} has no frames in the selected segment")
        self.start, self.duration = start, duration
        self.fps = self.info.fps
        self.first_frame = round(Fraction(start) * self.fps) if start else 0
        # square pixels: an anamorphic video is stylized at its display aspect and written back
        # at its stored size (with its pixel aspect), so its strokes are not stretched on screen
        self.height, self.width = target_size(self.info.height, self.info.display_width, config.size)
        if min(self.height, self.width) < 16:
            raise UserError(f"working size {self.width}x{self.height} is too small; use a larger --size")
        self.style_paths = list(style_paths)
        self.style_images, self.style_video, self.style_fps = self._load_styles()
        self.style_labels = self._load_style_masks()

    # ---- frames ---------------------------------------------------------------------------------
    def reader(self, first: int, count: int):
        """Frames ``first .. first + count - 1`` of the segment, float32 at the working size."""
        start = float((self.first_frame + first) / self.fps) if (self.first_frame + first) else 0.0
        duration = float(Fraction(count) / self.fps)
        return video_io.iter_frames(self.path, self.info, size=(self.width, self.height), start=start,
                                    duration=duration)

    # ---- styles ---------------------------------------------------------------------------------
    def _load_styles(self):
        images, video, fps = [], None, None
        for path in self.style_paths:
            if video_io.is_video(path):
                if video is not None or len(self.style_paths) > 1:
                    raise UserError("a style video cannot be blended with other styles")
                info = video_io.probe(path)
                h, w = target_size(info.height, info.display_width, max(self.height, self.width))
                video = np.stack(list(video_io.iter_frames(path, info, size=(w, h))))
                if len(video) == 0:
                    raise UserError(f"style video {path} has no frames")
                fps = info.fps
                images.append(video[0])
            else:
                images.append(read_image(path))
        return images, video, fps

    def frame_styles(self, frames: Sequence[int]) -> list[list[np.ndarray]] | None:
        """Style video: the style frames at the same time (looped), a window around each."""
        if self.style_video is None:
            return None
        n = len(self.style_video)
        half = self.config.video.style_window // 2
        out = []
        for t in frames:
            center = int(round(float(Fraction(t) / self.fps * self.style_fps)))
            out.append([self.style_video[(center + d) % n] for d in range(-half, half + 1)])
        return out

    # ---- semantic masks -------------------------------------------------------------------------
    def _load_style_masks(self):
        if self.config.content_mask is None:
            return None
        if self.style_video is not None:
            raise UserError("semantic masks cannot be combined with a style video")
        labels, self.mask_image, self.mask_info = load_content_mask(self.config, self.info, self.style_images,
                                                                    self.start, self.duration)
        return labels

    def prepare_masks(self, folder: Path) -> None:
        """Content mask video -> one label array per frame (working size) in ``folder``, decoded in
        one streaming pass. Frame i of the mask goes with frame i of the processed segment (same
        start time); a shorter mask video repeats its last frame."""
        if self.style_labels is None or self.mask_info is None or (folder / "done").exists():
            return
        folder.mkdir(parents=True, exist_ok=True)
        t = -1
        frames = video_io.iter_frames(self.config.content_mask, self.mask_info, start=self.start,
                                      duration=self.duration)
        for t, frame in enumerate(frames):
            if t >= self.n_frames:
                frames.close()
                break
            np.save(folder / f"{t:06d}.npy", content_labels(frame, self.style_labels, self.height, self.width))
        if t < 0:
            raise UserError(f"--content-mask {self.config.content_mask} has no frames")
        (folder / "done").write_text("ok")

    def regions_for(self, frames: Sequence[int], folder: Path) -> Regions | None:
        """Semantic regions of the frames at times ``frames`` (None without masks); a mask video's
        labels come from ``folder`` (:meth:`prepare_masks`)."""
        if self.style_labels is None:
            return None
        if self.mask_info is None:
            labels = content_labels(self.mask_image, self.style_labels, self.height, self.width)
            stack = np.broadcast_to(labels, (len(frames),) + labels.shape)
        else:
            last = max(int(p.stem) for p in folder.glob("*.npy"))
            stack = np.stack([np.load(folder / f"{min(t, last):06d}.npy") for t in frames])
        return build_regions(stack, self.style_labels, (self.height, self.width),
                             [s.shape[:2] for s in self.style_images])


class FramesSource(VideoSource):
    """A clip already in memory (frames at their working size, style images as arrays): the same
    interface as :class:`VideoSource` for the lanes and refinement passes, with no file and no
    ffmpeg (a generated clip in benchmarks/device_check.py, tests)."""

    def __init__(self, frames: np.ndarray, style_images: Sequence[np.ndarray], config, fps: float = 30.0):
        self.frames = np.asarray(frames, np.float32)
        self.path = Path("(frames in memory)")
        self.config = config
        self.n_frames = len(self.frames)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.start, self.duration, self.first_frame = 0.0, None, 0
        self.height, self.width = self.frames.shape[1:3]
        self.style_paths, self.style_video, self.style_fps = [], None, None
        self.style_images = [np.asarray(s, np.float32) for s in style_images]
        self.style_labels = None
        self.info = None

    def reader(self, first: int, count: int):
        return iter(self.frames[first:first + count])
