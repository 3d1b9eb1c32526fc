"""What every CLI job shares: the one-line argument parser, the log line, and the checks of the
paths a run writes."""

from __future__ import annotations

import argparse
import os
import sys
import typing
from pathlib import Path

from ..errors import UserError

PROG = "jaxstyle"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> typing.NoReturn:  # type: ignore[override]
        raise UserError(f"{message} (see --help)")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_output(content: Path, style: Path, suffix: str) -> Path:
    """``outputs/CONTENT_STYLE.suffix`` (the folder made on demand)."""
    Path("outputs").mkdir(exist_ok=True)
    return Path("outputs") / f"{content.stem}_{style.stem}{suffix}"


def check_metrics_path(metrics_json: str | None, paths) -> None:
    """--metrics-json must not be one of the run's files, and its directory must exist."""
    if not metrics_json:
        return
    for item in paths:
        if os.path.abspath(item) == os.path.abspath(metrics_json):
            raise UserError(f"--metrics-json {metrics_json} is the same path as {item}")
    if not Path(metrics_json).resolve().parent.is_dir():
        raise UserError(f"directory of --metrics-json {metrics_json} does not exist")
