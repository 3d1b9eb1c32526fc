"""One step of a video schedule: a batch of frames (with their style frames, masks and temporal
inputs) through the stylization schedules."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import schedules
from ..nets.vgg import Network
from ..objective import Temporal
from .source import VideoSource
from .workdir import WorkDir


def stylize_step(source: VideoSource, work: WorkDir, config, network: Network, devices, contents: np.ndarray,
                 frame_ids: Sequence[int], init: np.ndarray | None = None, temporal: Temporal | None = None):
    """Stylize ``contents`` [B, H, W, 3], the frames at times ``frame_ids``; returns a Result."""
    frames = schedules.prepare(contents, source.style_images, config, init=init, temporal=temporal,
                               frame_styles=source.frame_styles(frame_ids),
                               regions=source.regions_for(frame_ids, work.masks))
    return schedules.stylize(frames, config, network, devices=devices)
