"""The one configuration of a run, in sections; the CLI's flags are derived from it.

:class:`StyleConfig` holds what every stylization reads (sizes, preset, optimizer, loss weights,
layers, photorealism, masks) and one section per kind of work, each read where it is used and
never copied: ``tiles`` (:class:`TileConfig`, flags ``--tile-*``), ``video`` (:class:`VideoConfig`)
and ``audio`` (:class:`AudioConfig`, flags ``--audio-*``). Every field's ``metadata`` carries its
help text (and choices, and its flag where the name differs); :mod:`jaxstyle.cli.flags` builds one
flag per field. Fields left as ``None`` are filled from the preset by :meth:`StyleConfig.resolved`,
once per run: a resolved config resolves to itself.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import UserError
from .imaging import scaled_size
from .nets.vgg import PRECISIONS, check_layers
from .objective.distances import DISTANCES
from .optim.optimizers import OPTIMIZERS

PRESERVE_COLORS = ("none", "luminance", "histogram")
MAX_STYLE_SCALE = 8.0  # the style image at 8x the frame's size already holds more than any stroke needs
TILE_MODES = ("coupled", "independent")
INIT_WORDS = ("content", "noise", "style", "network")  # --init's choices that are not an image's path
AUDIO_VARIANTS = ("ulyanov", "mel-multi", "mel-stats", "mel-gain")
AUDIO_STEREO = ("per-channel", "mid-side")

# Presets trade time for quality. Each run is coarse-to-fine: the long side starts at
# ``start_size`` and grows by ``scale_factor`` up to the target size. ``coarse_iterations`` run at
# each coarser scale, ``iterations`` at the final (full) scale.
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"start_size": 128, "scale_factor": 2.0, "coarse_iterations": 40, "iterations": 40},
    "balanced": {"start_size": 128, "scale_factor": math.sqrt(2.0), "coarse_iterations": 60, "iterations": 100},
    "quality": {"start_size": 128, "scale_factor": math.sqrt(2.0), "coarse_iterations": 150, "iterations": 300},
}


def setting(default, help: str, *, choices=None, flag: str | None = None, metavar: str | None = None,
            group: str | None = None):
    """A config field: its default and what the CLI needs to make a flag of it."""
    meta: dict[str, Any] = {"help": help}
    for key, value in (("choices", choices), ("flag", flag), ("metavar", metavar), ("group", group)):
        if value is not None:
            meta[key] = value
    return field(default=default, metadata=meta)


def section(cls, title: str, prefix: str):
    """A config section: a nested dataclass whose flags are ``--{prefix}{field}``."""
    return field(default_factory=cls, metadata={"section": title, "prefix": prefix})


def _flag(field, prefix: str = "") -> str:
    return field.metadata.get("flag") or "--" + prefix + field.name.replace("_", "-")


FLOAT32_MAX = 3.4028234663852886e38


def check_finite(obj, prefix: str = "") -> None:
    """Every float of a config (and of its sections) is a finite number: NaN and infinity are refused
    here, before any work, whatever the field."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if "section" in f.metadata:
            check_finite(value, f.metadata["prefix"])
            continue
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise UserError(f"{_flag(f, prefix)} must be a finite number, not {v}")
            if isinstance(v, float) and abs(v) > FLOAT32_MAX:  # (it would be infinite in the computation)
                raise UserError(f"{_flag(f, prefix)} must be at most 3.4e38 in magnitude (a float32), not {v}")


def _at_least(value, low, flag: str) -> None:
    if value is not None and value < low:
        raise UserError(f"{flag} must be >= {low}, not {value}")


