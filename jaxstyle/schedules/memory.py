"""How much memory a stylization needs, checked before the work starts.

A run that does not fit would otherwise die deep inside XLA (an abort with a native stack) or be
killed by the kernel after minutes of work. The estimate is the peak of the largest step of the
schedule: the network's activations for the frames optimized at once (the whole frame, or one
window with coupled tiles, or one tile), plus what every frame keeps at its full size (the image,
its L-BFGS memory, gradients and line-search copies, and the content targets). The constants were
measured on a CPU (peak RSS of the CLI, VGG16); the estimate errs high by design, so a size it
accepts fits, and it refuses only what is far out of reach (a 100000 px frame) or close to the edge.
"""

from __future__ import annotations

import dataclasses
import math
import os

import jax

from ..errors import UserError
from ..imaging import scaled_size
from .tile_plan import is_tiled

GIB = 1024 ** 3
# Measured (CLI peak RSS, VGG16, L-BFGS, CPU): 0.94 / 1.40 / 3.17 GB untiled at 256 / 512 / 1024 px
# (3.1 KB more per pixel); 3.39 GB for 2048x1536 in coupled 512 px windows, 6.7 GiB for 3840x2160 in
# 1024 px windows. The constants below give 3-25% more.
BASE_BYTES = 1.0 * GIB          # the process, XLA and the network's weights
ACTIVATION_BYTES_PER_PX = 3200  # VGG16 forward + backward, per pixel of a frame (or of a window) at once
FRAME_BYTES_PER_PX = 500        # per pixel of every frame at its full size: image, gradient, L-BFGS memory, targets
VGG19_FACTOR = 1.35             # VGG19's blocks 3-5 have four convolutions, not three


def available_bytes(device: jax.Device | None = None) -> int:
    """The memory a run may use: an accelerator's own limit, or the host's available memory."""
    device = device or jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if stats.get("bytes_limit"):
            return int(stats["bytes_limit"])
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def estimate_bytes(config, height: int, width: int, frames: int = 1, devices: int = 1, arch: str = "vgg16") -> float:
    """Peak bytes of stylizing ``frames`` frames of height x width on ``devices`` devices (a resolved
    config): the largest batch's activations plus every frame's full-size state."""
    batch = max(1, min(frames, config.frames_per_device * devices))
    per_device = -(-batch // devices)
    if is_tiled(config, height, width):
        window = config.tiles.size ** 2
        at_once = per_device if config.tiles.mode == "independent" or frames > 1 else config.frames_per_device
        active = window * at_once
    else:
        active = height * width * per_device
    factor = VGG19_FACTOR if arch == "vgg19" else 1.0
    return BASE_BYTES + factor * ACTIVATION_BYTES_PER_PX * active + FRAME_BYTES_PER_PX * height * width * per_device


def loss_arch(config) -> str:
    """The loss network's family, for the estimates (a VGG19 weighs more than a VGG16)."""
    return "vgg19" if "19" in str(config.network) else "vgg16"


def check_memory(config, height: int, width: int, frames: int = 1, *, arch: str | None = None,
                 devices: int | None = None) -> None:
    """Raise a one-line UserError when the run cannot fit, naming the largest size that does (or
    the tile size that would)."""
    arch = arch or loss_arch(config)
    devices = devices or len(jax.local_devices())
    need = estimate_bytes(config, height, width, frames, devices, arch)
    have = available_bytes()
    if need <= have:
        return
    long_side = max(height, width)
    batch = max(1, min(frames, config.frames_per_device * devices))
    fewer = next((f for f in range(-(-batch // devices) - 1, 0, -1)  # fewer frames at once, at this size
                  if estimate_bytes(dataclasses.replace(config, frames_per_device=f), height, width, frames, devices,
                                    arch) <= have), None)
    if fewer:
        hint = f"use --frames-per-device {fewer} (at most that many frames at once per device fit at this size)"
    else:
        fits = _largest_fitting(config, height, width, frames, devices, arch, have)
        hint = f"the largest --size that fits is about {fits} px" if fits else "even the smallest size does not fit"
    if not is_tiled(config, height, width):
        tiled = _with_tiles(config)
        if estimate_bytes(tiled, height, width, frames, devices, arch) <= have:
            hint += f", or keep the size and tile it: --tile-size {tiled.tiles.size}"
    what = f"{batch} frames of {width}x{height}" if batch > 1 else f"a {width}x{height} frame"
    raise UserError(f"{what} ({long_side} px) need{'' if batch > 1 else 's'} about {need / GIB:.1f} GiB of memory but "
                    f"{have / GIB:.1f} GiB are available; {hint}")


def _with_tiles(config):
    return dataclasses.replace(config, tiles=dataclasses.replace(config.tiles, size=config.tiles.size or 1024))


def _largest_fitting(config, height, width, frames, devices, arch, have) -> int | None:
    lo, hi = 16, max(height, width)
    if estimate_bytes(config, *scaled_size(height, width, lo), frames, devices, arch) > have:
        return None
    while hi - lo > 8:
        mid = (lo + hi) // 2
        if estimate_bytes(config, *scaled_size(height, width, mid), frames, devices, arch) <= have:
            lo = mid
        else:
            hi = mid
    return int(math.floor(lo / 16) * 16) or lo


# Training a feed-forward network (``python cli.py train``): per crop pixel, the loss network's
# activations as above (each crop is a frame pair when video data trains the temporal term), plus
# the transformation network's own activations and their gradients; per parameter, the parameter,
# its gradient and Adam's two moments. A rough bound, like the one above: it refuses what is far
# out of reach (a batch of a million crops, a network 100000 channels wide), not what is tight.
TRAIN_NET_BYTES_PER_PX_PER_CHANNEL = 4 * 3 * 6   # float32 x (activation, norm, gradient) x ~6 full-size maps
TRAIN_PARAM_BYTES = 4 * 4                         # float32 x (parameter, gradient, Adam's two moments)


def estimate_training_bytes(train, devices: int = 1, arch: str = "vgg16") -> float:
    """Peak bytes of one training step per device (``train`` a TrainConfig)."""
    per_device = -(-train.batch_size // devices) * (2 if train.temporal_weight > 0 else 1)
    px = train.size * train.size * per_device
    loss_net = (VGG19_FACTOR if arch == "vgg19" else 1.0) * ACTIVATION_BYTES_PER_PX * px
    net = TRAIN_NET_BYTES_PER_PX_PER_CHANNEL * train.width * px
    params = TRAIN_PARAM_BYTES * 9 * train.width ** 2 * (32 * train.blocks + 20)  # 3x3 convs at 4w in the blocks
    return BASE_BYTES + loss_net + net + params


def check_training_memory(train, *, arch: str = "vgg16", devices: int | None = None) -> None:
    """Raise a one-line UserError when a training step cannot fit, naming the batch that would.
    (--batch-size is over every device of every host, so its share per device uses them all.)"""
    devices = devices or jax.device_count()
    need = estimate_training_bytes(train, devices, arch)
    have = available_bytes()
    if need <= have:
        return
    fits = [b for b in (2 ** k for k in range(20, -1, -1)) if b < train.batch_size
            and estimate_training_bytes(dataclasses.replace(train, batch_size=b), devices, arch) <= have]
    hint = (f"try --batch-size {fits[0]}" if fits else "try a smaller --width or --size") + " (or more devices)"
    raise UserError(f"a training step (batch {train.batch_size} of {train.size} px crops, width {train.width}) needs "
                    f"about {need / GIB:.1f} GiB of memory but {have / GIB:.1f} GiB are available; {hint}")
