"""``python cli.py CONTENT.jpg --style STYLE.jpg -o OUT.png``: stylize one image."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax
import numpy as np

from .. import imaging, schedules
from ..config import INIT_WORDS, StyleConfig
from ..errors import NonFiniteLoss, UserError, counted
from ..imaging import target_size
from ..io.images import check_output_path, read_image, write_image
from ..io.files import write_json_atomic
from ..api import load_regions, network_for
from .common import (check_memory, check_metrics_path, check_output_file, claimed, default_output, log,
                     note_tiled_iterations)


def describe_scales(config: StyleConfig, h: int, w: int) -> str:
    """The scales a frame of h x w goes through (the whole frame up to the tile size, then tiles)."""
    scales, tiled = config.scales(h, w), ""
    if schedules.is_tiled(config, h, w):
        (ch, cw), fine = schedules.tiled_scales(config, h, w)
        scales = config.scales(ch, cw) + fine
        tiled = f" ({config.tiles.mode} tiles above {config.tiles.size} px)"
    return " -> ".join(f"{sw}x{sh}" for sh, sw in scales) + tiled


def last_finite_path(output: Path) -> Path:
    """Where a run whose loss stopped being finite keeps its last finite image: beside the output,
    never over an existing file."""
    for i in range(1, 1000):
        path = output.with_name(f"{output.stem}.last-finite{'' if i == 1 else f'-{i}'}{output.suffix}")
        if not path.exists():
            return path
    raise UserError(f"too many {output.stem}.last-finite-N files beside {output}")


def image_main(args, config: StyleConfig, warm_start: Callable[[np.ndarray], np.ndarray] | None = None) -> int:
    """``warm_start`` (--init network): frames -> the trained network's output, the initial image."""
    content_path = Path(args.content)
    style_paths = [Path(s) for s in args.style]
    output = Path(args.output) if args.output else default_output(content_path, style_paths[0], ".png")
    inputs = [content_path, *style_paths]
    if config.init not in INIT_WORDS:
        inputs.append(Path(config.init))
    if config.content_mask is not None:
        inputs += [Path(config.content_mask), *map(Path, config.style_mask)]
    check_output_path(output, inputs)
    check_output_file(output, "output")
    check_metrics_path(args.metrics_json, [*inputs, output])
    if config.style_weights is not None and len(config.style_weights) != len(style_paths):
        raise UserError(f"{len(config.style_weights)} style weights given for {len(style_paths)} style images")
    content = read_image(content_path)
    styles = [read_image(p) for p in style_paths]
    if config.init not in INIT_WORDS:
        read_image(config.init)  # fail early on a bad init image
    if config.init == "network" and warm_start is None:
        raise UserError("--init network starts from a trained network's output: give its --model MODEL_DIR")
    h, w = target_size(content.shape[0], content.shape[1], config.size)
    schedules.check_frame_size(h, w, content.shape[:2])  # (before the network loads)
    note_tiled_iterations(args, config, h, w)
    check_memory(config, h, w, frames=1)
    regions = load_regions(config, content.shape[:2], styles, (h, w))
    with claimed(output):
        network = network_for(config)
        log(f"network: {network.describe()}; devices: {len(jax.devices())} x {jax.devices()[0].platform}")
        log(f"content {content.shape[1]}x{content.shape[0]} -> {w}x{h}, scales {describe_scales(config, h, w)}")
        frame = imaging.resize(content, h, w)[None]
        init = None if warm_start is None else warm_start(frame)
        frames = schedules.prepare(frame, styles, config, regions=regions, init=init)
        try:
            result = schedules.stylize(frames, config, network, progress=not args.quiet)
        except NonFiniteLoss as exc:
            result = getattr(exc, "result", None)
            if result is None:
                raise
            kept = write_image(last_finite_path(output), result.images[0])
            raise NonFiniteLoss(f"{exc} in {kept} ({output} was not written)") from None
        write_image(output, result.images[0])
        metrics = result.metrics
        if args.metrics_json:
            metrics = {**metrics, "content": str(content_path), "styles": [str(p) for p in style_paths],
                       "output": str(output)}
            write_json_atomic(args.metrics_json, metrics)
    total = metrics.get("final", {}).get("total", [float("nan")])[0]
    log(f"wrote {output} ({w}x{h}) in {metrics['wall_seconds']:.1f} s "
        f"(compile {metrics['compile_seconds']:.1f} s, {counted(metrics['iterations'], 'iteration')}, final loss {total:.4g})")
    return 0