@dataclass(frozen=True)
class TileConfig:
    """Frames larger than ``size`` are optimized in tiles at the fine scales (flags ``--tile-*``)."""

    size: int = setting(1024, "frames whose long side is larger are optimized as overlapping tiles at the fine scales (0: never tile)", metavar="PX")
    mode: str = setting("coupled", "coupled: one optimization of the whole frame whose losses and gradient are computed tile by tile (exactly the untiled result; tiles need 2 x the receptive field + 16 px, 144 px for VGG16); independent: tiles optimized on their own and stitched", choices=TILE_MODES)
    overlap: int = setting(64, "independent tiles: overlap of neighbouring tiles in px (feathered)", metavar="PX")
    iterations: int = setting(10, "iterations at the last tiled scale (the frame's size; at 4K each costs minutes on a CPU, so it only sharpens); independent tiles spread them over the rounds", metavar="N")
    coarse_iterations: int | None = setting(None, "iterations at each tiled scale below the final one (default: --coarse-iterations, as untiled); these scales form the texture that the last one only sharpens (with a few, the output is blurred)", metavar="N")
    targets: str = setting("offset", "independent tiles: style targets of a tile: the style's Gram plus the tile's own offset from the frame's mean Gram, or the style's Gram alone", choices=("offset", "global"))
    rounds: int = setting(2, "independent tiles: rounds over the tiles at each tiled scale; the tile grid shifts between rounds so no seam settles", metavar="N")

    def check(self) -> None:
        if self.size and self.size < 64:
            raise UserError(f"--tile-size must be 0 (off) or at least 64 px, not {self.size}")
        if self.mode not in TILE_MODES:
            raise UserError(f"--tile-mode must be coupled or independent, not {self.mode!r}")
        if self.overlap < 0 or (self.mode == "independent" and self.size and self.overlap * 2 >= self.size):
            raise UserError(f"--tile-overlap must be >= 0 and less than half of --tile-size, not {self.overlap}")
        _at_least(self.iterations, 0, "--tile-iterations")
        _at_least(self.coarse_iterations, 0, "--tile-coarse-iterations")
        _at_least(self.rounds, 1, "--tile-rounds")


@dataclass(frozen=True)
class VideoConfig:
    """The lanes schedule and the temporal loss of videos (ignored for still images)."""

    temporal_weight: float = setting(200.0, "weight of the temporal loss toward the warped previous output(s)", metavar="W")
    iterations: int | None = setting(None, "iterations for each frame after the first of a lane, which starts from the warped previous output (default: half of --iterations)", metavar="N", flag="--video-iterations")
    long_term: tuple[int, ...] = setting((1, 2, 4), "earlier frames (offsets) that the temporal loss looks at, closest first", metavar="J")
    passes: int = setting(1, "2 or more adds parallel refinement passes that pull each frame toward both warped neighbours", metavar="N")
    flow: str = setting("dis", "optical flow method: OpenCV's DIS ('medium' preset), DeepFlow (with opencv-contrib) or Farneback; with --model, the flow of --carry", choices=("dis", "deepflow", "farneback"))
    sequential: bool = setting(False, "one frame at a time in order (Ruder et al.), for comparison")
    overlap: int = setting(16, "frames by which neighbouring lanes overlap, both computing them (at most a lane's own frames; fewer: less work, rougher joins)", metavar="N")
    fade: int = setting(64, "frames over which a lane join fades from the earlier lane's stylization to the later's: the overlap, then their difference carried along the optical flow (no more frames computed; at least the overlap)", metavar="N")
    style_window: int = setting(5, "with a style video, Gram targets are averaged over this many style frames", metavar="N")
    anchor: bool = setting(True, "start every lane afresh (default: a lane whose first frame the clip's first frame reaches by a reliable direct flow starts from that frame's output warped, so that lanes agree where they meet)", flag="--no-anchor")
    scene_cuts: bool = setting(True, "do not detect scene cuts (at a detected cut a lane restarts as a first frame: no warp, no temporal term, no cross-fade across it)", flag="--no-scene-cuts")
    carry: float = setting(0.0, "a --model's video: share of each frame taken from the previous output carried along the content's optical flow (--flow; reliable pixels only; a scene cut starts afresh unless --no-scene-cuts), which damps the network's flicker; 0: the network's frames alone (the optimizer's frames start from the warped previous output already)", metavar="SHARE")

    def check(self) -> None:
        _at_least(self.passes, 1, "--passes")
        _at_least(self.overlap, 0, "--overlap")
        _at_least(self.fade, 0, "--fade")
        if not self.long_term or min(self.long_term) < 1 or 1 not in self.long_term:
            raise UserError("--long-term must list positive frame offsets and include 1")
        if self.temporal_weight < 0:
            raise UserError(f"--temporal-weight must be >= 0, not {self.temporal_weight}")
        _at_least(self.style_window, 1, "--style-window")
        _at_least(self.iterations, 0, "--video-iterations")
        if not 0.0 <= self.carry < 1.0:
            raise UserError(f"--carry must be a share from 0 (off) up to, not including, 1; not {self.carry}")


