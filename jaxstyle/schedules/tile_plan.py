"""The tiled schedule's plan: which scales are tiled, their iterations, and inputs at a scale."""

from __future__ import annotations

from .. import imaging
from ..errors import UserError
from ..imaging import scaled_size
from ..nets.vgg import Network, min_window
from ..objective import Temporal


def tiled_scales(cfg, height: int, width: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """(coarse whole-frame size, tiled fine sizes) for a frame of height x width."""
    fine = [hw for hw in cfg.scales(height, width) if max(hw) > cfg.tiles.size]
    coarse = scaled_size(height, width, cfg.tiles.size)
    return coarse, fine


def is_tiled(cfg, height: int, width: int) -> bool:
    return bool(cfg.tiles.size) and max(height, width) > cfg.tiles.size


def tile_iterations(cfg, index: int, count: int) -> int:
    """Iterations at tiled scale ``index`` of ``count`` (a resolved config): ``tiles.iterations`` at
    the last one, ``tiles.coarse_iterations`` (``coarse_iterations`` unless given) below it."""
    return cfg.tiles.coarse_iterations if index < count - 1 else cfg.tiles.iterations


def scaled_temporal(temporal: Temporal | None, h: int, w: int) -> Temporal | None:
    """Temporal inputs at another size."""
    if temporal is None:
        return None
    return Temporal(imaging.resize(temporal.targets, h, w), imaging.resize(temporal.masks[..., None], h, w)[..., 0],
                    temporal.weight)


def check_tiles(cfg, network: Network) -> None:
    if cfg.tiles.mode == "coupled":
        need = min_window(network.arch, tuple(cfg.content_layers) + tuple(cfg.style_layers))
        if cfg.tiles.size < need:
            raise UserError(f"--tile-size {cfg.tiles.size} is too small for coupled tiles with these layers of "
                            f"{network.arch} (at least {need} px: the receptive field on both sides); "
                            "use a larger --tile-size or --tile-mode independent")
