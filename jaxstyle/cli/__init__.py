"""The command line: flags derived from the config (:mod:`.flags`), one module per job (image,
video, audio, weights, example), and :func:`main`, which dispatches to them."""

from .main import main
from .parser import build_parser

__all__ = ["build_parser", "main"]