@dataclass(frozen=True)
class AudioConfig:
    """Spectrogram style transfer of sound files and sound tracks (``--style-audio``; flags ``--audio-*``;
    see :mod:`jaxstyle.audio`)."""

    variant: str = setting("mel-gain", "feature network and statistics (ulyanov = Ulyanov & Lebedev's baseline)", choices=AUDIO_VARIANTS)
    iterations: int = setting(200, "L-BFGS iterations per chunk", metavar="N")
    filters: int | None = setting(None, "random filters per layer (default: from the variant, e.g. 4096 for ulyanov)", metavar="N")
    content_weight: float = setting(0.3, "weight of the per-frame content loss (the style loss has weight --audio-style-weight)", metavar="W")
    style_weight: float = setting(1.0, "weight of the style Gram loss", metavar="W")
    stats_weight: float | None = setting(None, "weight of the log-mel mean and covariance loss (default: from the variant)", metavar="W")
    spectrum_content: float | None = setting(None, "share of the content loss taken on the log-magnitude itself (default: from the variant)", metavar="F")
    griffin_lim_iters: int = setting(100, "fast Griffin-Lim iterations (phase from the content)", metavar="N")
    chunk_seconds: float = setting(10.0, "long audio is optimized in chunks of this length (overlapping, cross-faded)", metavar="SEC")
    batch: int = setting(2, "chunks (x channels) optimized at once", metavar="N")
    stereo: str = setting("per-channel", "stylize each channel, or mid and side, on its own", choices=AUDIO_STEREO)

    def check(self) -> None:
        # (the variant's name is checked against jaxstyle.audio.network.VARIANTS by the audio job)
        if self.stereo not in AUDIO_STEREO:
            raise UserError(f"--audio-stereo must be one of {', '.join(AUDIO_STEREO)}")
        if self.iterations < 0 or self.griffin_lim_iters < 0:
            raise UserError("--audio-iterations and --audio-griffin-lim-iters must be >= 0")
        if self.filters is not None and self.filters < 1:
            raise UserError(f"--audio-filters must be >= 1, not {self.filters}")
        if not self.chunk_seconds > 0:
            raise UserError(f"--audio-chunk-seconds must be > 0, not {self.chunk_seconds}")
        if self.batch < 1:
            raise UserError(f"--audio-batch must be >= 1, not {self.batch}")
        if self.content_weight < 0 or self.style_weight < 0:
            raise UserError("--audio-content-weight and --audio-style-weight must be >= 0")
        if self.stats_weight is not None and self.stats_weight < 0:
            raise UserError(f"--audio-stats-weight must be >= 0, not {self.stats_weight}")
        if self.spectrum_content is not None and not 0 <= self.spectrum_content <= 1:
            raise UserError(f"--audio-spectrum-content must be in [0, 1], not {self.spectrum_content}")


