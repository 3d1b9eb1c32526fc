"""The parser of ``python cli.py CONTENT --style STYLE ...``: its flags are derived from
:class:`jaxstyle.config.StyleConfig` and the video job's option classes (:mod:`.flags`). Batch jobs
parse every item with it too."""

from __future__ import annotations

import argparse
import math

from ..config import StyleConfig
from ..video import Processes, VideoOptions
from .common import Parser
from .flags import add_flags


def _weights(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(","))  # (an empty item is an error, not skipped)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated finite numbers, got {text!r}")
    return values


def build_parser() -> Parser:
    parser = Parser(
        prog="python cli.py",
        description="Neural style transfer in JAX. Stylize CONTENT with one or more --style images.",
        epilog="Also: 'python cli.py example' (a generated example), 'python cli.py train ...' (a feed-forward "
               "network), 'python cli.py batch JOBS.jsonl --out-dir DIR' "
               "(many inputs in one job) and "
               "'python cli.py weights list | port FILE | fetch vgg19'.",
    )
    parser.add_argument("content", metavar="CONTENT", help="content image, video or sound file")
    parser.add_argument("--style", "-s", action="append", metavar="STYLE",
                        help="style image (repeat for a blend, weighted by --style-weights); not for an audio CONTENT")
    parser.add_argument("--style-audio", metavar="STYLE",
                        help="style sound (wav, flac, mp3, ogg, m4a, or a video's audio): stylizes an audio CONTENT, "
                             "or a video's sound track (muxed into the output in place of the original audio)")
    parser.add_argument("--output", "-o", metavar="OUT", help="output file (default: outputs/CONTENT_STYLE.png, .mp4 for a video, .wav for a "
                        "sound; CONTENT_MODEL with --model)")
    parser.add_argument("--model", metavar="MODEL_DIR",
                        help="stylize with a trained feed-forward network ('python cli.py train'): one pass per frame, "
                             "no optimization; with --init network the optimizer starts from its output instead")
    parser.add_argument("--style-mix", metavar="W", type=_weights,
                        help="a --model with several styles: comma-separated blend weights of its styles "
                             "(default: the first style)")
    parser.add_argument("--metrics-json", metavar="PATH", help="write losses, iterations and timings as JSON")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_flags(parser, VideoOptions, "video input and output (VideoOptions)")
    add_flags(parser, Processes, "multi-host (Processes)")
    add_flags(parser, StyleConfig, "stylization (StyleConfig)")
    return parser
