"""The items of a batch job, from a JSONL file or a folder of contents times a list of styles.

A JSONL line is an object::

    {"content": "photos/a.jpg", "style": "styles/wave.jpg", "output": "a_wave.png", "options": "--size 256"}
    {"content": "clips/b.mp4", "model": "models/wave"}

``style`` may be a list (a blend, weighted by ``--style-weights`` in the options); ``model`` names
a trained feed-forward network (``python cli.py train``), which then stylizes the item in one pass
per frame (no ``style`` needed unless the model predicts from one, or with ``--init network``);
``output``, ``model`` and ``options`` are optional (``options``: a string or a list of CLI flags,
applied after the job's own flags). Relative paths are relative to the JSONL file's folder (those of
the options' masks, ``--init``, ``--style-audio`` and ``--network`` too); a relative ``output`` to the
job's ``--out-dir``. Blank lines and lines starting with ``#`` are skipped. A malformed line is an
item that fails (with its reason in the index), not a failed job.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import shlex
from pathlib import Path
from typing import Sequence

from ..config import INIT_WORDS
from ..errors import UserError
from ..io.audio import AUDIO_EXTENSIONS, is_audio
from ..io.images import IMAGE_EXTENSIONS
from ..io.video import INPUT_VIDEO_EXTENSIONS, is_video
from ..nets.weights import NETWORK_NAMES

CONTENT_EXTENSIONS = tuple(IMAGE_EXTENSIONS) + tuple(INPUT_VIDEO_EXTENSIONS) + tuple(AUDIO_EXTENSIONS)


@dataclasses.dataclass(frozen=True)
class BatchItem:
    """One input of a job. ``problem`` is set when the item could not even be read from the job
    (it is recorded as failed without running)."""

    index: int
    content: Path | None
    styles: tuple[Path, ...] = ()
    output: Path | None = None
    options: tuple[str, ...] = ()
    model: Path | None = None
    problem: str | None = None
    where: str = ""  # "jobs.jsonl:12" or "folder"

    @property
    def kind(self) -> str:
        if self.content is None:
            return "invalid"
        return "audio" if is_audio(self.content) else "video" if is_video(self.content) else "image"

    def argv(self, job_flags: Sequence[str]) -> list[str]:
        """The item as the arguments of one ``python cli.py`` call (job flags, then the item's)."""
        args = [str(self.content)]
        for style in self.styles:
            args += ["--style-audio" if self.kind == "audio" else "--style", str(style)]
        if self.model is not None:
            args += ["--model", str(self.model)]
        return [*args, "--output", str(self.output), "--quiet", *job_flags, *self.options]

    def key(self, job_flags: Sequence[str]) -> str:
        """The item's identity for resuming: its inputs, output and every flag it runs with."""
        text = json.dumps([str(Path(a).resolve()) if i == 0 else a for i, a in enumerate(self.argv(job_flags))])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def inputs(self) -> list[Path]:
        """Every file the item reads: its content, styles and the files its options name."""
        return [self.content, *self.styles, *option_inputs(self.options)]

    def record(self) -> dict:
        return {"item": self.index, "where": self.where, "content": None if self.content is None else str(self.content),
                "styles": [str(s) for s in self.styles], "model": None if self.model is None else str(self.model),
                "output": None if self.output is None else str(self.output)}


def _options(value, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        try:
            return tuple(shlex.split(value))
        except ValueError as exc:  # an unclosed quote
            raise ValueError(f"{where}: \"options\": {exc}") from None
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return tuple(str(v) for v in value)
    raise ValueError(f"{where}: \"options\" must be a string or a list of flags")


# the flags of an item's "options" that name input files, with the words they take that are not
# paths (--style-mask takes a comma-separated list)
INPUT_PATH_FLAGS = {"--content-mask": (), "--style-mask": (), "--style-audio": (),
                    "--init": INIT_WORDS, "--network": NETWORK_NAMES}


def _map_input_paths(options: Sequence[str], change) -> tuple[str, ...]:
    """``options`` with ``change(path)`` applied to each input path among them."""
    def moved(flag: str, value: str) -> str:
        parts = value.split(",") if flag == "--style-mask" else [value]
        return ",".join(part if not part or part in INPUT_PATH_FLAGS[flag] else change(part) for part in parts)

    out = list(options)
    for i, token in enumerate(out):
        flag, equals, value = token.partition("=")
        # (the command takes a flag abbreviated to a unique prefix, as argparse does)
        whole = [name for name in INPUT_PATH_FLAGS if flag.startswith("--") and len(flag) > 3 and name.startswith(flag)]
        if len(whole) != 1:
            continue
        flag = whole[0]
        if equals:
            out[i] = f"{token.partition('=')[0]}={moved(flag, value)}"
        elif i + 1 < len(out) and not out[i + 1].startswith("--"):
            out[i + 1] = moved(flag, out[i + 1])
    return tuple(out)


def _paths_from(base: Path, options: tuple[str, ...]) -> tuple[str, ...]:
    """``options`` with the relative input paths among them made relative to ``base`` (the jobs
    file's folder), as the item's content and styles are (``~/...`` stays: it is expanded later)."""
    return _map_input_paths(options, lambda p: p if p.startswith("~") or Path(p).is_absolute() else str(base / p))


def option_inputs(options: Sequence[str]) -> list[Path]:
    """The input files that ``options`` name (masks, an --init image, --style-audio, weights)."""
    found: list[Path] = []
    _map_input_paths(options, lambda p: found.append(Path(p).expanduser()) or p)
    return found


def _item(index: int, data, base: Path, where: str, job_model: bool = False) -> BatchItem:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object")
    unknown = set(data) - {"content", "style", "model", "output", "options"}
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (content, style, model, output, "
                         "options)")
    if not isinstance(data.get("content"), str) or not data["content"]:
        raise ValueError(f"{where}: \"content\" (a path) is required")
    model = data.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise ValueError(f"{where}: \"model\" must be the path of a model directory")
    style = data.get("style", [] if model or job_model else None)  # (the item's network or the job's)
    styles = [style] if isinstance(style, str) else style
    if not isinstance(styles, list) or not (styles or model or job_model) or \
            not all(isinstance(s, str) and s for s in styles):
        raise ValueError(f"{where}: \"style\" must be a path or a list of paths" + ("" if model else
                         " (or give a \"model\")"))
    output = data.get("output")
    if output is not None and (not isinstance(output, str) or not output):
        raise ValueError(f"{where}: \"output\" must be a path")
    return BatchItem(index, base / data["content"], tuple(base / s for s in styles),
                     Path(output) if output else None, _paths_from(base, _options(data.get("options"), where)),
                     model=base / model if model else None, where=where)


def read_jobs(path: str | Path, model: bool = False) -> list[BatchItem]:
    """The items of a JSONL jobs file; a malformed line becomes an item with a ``problem``. With a
    trained network for the job (``model``) an item needs no "style"."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"jobs file {path} does not exist" if not path.exists() else f"jobs file {path} is not a file")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # (-sig: a byte-order mark some editors write)
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the jobs file {path}: {exc}") from None
    items: list[BatchItem] = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path.name}:{number}"
        try:
            items.append(_item(len(items), json.loads(line), path.parent, where, model))
        except json.JSONDecodeError as exc:
            items.append(BatchItem(len(items), None, problem=f"{where}: not valid JSON ({exc.msg})", where=where))
        except ValueError as exc:
            items.append(BatchItem(len(items), None, problem=str(exc), where=where))
    if not items:
        raise UserError(f"the jobs file {path} lists no items")
    return items


def expand_folder(contents: str, styles: Sequence[str], model: bool = False) -> list[BatchItem]:
    """Every content file of a folder (or matching a glob pattern) times every style, content-major
    (with a trained network for the job, ``model``, and no styles: every content once)."""
    if not styles and not model:
        raise UserError("--contents needs --styles STYLE[,STYLE...] (or --model MODEL_DIR)")
    folder = Path(contents)
    if folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in CONTENT_EXTENSIONS)
    else:
        files = sorted(Path(p) for p in glob.glob(contents) if Path(p).is_file())
    if not files:
        raise UserError(f"--contents {contents}: no image, video or sound files found")
    if not styles:
        return [BatchItem(i, content, (), where="--contents") for i, content in enumerate(files)]
    return [BatchItem(i * len(styles) + j, content, (Path(style),), where="--contents")
            for i, content in enumerate(files) for j, style in enumerate(styles)]


def _suffix(item: BatchItem) -> str:
    return {"image": ".png", "video": ".mp4", "audio": ".wav"}[item.kind]


# the longest generated name stem, in bytes: room for "-N", the extension and the temporary names
# written beside it (a file system takes 255 bytes a name)
MAX_STEM_BYTES = 120


def _fitting(stem: str) -> str:
    """``stem``, or (when longer than :data:`MAX_STEM_BYTES`) its start and a hash of the whole."""
    raw = stem.encode()
    if len(raw) <= MAX_STEM_BYTES:
        return stem
    return raw[:MAX_STEM_BYTES - 9].decode(errors="ignore") + "-" + hashlib.sha256(raw).hexdigest()[:8]


def _named(item: BatchItem) -> str:
    return item.where if ":" in item.where else f"item {item.index}"  # ("jobs.jsonl:3", or a folder's item)


def output_names(items: Sequence[BatchItem], out_dir: Path, model: str | None = None) -> list[BatchItem]:
    """Give every item its output path: its own (relative to ``out_dir``) or
    ``CONTENT_STYLE.ext`` in ``out_dir`` (``CONTENT_MODEL.ext`` without a style; ``model``: the
    job's; a long one cut, with a hash of the whole), numbered ``-2``, ``-3``... where two items
    would collide or a name is an item's input. An item's own output that is another item's input
    (or an earlier item's output) is a problem of that item: the job must not overwrite what a later
    item reads, whatever the order the items run in."""
    taken: set[Path] = set()
    inputs: dict[Path, BatchItem] = {}  # each input, with the first item that reads it
    for other in items:
        for path in other.inputs() if other.problem is None else ():
            inputs.setdefault(path.resolve(), other)
    named = []
    for item in items:
        if item.problem is not None:
            named.append(item)
            continue
        if item.output is not None:
            path = item.output if item.output.is_absolute() else out_dir / item.output
        else:
            if item.styles:
                stem = f"{item.content.stem}_{item.styles[0].stem}" + ("_blend" if len(item.styles) > 1 else "")
            else:
                stem = f"{item.content.stem}_{Path(item.model or model or 'model').name}"
            stem = _fitting(stem)
            path, n = out_dir / f"{stem}{_suffix(item)}", 2
            while path.resolve() in taken or path.resolve() in inputs:
                path, n = out_dir / f"{stem}-{n}{_suffix(item)}", n + 1
        if path.resolve() in inputs:
            reader = inputs[path.resolve()]
            named.append(dataclasses.replace(item, output=path, problem=f"{item.where}: output {path} is an input of "
                                                                        f"{'this item' if reader is item else _named(reader)}"))
            continue
        if path.resolve() in taken:
            named.append(dataclasses.replace(item, output=path, problem=f"{item.where}: output {path} is also an "
                                                                        "earlier item's output"))
            continue
        taken.add(path.resolve())
        named.append(dataclasses.replace(item, output=path))
    return named
