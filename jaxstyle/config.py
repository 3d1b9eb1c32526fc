"""The one configuration dataclass of a stylization run; the CLI's flags are derived from it.

Every field's ``metadata`` carries its help text (and choices); ``cli.py`` builds one flag per field.
Fields left as ``None`` are filled from the chosen preset by :meth:`StyleConfig.resolved`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import UserError
from .losses import DISTANCES

OPTIMIZERS = ("lbfgs", "adam", "sgd", "adagrad", "rmsprop")
DEFAULT_LEARNING_RATES = {"lbfgs": 1.0, "adam": 0.02, "sgd": 0.02, "adagrad": 0.05, "rmsprop": 0.005}
PRESERVE_COLORS = ("none", "luminance", "histogram")

# Presets trade time for quality. Each run is coarse-to-fine: the long side starts at
# ``start_size`` and grows by ``scale_factor`` up to the target size. ``coarse_iterations`` run at
# each coarser scale, ``iterations`` at the final (full) scale.
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"start_size": 128, "scale_factor": 2.0, "coarse_iterations": 40, "iterations": 40},
    "balanced": {"start_size": 128, "scale_factor": math.sqrt(2.0), "coarse_iterations": 60, "iterations": 100},
    "quality": {"start_size": 128, "scale_factor": math.sqrt(2.0), "coarse_iterations": 150, "iterations": 300},
}


def _f(default, help: str, *, choices=None, flag: str | None = None, metavar: str | None = None, **kw):
    meta = {"help": help}
    if choices is not None:
        meta["choices"] = choices
    if flag:
        meta["flag"] = flag
    if metavar:
        meta["metavar"] = metavar
    meta.update(kw)
    if isinstance(default, (list, dict, tuple)) and not isinstance(default, tuple):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class StyleConfig:
    """Everything that controls one stylization (images, video frames or tiles)."""

    size: int | None = _f(None, "long side of the output in px (default: the content's own size)", metavar="PX")
    preset: str = _f("balanced", "speed/quality trade-off", choices=tuple(PRESETS))
    iterations: int | None = _f(None, "optimizer iterations at the final scale (default: from the preset)", metavar="N")
    coarse_iterations: int | None = _f(None, "iterations at each coarser scale (default: from the preset)", metavar="N")
    start_size: int | None = _f(None, "long side of the first, coarsest scale in px; 0 = single scale (default: preset)", metavar="PX")
    scale_factor: float | None = _f(None, "growth of the long side from one scale to the next (default: preset)", metavar="F")
    optimizer: str = _f("lbfgs", "optimizer (optax); L-BFGS uses a zoom line search", choices=OPTIMIZERS)
    learning_rate: float | None = _f(None, "step size (default: 1 for lbfgs, 0.02 for adam, ...)", metavar="LR")
    content_weight: float = _f(1.0, "weight of the content loss")
    style_weight: float = _f(10.0, "weight of the style loss")
    tv_weight: float = _f(1.0, "weight of the total-variation regularizer")
    content_layers: tuple[str, ...] = _f(("relu4_2",), "comma-separated content layers", metavar="LAYERS")
    style_layers: tuple[str, ...] = _f(("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
                                       "comma-separated style layers", metavar="LAYERS")
    style_layer_weights: tuple[float, ...] | None = _f(None, "comma-separated weights of the style layers (default: equal, summing to 1)", metavar="W")
    style_weights: tuple[float, ...] | None = _f(None, "comma-separated blend weights of several --style images (default: equal)", metavar="W")
    style_scale: float = _f(1.0, "style image long side relative to the content's working size")
    distance: str = _f("mse", "distance used by the content and style losses", choices=DISTANCES)
    init: str = _f("content", "initial image: content, noise, style, or a path to an image", metavar="INIT")
    network: str = _f("auto", "vgg19, vgg16, random (benchmarks only), a weights file, or auto (VGG19 if ported, else VGG16)", metavar="NET")
    pooling: str = _f("avg", "pooling in the network (Gatys used average)", choices=("avg", "max"))
    preserve_colors: str = _f("none", "keep the content's colours: luminance-only transfer or histogram matching",
                              choices=PRESERVE_COLORS)
    seed: int = _f(0, "random seed (noise init)")
    frames_per_device: int = _f(1, "frames (or tiles) optimized at once on each device", metavar="N")
    chunk: int = _f(10, "iterations per compiled chunk (the progress bar updates between chunks)", metavar="N")

    # ---- large frames, photorealism, semantic masks ----
    tile_size: int = _f(1024, "frames whose long side is larger are optimized as overlapping tiles at the fine scales (0: never tile)", metavar="PX", group="tiles")
    tile_mode: str = _f("coupled", "coupled: one optimization of the whole frame whose losses and gradient are computed tile by tile (exactly the untiled result; tiles need 2 x the receptive field + 16 px, 144 px for VGG16); independent: tiles optimized on their own and stitched", choices=("coupled", "independent"), group="tiles")
    tile_overlap: int = _f(64, "independent tiles: overlap of neighbouring tiles in px (feathered)", metavar="PX", group="tiles")
    tile_iterations: int = _f(10, "iterations at the last tiled scale (the frame's size; at 4K each costs minutes on a CPU, so it only sharpens); independent tiles spread them over the rounds", metavar="N", group="tiles")
    tile_coarse_iterations: int | None = _f(None, "iterations at each tiled scale below the final one (default: --coarse-iterations, as untiled); these scales form the texture that the last one only sharpens (with a few, the output is blurred)", metavar="N", group="tiles")
    tile_targets: str = _f("offset", "independent tiles: style targets of a tile: the style's Gram plus the tile's own offset from the frame's mean Gram, or the style's Gram alone", choices=("offset", "global"), group="tiles")
    tile_rounds: int = _f(2, "independent tiles: rounds over the tiles at each tiled scale; the tile grid shifts between rounds so no seam settles", metavar="N", group="tiles")
    photoreal: float = _f(0.0, "weight of Luan et al.'s matting-Laplacian photorealism term (e.g. 1e3; 0: off)", metavar="LAMBDA", group="tiles")
    content_mask: str | None = _f(None, "label image (or video) of the content: style is matched region by region, by colour", metavar="PATH", group="tiles")
    style_mask: tuple[str, ...] | None = _f(None, "label image of each --style (comma-separated, in order); colours match --content-mask", metavar="PATHS", group="tiles")

    # ---- video (ignored for still images) ----
    temporal_weight: float = _f(200.0, "video: weight of the temporal loss toward the warped previous output(s)", group="video")
    video_iterations: int | None = _f(None, "video: iterations for each frame after the first of a lane, which starts from the warped previous output (default: half of --iterations)", metavar="N", group="video")
    long_term: tuple[int, ...] = _f((1, 2, 4), "video: earlier frames (offsets) that the temporal loss looks at, closest first", metavar="J", group="video")
    passes: int = _f(1, "video: 2 or more adds parallel refinement passes that pull each frame toward both warped neighbours", metavar="N", group="video")
    flow: str = _f("dis", "video: optical flow method (OpenCV DIS 'medium' preset, or DeepFlow with opencv-contrib)", choices=("dis", "deepflow", "farneback"), group="video")
    sequential: bool = _f(False, "video: one frame at a time in order (Ruder et al.), for comparison", group="video")
    overlap: int = _f(8, "video: frames by which neighbouring lanes overlap and are cross-faded (at most a lane's length - 1)", metavar="N", group="video")
    style_window: int = _f(5, "video: with a style video, Gram targets are averaged over this many style frames", metavar="N", group="video")

    # ---- audio (--style-audio; see jaxstyle/audio.py) ----
    audio_variant: str = _f("mel-gain", "audio: feature network and statistics (ulyanov = Ulyanov & Lebedev's baseline)", choices=("ulyanov", "mel-multi", "mel-stats", "mel-gain"), group="audio")
    audio_iterations: int = _f(200, "audio: L-BFGS iterations per chunk", metavar="N", group="audio")
    audio_filters: int | None = _f(None, "audio: random filters per layer (default: from the variant, e.g. 4096 for ulyanov)", metavar="N", group="audio")
    audio_content_weight: float = _f(0.3, "audio: weight of the per-frame content loss (the style loss has weight --audio-style-weight)", metavar="W", group="audio")
    audio_style_weight: float = _f(1.0, "audio: weight of the style Gram loss", metavar="W", group="audio")
    audio_griffin_lim_iters: int = _f(100, "audio: fast Griffin-Lim iterations (phase from the content)", metavar="N", group="audio")
    audio_chunk_seconds: float = _f(10.0, "audio: long audio is optimized in chunks of this length (overlapping, cross-faded)", metavar="SEC", group="audio")
    audio_batch: int = _f(2, "audio: chunks (x channels) optimized at once", metavar="N", group="audio")
    audio_stereo: str = _f("per-channel", "audio: stylize each channel, or mid and side, on its own", choices=("per-channel", "mid-side"), group="audio")

    # ------------------------------------------------------------------
    def resolved(self) -> "StyleConfig":
        """A copy with preset values filled in and every field checked; raises UserError."""
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        preset = PRESETS[self.preset]
        values = dataclasses.asdict(self)
        for key, value in preset.items():
            if values.get(key) is None:
                values[key] = value
        if values["learning_rate"] is None:
            values["learning_rate"] = DEFAULT_LEARNING_RATES.get(self.optimizer, 0.02)
        if values["tile_coarse_iterations"] is None:
            values["tile_coarse_iterations"] = values["coarse_iterations"]
        if values["video_iterations"] is None:
            values["video_iterations"] = max(1, values["iterations"] // 2)
        values["long_term"] = tuple(sorted(set(values["long_term"])))
        if values["style_layer_weights"] is None:
            n = len(values["style_layers"])
            values["style_layer_weights"] = tuple([1.0 / n] * n)
        out = StyleConfig(**values)
        out.check()
        return out

    def check(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.distance not in DISTANCES:
            raise UserError(f"unknown distance {self.distance!r}; choose one of {', '.join(DISTANCES)}")
        if self.preserve_colors not in PRESERVE_COLORS:
            raise UserError(f"--preserve-colors must be one of {', '.join(PRESERVE_COLORS)}")
        for name in ("iterations", "coarse_iterations"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UserError(f"--{name.replace('_', '-')} must be >= 0, not {value}")
        if self.size is not None and self.size < 16:
            raise UserError(f"--size must be at least 16 px, not {self.size}")
        if self.scale_factor is not None and self.scale_factor <= 1.0:
            raise UserError(f"--scale-factor must be > 1, not {self.scale_factor}")
        if self.frames_per_device < 1:
            raise UserError(f"--frames-per-device must be >= 1, not {self.frames_per_device}")
        if self.chunk < 1:
            raise UserError(f"--chunk must be >= 1, not {self.chunk}")
        if self.style_layer_weights is not None and len(self.style_layer_weights) != len(self.style_layers):
            raise UserError(
                f"{len(self.style_layer_weights)} style layer weights given for {len(self.style_layers)} style layers"
            )
        if self.passes < 1:
            raise UserError(f"--passes must be >= 1, not {self.passes}")
        if self.overlap < 0:
            raise UserError(f"--overlap must be >= 0, not {self.overlap}")
        if not self.long_term or min(self.long_term) < 1 or 1 not in self.long_term:
            raise UserError("--long-term must list positive frame offsets and include 1")
        if self.temporal_weight < 0:
            raise UserError(f"--temporal-weight must be >= 0, not {self.temporal_weight}")
        if self.style_window < 1:
            raise UserError(f"--style-window must be >= 1, not {self.style_window}")
        if self.tile_size and self.tile_size < 64:
            raise UserError(f"--tile-size must be 0 (off) or at least 64 px, not {self.tile_size}")
        if self.tile_mode not in ("coupled", "independent"):
            raise UserError(f"--tile-mode must be coupled or independent, not {self.tile_mode!r}")
        if self.tile_overlap < 0 or (self.tile_mode == "independent" and self.tile_size
                                     and self.tile_overlap * 2 >= self.tile_size):
            raise UserError(f"--tile-overlap must be >= 0 and less than half of --tile-size, not {self.tile_overlap}")
        if self.tile_iterations < 0:
            raise UserError(f"--tile-iterations must be >= 0, not {self.tile_iterations}")
        if self.tile_coarse_iterations is not None and self.tile_coarse_iterations < 0:
            raise UserError(f"--tile-coarse-iterations must be >= 0, not {self.tile_coarse_iterations}")
        if self.tile_rounds < 1:
            raise UserError(f"--tile-rounds must be >= 1, not {self.tile_rounds}")
        if self.photoreal < 0:
            raise UserError(f"--photoreal must be >= 0, not {self.photoreal}")
        if (self.content_mask is None) != (self.style_mask is None):
            raise UserError("--content-mask and --style-mask go together")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UserError(f"--learning-rate must be > 0, not {self.learning_rate}")

    def scales(self, height: int, width: int) -> list[tuple[int, int]]:
        """Coarse-to-fine (height, width) list ending at the target; the aspect ratio is kept."""
        long_side = max(height, width)
        sizes: list[int] = []
        if self.start_size and self.start_size < long_side:
            s = float(self.start_size)
            while s < long_side / (self.scale_factor or 2.0) ** 0.5 and s < long_side:
                sizes.append(int(round(s)))
                s *= self.scale_factor or 2.0
        out = [hw for hw in (scaled_size(height, width, s) for s in sizes) if min(hw) >= 16]
        out.append((height, width))
        return out


def scaled_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(height, width) with the given long side, keeping the aspect ratio (whole frame, no crop)."""
    if height >= width:
        return long_side, max(1, int(round(width * long_side / height)))
    return max(1, int(round(height * long_side / width))), long_side
