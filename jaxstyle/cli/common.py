"""What every CLI job shares: the one-line argument parser, the log line, and the checks of the
paths a run writes."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
import typing
from pathlib import Path

from .. import interrupts
from ..errors import UserError, program
from ..io.files import OutputLock, check_output_dir, check_output_file, remove_stale_temps
from ..io.images import FRAME_PNG, remove_frames_from
from ..io.video import audio_streams, dropped_subtitles_note
from .. import schedules
from ..config import StyleConfig
from ..schedules.memory import check_memory
from .flags import given_section_flags

__all__ = ["PROG", "Parser", "log", "default_output", "check_metrics_path", "check_output_file", "check_memory",
           "claimed", "one_line", "crash_log"]

PROG = "jaxstyle"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2, and the usage and help name the
    command as it was started (they are written with ``python cli.py``)."""

    def __init__(self, *args, prog: str | None = None, usage: str | None = None, **kwargs):
        if prog is not None and prog.startswith("python cli.py"):
            prog = program() + prog[len("python cli.py"):]
        if usage is not None and usage.startswith("python cli.py"):
            usage = program() + usage[len("python cli.py"):]
        super().__init__(*args, prog=prog, usage=usage, **kwargs)

    def format_help(self) -> str:
        # (a help text wrapped at the space inside "python cli.py" keeps its line break)
        return re.sub(r"python(\s+)cli\.py", lambda m: program().replace(" ", m.group(1), 1), super().format_help())

    def error(self, message: str) -> typing.NoReturn:  # type: ignore[override]
        raise UserError(f"{message} (see --help)")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_output(content: Path, style: Path, suffix: str) -> Path:
    """``outputs/CONTENT_STYLE.suffix`` (the folder made on demand)."""
    Path("outputs").mkdir(exist_ok=True)
    return Path("outputs") / f"{content.stem}_{style.stem}{suffix}"


def note_dropped_streams(content: Path, output: Path, audio: bool, segment: bool) -> None:
    """Tell the user, before the work starts, which of the source video's sound and subtitle
    streams the output's format cannot keep (``segment``: only part of the video is written)."""
    if audio and output.suffix.lower() == ".gif" and audio_streams(content):
        log(f"note: a GIF has no sound track; the audio of {content} is not in {output}")
    note = dropped_subtitles_note(content, output, segment)
    if note:
        log(note)


def check_metrics_path(metrics_json: str | None, paths) -> None:
    """--metrics-json must not be one of the run's files, and its directory must exist."""
    if not metrics_json:
        return
    for item in paths:
        if os.path.realpath(item) == os.path.realpath(metrics_json):  # a link is its target
            raise UserError(f"--metrics-json {metrics_json} is the same file as {item}, an input or the output of "
                            "this run: writing the metrics would replace it; choose another path")
    check_output_file(metrics_json, "--metrics-json")


def note_tiled_iterations(args, config, h: int, w: int) -> None:
    """A frame above --tile-size takes --tile-iterations / --tile-coarse-iterations at its tiled
    scales and --coarse-iterations below them: a --iterations the user gave goes unused, said once.
    A frame at or below it is never tiled: the --tile-* flags the user gave go unused, said once."""
    tiled = schedules.is_tiled(config, h, w)
    if getattr(args, "iterations", None) is not None and tiled:
        log(f"note: {w}x{h} frames are above --tile-size {config.tiles.size}: their last scales take "
            f"--tile-iterations ({config.tiles.iterations}), not --iterations")
    unused = [f for f in given_section_flags(StyleConfig, args, "tiles") if f != "--tile-size"]
    if unused and not tiled:
        limit = "tiling is off (--tile-size 0)" if not config.tiles.size else \
            f"{w}x{h} frames are not above --tile-size {config.tiles.size}, so they are not tiled"
        log(f"note: {limit}: {', '.join(unused)} change{'s' if len(unused) == 1 else ''} nothing")


def check_frames_dir(frames_dir: str, inputs) -> None:
    """--frames-dir is a folder this run may write, and no input of the run sits in it under a
    frame's name (the run writes frame_NNNNNN.png there and removes the ones past its frames)."""
    check_output_dir(frames_dir, "--frames-dir")
    folder = os.path.realpath(frames_dir)
    for path in map(Path, inputs):
        target = Path(os.path.realpath(path))  # (a link elsewhere that points into it counts too)
        if any(FRAME_PNG.match(p.name) and os.path.realpath(p.parent) == folder for p in (path, target)):
            raise UserError(f"the input {path} is in --frames-dir {frames_dir} under a frame's name: this run "
                            "writes and removes the frame PNGs there; move it or choose another --frames-dir")


def finish_frames_dir(frames_dir: str, frames: int) -> None:
    """After a video's frames went into --frames-dir: remove the frames past them that an earlier,
    longer run left there, so the folder is this run's video frame for frame."""
    try:
        removed = remove_frames_from(frames_dir, frames)
    except OSError as exc:  # (the video is written: a leftover frame is worth a note, not a failure)
        log(f"--frames-dir: could not remove the frame PNGs past {frames} that an earlier run left: {exc.strerror or exc}")
        return
    if removed:
        log(f"--frames-dir: removed {removed} frame PNG(s) numbered {frames} and up, left by an earlier run")


STAGED_FRAMES_PREFIX = ".jaxstyle-frames-"


@contextlib.contextmanager
def staged_frames(frames_dir: str | None):
    """Where a run writes its --frames-dir PNGs: a hidden folder inside it, whose frames replace the
    folder's own only once the run has succeeded, so an interrupted or failed run leaves the folder
    as it was (call it holding the folder's lock; :func:`finish_frames_dir` follows). Yields None
    for no --frames-dir."""
    if frames_dir is None:
        yield None
        return
    folder = Path(frames_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(STAGED_FRAMES_PREFIX + "*"):  # a killed run's (the lock is held: no live run's)
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGED_FRAMES_PREFIX, dir=folder))
    try:
        yield str(staging)
        for png in sorted(staging.iterdir()):
            if FRAME_PNG.match(png.name):
                os.replace(png, folder / png.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def claimed(*paths):
    """Hold the lock of every path a job writes (its output, its work directory) for the job's
    duration, after removing what killed runs to them left behind. A path another job holds: one
    line, and nothing of that job is touched."""
    for path in paths:  # (a folder a job makes, as -o models/new: its lock goes beside it)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    locks = []
    try:
        for path in paths:
            locks.append(OutputLock(path).acquire())
            if locks[-1].took_over:
                log(f"took over the lock of {path} from a job that was killed (pid {locks[-1].took_over})")
            for stale in remove_stale_temps(path):
                log(f"removed {stale.name}, left by a killed run")
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            interrupts.hold()  # the outputs are written (or removed): from here on an interrupt changes nothing
        for lock in reversed(locks):
            lock.release()


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def crash_log(exc: BaseException) -> Path:
    """Write the traceback of an unexpected error to a log file; returns its path
    (``$XDG_CACHE_HOME/jaxstyle/logs``, or the temporary directory when that cannot be written)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jaxstyle" / "logs"
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    name = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    for folder in (root, Path(os.environ.get("TMPDIR", "/tmp"))):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(f"jaxstyle {' '.join(sys.argv)}\n{text}")
            return path
        except OSError:
            continue
    return Path("(no writable log folder)")