NETWORK_KINDS = ("auto", "styles", "predicted")
# the StyleConfig fields that define the training loss of a feed-forward network (the same flags)
LOSS_FIELDS = ("content_weight", "style_weight", "tv_weight", "content_layers", "style_layers", "style_layer_weights",
               "style_scale", "distance", "network", "pooling", "precision", "seed")


@dataclass(frozen=True)
class TrainConfig:
    """Training a feed-forward stylization network (``python cli.py train``); the loss is the
    engine's, set by the :data:`LOSS_FIELDS` of :class:`StyleConfig`."""

    size: int = setting(256, "side of the square training crops in px", metavar="PX")
    frame_size: int | None = setting(None, "long side that images and video frames are resized to before cropping (default: so that the short side is --size; match the size you will stylize at)", metavar="PX")
    steps: int = setting(2000, "training steps", metavar="N")
    batch_size: int = setting(4, "crops per step, over all devices and hosts", metavar="N")
    learning_rate: float = setting(1e-3, "Adam's step size", metavar="LR")
    width: int = setting(32, "channels of the network's first convolution (Johnson et al.: 32; 16 is about 4x cheaper)", metavar="C")
    blocks: int = setting(5, "residual blocks", metavar="N")
    kind: str = setting("auto", "styles: the --style images baked in (conditional instance norm, mixable with --style-mix); predicted: Ghiasi et al.'s style prediction network for arbitrary styles (trained from a folder of styles); auto: predicted for a folder, else styles", choices=NETWORK_KINDS)
    temporal_weight: float = setting(200.0, "video data: weight of the temporal loss between consecutive output frames (the earlier one warped by the content's flow, occlusions masked); 0: frames are sampled alone", metavar="W")
    synthetic_motion: float = setting(0.0, "share of video samples whose earlier frame is the crop itself moved by a small random shift, rotation and zoom (exact flow) instead of the real previous frame; above 0, still images train the temporal term too (Wang et al. 2020)", metavar="P")
    checkpoint_every: int = setting(100, "steps between Orbax checkpoints (resume with --resume)", metavar="N")
    preview_every: int = setting(100, "steps between preview contact sheets of the held-out frames (0: none)", metavar="N")
    previews: int = setting(4, "held-out frames shown in the previews (never trained on; none with --preview-every 0)",
                            metavar="N")
    log_every: int = setting(10, "steps between loss records in metrics.json", metavar="N")
    resume: bool = setting(False, "continue from the model directory's last checkpoint")

    @property
    def held_out(self) -> int:
        """Items held out of training for the previews (none when no preview is made)."""
        return self.previews if self.preview_every else 0

    def check(self) -> None:
        check_finite(self)
        if self.size < 32:
            raise UserError(f"--size must be at least 32 px for training crops, not {self.size}")
        if self.frame_size is not None and self.frame_size < self.size:
            raise UserError(f"--frame-size ({self.frame_size}) must be at least --size ({self.size})")
        for name in ("steps", "batch_size", "width", "checkpoint_every", "log_every"):
            _at_least(getattr(self, name), 1, "--" + name.replace("_", "-"))
        _at_least(self.blocks, 0, "--blocks")
        _at_least(self.preview_every, 0, "--preview-every")
        _at_least(self.previews, 0, "--previews")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise UserError(f"--learning-rate must be > 0, not {self.learning_rate}")
        if not (math.isfinite(self.temporal_weight) and self.temporal_weight >= 0):
            raise UserError(f"--temporal-weight must be >= 0, not {self.temporal_weight}")
        if not (0.0 <= self.synthetic_motion <= 1.0):
            raise UserError(f"--synthetic-motion must be between 0 and 1, not {self.synthetic_motion}")
        if self.synthetic_motion > 0 and self.temporal_weight == 0:
            raise UserError("--synthetic-motion makes pairs for the temporal term: it needs --temporal-weight above 0")
        if self.kind not in NETWORK_KINDS:
            raise UserError(f"--kind must be one of {', '.join(NETWORK_KINDS)}")


