"""Shape buckets: the images of a job whose working shape and settings agree are optimized
together, ``frames_per_device x devices`` frames at a time, each frame with its own style target
and its own optimizer state. The solver compiles once per shape, so a bucket costs one compile
per scale however many items it holds.

An image is batched when its result cannot depend on its neighbours: content init (noise is drawn
for the whole batch), one style image (each frame's target is that image's Gram matrices, the same
as a run of its own), no colour preservation (its reference is every content of the batch), no
semantic masks, and a working size below the tile size. Other images run one at a time.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Sequence

import numpy as np

from .. import schedules
from ..nets.vgg import Network


def batchable(config, height: int, width: int, n_styles: int) -> bool:
    """Whether an image with this (resolved) config and working size can share a batch."""
    return (config.init == "content" and n_styles == 1 and config.preserve_colors == "none"
            and config.content_mask is None and not schedules.is_tiled(config, height, width))


def config_key(config) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)


@dataclasses.dataclass
class Bucket:
    """Items (any payload) that share a working shape and a config."""

    shape: tuple[int, int]
    config: Any
    items: list = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.shape[1]}x{self.shape[0]}"


def group_buckets(entries: Sequence[tuple[tuple[int, int], Any, Any]], max_items: int) -> list[Bucket]:
    """Group ``(shape, config, item)`` entries by shape and config (first appearance order), each
    bucket split into runs of at most ``max_items`` items (memory: the contents are held at once)."""
    groups: dict[tuple, Bucket] = {}
    for shape, config, item in entries:
        key = (tuple(shape), config_key(config))
        groups.setdefault(key, Bucket(tuple(shape), config)).items.append(item)
    buckets = []
    for bucket in groups.values():
        for start in range(0, len(bucket.items), max_items):
            buckets.append(Bucket(bucket.shape, bucket.config, bucket.items[start:start + max_items]))
    return buckets


def _frame_metrics(metrics: dict, i: int) -> dict:
    """Frame ``i``'s share of a batch's metrics: its losses (initial, final, per scale) and the
    batch's iterations and times."""
    def losses(parts: dict) -> dict:
        return {k: float(np.asarray(v).reshape(-1)[i]) for k, v in parts.items()}
    out = {k: v for k, v in metrics.items() if k not in ("config", "initial", "final", "scales")}
    out["initial"], out["final"] = losses(metrics.get("initial", {})), losses(metrics.get("final", {}))
    out["scales"] = [{**s, "initial": losses(s["initial"]), "final": losses(s["final"])}
                     for s in metrics.get("scales", [])]
    return out


def stylize_bucket(contents: Sequence[np.ndarray], styles: Sequence[np.ndarray], config, network: Network,
                   devices=None) -> tuple[np.ndarray, list[dict]]:
    """Stylize a bucket's images (each already at the bucket's working size) with one style image
    each; returns the images [N, H, W, 3] and every image's metrics."""
    frames = schedules.prepare(np.stack([np.asarray(c, np.float32) for c in contents]), [styles[0]], config,
                               frame_styles=[[np.asarray(s, np.float32)] for s in styles])
    result = schedules.stylize(frames, config, network, devices=devices)
    return result.images, [_frame_metrics(result.metrics, i) for i in range(len(contents))]
