"""A self-contained example: a photo that scikit-image ships, styled by a generated mosaic.

``python cli.py example`` writes ``outputs/example_content.png``, ``outputs/example_style.png`` and
the result ``outputs/example.png`` (plus ``outputs/example.json`` with the metrics).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from skimage import data

from .. import imaging, schedules
from ..config import StyleConfig
from ..imaging import target_size
from ..io.images import write_image
from ..io.files import check_output_dir, write_json_atomic
from ..api import network_for
from .common import Parser, check_memory, log


def example_content() -> np.ndarray:
    """scikit-image's 'chelsea' photo (a cat, 451x300), float32 RGB in [0, 1]."""
    return np.asarray(data.chelsea(), np.float32) / 255.0


def example_style(height: int = 320, width: int = 320, seed: int = 7) -> np.ndarray:
    """A generated stained-glass style: vivid Voronoi cells with dark leading and brush texture."""
    rng = np.random.default_rng(seed)
    n = 60
    points = rng.random((n, 2)) * [height, width]
    palette = np.array([[0.93, 0.72, 0.10], [0.80, 0.15, 0.12], [0.10, 0.30, 0.70], [0.05, 0.55, 0.45],
                        [0.95, 0.50, 0.15], [0.45, 0.15, 0.55], [0.20, 0.65, 0.85]], np.float32)
    colors = palette[rng.integers(0, len(palette), n)] * rng.uniform(0.8, 1.1, (n, 1))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    d = (yy[..., None] - points[:, 0]) ** 2 + (xx[..., None] - points[:, 1]) ** 2
    order = np.argsort(d, axis=-1)
    nearest, second = order[..., 0], order[..., 1]
    d1 = np.sqrt(np.take_along_axis(d, nearest[..., None], -1)[..., 0])
    d2 = np.sqrt(np.take_along_axis(d, second[..., None], -1)[..., 0])
    image = colors[nearest]
    # brush-stroke texture inside each cell
    angle = rng.uniform(0, np.pi, n)[nearest]
    strokes = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 0.6)
    image = image * (0.8 + 0.25 * strokes[..., None])
    leading = np.clip((d2 - d1) / 3.0, 0.0, 1.0)[..., None]  # dark lines on the cell borders
    image = image * leading + 0.05 * (1 - leading)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def run(out_dir: str = "outputs", size: int = 256, preset: str = "balanced", quiet: bool = False) -> str:
    out = check_output_dir(out_dir, "--out-dir")
    config = StyleConfig(size=size, preset=preset).resolved()
    content, style = example_content(), example_style()
    h, w = target_size(content.shape[0], content.shape[1], size)
    check_memory(config, h, w)  # (before anything is written)
    out.mkdir(parents=True, exist_ok=True)
    write_image(out / "example_content.png", content)
    write_image(out / "example_style.png", style)
    network = network_for(config)
    log(f"network: {network.describe()}")
    frames = schedules.prepare(imaging.resize(content, h, w)[None], [style], config)
    result = schedules.stylize(frames, config, network, progress=not quiet)
    write_image(out / "example.png", result.images[0])
    write_json_atomic(out / "example.json", result.metrics)
    log(f"wrote {out / 'example.png'} ({w}x{h}) in {result.metrics['wall_seconds']:.1f} s; "
        f"content and style beside it")
    return str(out / "example.png")


def example_main(argv: Sequence[str]) -> int:
    parser = Parser(prog="python cli.py example",
                    description="Stylize a photo that scikit-image ships with a generated style; writes under outputs/.")
    parser.add_argument("--size", type=int, default=256, help="long side in px [default: 256]")
    parser.add_argument("--preset", default="balanced", choices=("fast", "balanced", "quality"))
    parser.add_argument("--out-dir", default="outputs")
    parser.add_argument("--quiet", "-q", action="store_true")
    args = parser.parse_args(argv)
    run(args.out_dir, args.size, args.preset, args.quiet)
    return 0