@dataclass(frozen=True)
class StyleConfig:
    """Everything that controls one stylization (images, video frames, tiles, sound)."""

    size: int | None = setting(None, "long side of the output in px (default: the content's own size)", metavar="PX")
    preset: str = setting("balanced", "speed/quality trade-off", choices=tuple(PRESETS))
    iterations: int | None = setting(None, "optimizer iterations at the final scale (default: from the preset; a frame above --tile-size takes --tile-iterations there)", metavar="N")
    coarse_iterations: int | None = setting(None, "iterations at each coarser scale (default: from the preset)", metavar="N")
    start_size: int | None = setting(None, "long side of the first, coarsest scale in px; 0 = single scale (default: preset)", metavar="PX")
    scale_factor: float | None = setting(None, "growth of the long side from one scale to the next (default: preset)", metavar="F")
    optimizer: str = setting("lbfgs", "optimizer (optax); L-BFGS uses a zoom line search", choices=tuple(OPTIMIZERS))
    learning_rate: float | None = setting(None, "step size (default: 1 for lbfgs, 0.02 for adam, ...)", metavar="LR")
    content_weight: float = setting(1.0, "weight of the content loss", metavar="W")
    style_weight: float = setting(10.0, "weight of the style loss", metavar="W")
    tv_weight: float = setting(1.0, "weight of the total-variation regularizer", metavar="W")
    content_layers: tuple[str, ...] = setting(("relu4_2",), "comma-separated content layers", metavar="LAYERS")
    style_layers: tuple[str, ...] = setting(("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
                                            "comma-separated style layers", metavar="LAYERS")
    style_layer_weights: tuple[float, ...] | None = setting(None, "comma-separated weights of the style layers (default: equal, summing to 1)", metavar="W")
    style_weights: tuple[float, ...] | None = setting(None, "comma-separated blend weights of several --style images (default: equal)", metavar="W")
    style_scale: float = setting(1.0, "style image long side relative to the content's working size", metavar="F")
    distance: str = setting("mse", "distance used by the content and style losses", choices=DISTANCES)
    init: str = setting("content", "initial image: content, noise, style, network (the output of --model: a warm start, at the full size only unless --start-size is given), or a path to an image", metavar="INIT")
    network: str = setting("auto", "vgg19, vgg16, random (benchmarks only), a weights file, or auto (VGG19 if ported, else VGG16)", metavar="NET")
    pooling: str = setting("avg", "pooling in the network (Gatys used average)", choices=("avg", "max"))
    precision: str = setting("float32", "the network's convolutions: float32; tf32, the accelerator's fast float32 (NVIDIA TF32; CPUs compute float32); bfloat16 operands with float32 accumulation. The image and the optimizer state stay float32", choices=PRECISIONS)
    preserve_colors: str = setting("none", "keep the content's colours: luminance-only transfer or histogram matching",
                                   choices=PRESERVE_COLORS)
    seed: int = setting(0, "random seed (the noise init; in train, the crops and the network's first weights)",
                        metavar="N")
    frames_per_device: int = setting(1, "frames (or tiles) optimized at once on each device", metavar="N")
    chunk: int = setting(10, "iterations per compiled chunk (the progress bar updates between chunks)", metavar="N")
    photoreal: float = setting(0.0, "weight of Luan et al.'s matting-Laplacian photorealism term (e.g. 1e3; 0: off)", metavar="LAMBDA", group="photorealism and semantic masks")
    content_mask: str | None = setting(None, "label image (or video) of the content: style is matched region by region, by colour", metavar="PATH", group="photorealism and semantic masks")
    style_mask: tuple[str, ...] | None = setting(None, "label image of each --style (comma-separated, in order); colours match --content-mask", metavar="PATHS", group="photorealism and semantic masks")

    tiles: TileConfig = section(TileConfig, "large frames (tiles)", "tile-")
    video: VideoConfig = section(VideoConfig, "video", "")
    audio: AudioConfig = section(AudioConfig, "audio", "audio-")

    # ------------------------------------------------------------------
    @property
    def is_resolved(self) -> bool:
        return getattr(self, "_resolved", False)

    def resolved(self) -> "StyleConfig":
        """A copy with preset values filled in and every field checked (raises UserError); a
        resolved config returns itself. ``dataclasses.replace`` gives an unresolved copy."""
        if self.is_resolved:
            return self
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if self.init == "network" and values["start_size"] is None:
            values["start_size"] = 0  # a network's output already has the structure coarse scales would build
        for key, value in PRESETS[self.preset].items():
            if values.get(key) is None:
                values[key] = value
        if values["learning_rate"] is None:
            entry = OPTIMIZERS.get(self.optimizer)
            values["learning_rate"] = entry.learning_rate if entry else 0.02
        if values["style_layer_weights"] is None:
            n = len(values["style_layers"])
            values["style_layer_weights"] = tuple([1.0 / n] * n)
        tiles, video = self.tiles, self.video
        if tiles.coarse_iterations is None:
            tiles = dataclasses.replace(tiles, coarse_iterations=values["coarse_iterations"])
        video = dataclasses.replace(video, long_term=tuple(sorted(set(video.long_term))),
                                    iterations=video.iterations if video.iterations is not None
                                    else max(1, values["iterations"] // 2))
        out = StyleConfig(**{**values, "tiles": tiles, "video": video})
        out.check()
        object.__setattr__(out, "_resolved", True)
        return out

    def check(self) -> None:
        check_finite(self)
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.distance not in DISTANCES:
            raise UserError(f"unknown distance {self.distance!r}; choose one of {', '.join(DISTANCES)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.preserve_colors not in PRESERVE_COLORS:
            raise UserError(f"--preserve-colors must be one of {', '.join(PRESERVE_COLORS)}")
        for name in ("iterations", "coarse_iterations"):
            _at_least(getattr(self, name), 0, f"--{name.replace('_', '-')}")
        if self.size is not None and self.size < 16:
            raise UserError(f"--size must be at least 16 px, not {self.size}")
        _at_least(self.start_size, 0, "--start-size")
        if self.scale_factor is not None and self.scale_factor <= 1.0:
            raise UserError(f"--scale-factor must be > 1, not {self.scale_factor}")
        _at_least(self.frames_per_device, 1, "--frames-per-device")
        _at_least(self.chunk, 1, "--chunk")
        if self.style_layer_weights is not None and len(self.style_layer_weights) != len(self.style_layers):
            raise UserError(
                f"{len(self.style_layer_weights)} style layer weights given for {len(self.style_layers)} style layers"
            )
        check_layers(None, self.content_layers, "--content-layers")
        check_layers(None, self.style_layers, "--style-layers")
        if self.photoreal < 0:
            raise UserError(f"--photoreal must be >= 0, not {self.photoreal}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} must be >= 0, not {getattr(self, name)}")
        if not 0 < self.style_scale <= MAX_STYLE_SCALE:
            raise UserError(f"--style-scale must be in (0, {MAX_STYLE_SCALE:g}], not {self.style_scale}")
        if not 0 <= self.seed < 2 ** 32:
            raise UserError(f"--seed must be in [0, 2**32), not {self.seed}")
        if self.style_layer_weights is not None and min(self.style_layer_weights) < 0:
            raise UserError("--style-layer-weights must be >= 0")
        if self.style_weights is not None and (min(self.style_weights) < 0 or sum(self.style_weights) <= 0):
            raise UserError("--style-weights must be >= 0 and not all zero")
        if (self.content_mask is None) != (self.style_mask is None):
            raise UserError("--content-mask and --style-mask go together")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UserError(f"--learning-rate must be > 0, not {self.learning_rate}")
        self.tiles.check()
        self.video.check()
        self.audio.check()

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
