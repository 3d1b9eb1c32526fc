"""``python cli.py train --style S.jpg [--style S2.jpg | --style DIR] --data DIR_OR_VIDEO [...] -o MODEL_DIR``:
train a feed-forward stylization network with the engine's loss (see :mod:`jaxstyle.feedforward`).

Everything is checked before the first step: the styles are read, the data is found, the model
directory is writable, and an existing model or its checkpoints are only continued with
``--resume`` (and only with the settings they were trained with).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Sequence

import jax

from ..api import network_for
from ..config import LOSS_FIELDS, StyleConfig, TrainConfig
from ..errors import UserError
from ..feedforward import TrainJob, check_sizes, find_inputs, train_network
from ..hosts import check_same_inputs, file_digest
from ..io.files import check_output_dir, write_text_atomic
from ..io.images import IMAGE_EXTENSIONS, read_image
from ..io.video import is_video
from ..nets.weights import default_network_name
from ..schedules.memory import check_training_memory, loss_arch
from ..video import Processes
from ..video.flow import check_flow_method
from .common import Parser, claimed, log
from .flags import add_flags, from_flags
from .video import init_distributed

JOB_FILE = "job.json"
# settings that may change between a run and its --resume
RESUMABLE = ("steps", "resume", "log_every", "preview_every", "checkpoint_every")
# training settings added after job.json first held the settings, with the value that a job.json
# without them was trained with (so an older training still resumes)
ADDED_TRAIN_SETTINGS = {"synthetic_motion": 0.0}


def build_train_parser() -> Parser:
    parser = Parser(prog="python cli.py train", allow_abbrev=False,
                    description="Train a feed-forward stylization network (Johnson et al., conditional instance norm; "
                                "or Ghiasi et al.'s style prediction for a folder of styles) with the engine's loss. "
                                "Use it with 'python cli.py IN --model MODEL_DIR -o OUT'.")
    parser.add_argument("--style", "-s", action="append", metavar="STYLE",
                        help="style image (repeat for several styles in one network), or a folder of style images")
    parser.add_argument("--data", action="append", metavar="PATH",
                        help="training images and videos: files or folders (repeat; a folder is searched through, "
                             "leaving out hidden files and folders and the -o folder; each file counts once); a "
                             "video trains on its frames (per-video training: the very clip you will stylize)")
    parser.add_argument("--output", "-o", metavar="MODEL_DIR", help="the model directory")
    parser.add_argument("--flow", default="dis", choices=("dis", "deepflow", "farneback"),
                        help="optical flow method of the temporal loss [default: dis]")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_flags(parser, TrainConfig, "training (TrainConfig)")
    add_flags(parser, StyleConfig, "loss (the engine's, StyleConfig)", only=LOSS_FIELDS)
    add_flags(parser, Processes, "multi-host (Processes)")
    return parser


def style_files(entries: Sequence[str]) -> tuple[list[Path], bool]:
    """The style images of the --style entries (a folder gives its images, sorted), and whether a
    folder was among them."""
    files, folder = [], False
    for entry in entries:
        path = Path(entry)
        if path.is_dir():
            folder = True
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                           and not p.name.startswith("."))  # (as --data folders: no ._x.jpg of macOS)
            if not found:
                raise UserError(f"--style {path} holds no images")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise UserError(f"--style {path} does not exist")
    seen: dict[Path, Path] = {}
    for path in files:
        first = seen.setdefault(path.resolve(), path)
        if first is not path:
            also = "" if str(first) == str(path) else f" (as {first} too)"
            raise UserError(f"--style {path} is given twice{also}: each style once")
    return files, folder


def _fingerprint(job: TrainJob) -> dict:
    """What a training's parameters depend on, compared on --resume and across processes: the
    styles' and data's contents (not their paths: a moved copy is the same data, an edited file
    is not), the settings that shape the steps, and the loss with its network resolved."""
    train = {k: v for k, v in dataclasses.asdict(job.train).items() if k not in RESUMABLE}
    del train["previews"]  # (what counts is how many items it holds out)
    train["held_out"] = job.train.held_out
    _drop_unused_temporal(train, job.data)
    loss = {name: getattr(job.config, name) for name in LOSS_FIELDS}
    loss["network"] = _network_name(loss["network"])
    return {"kind": job.kind, "styles": _digests(job.styles), "data": _digests(job.data), "train": train,
            "flow": job.flow if _has_video(job.data) else None, "loss": loss}


def _has_video(data: Sequence[Path]) -> bool:
    return any(is_video(p) for p in data)


def _drop_unused_temporal(train: dict, data: Sequence[Path]) -> None:
    """Still images without synthetic motion make no frame pairs: --temporal-weight does nothing
    there, so it is no difference on --resume. (Synthetic pairs use their exact motion, no --flow.)"""
    if not _has_video(data) and not train.get("synthetic_motion"):
        train.pop("temporal_weight", None)


def _digests(paths: Sequence[Path]) -> list[str]:
    """The files' digests, each file read once per run however often the fingerprint is taken."""
    return [_digest(str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in paths]


@functools.lru_cache(maxsize=None)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    return file_digest(Path(path))


def _network_name(name) -> str:
    return default_network_name() if name in (None, "", "auto") else name


def _changes(before: dict, now: dict) -> list[str]:
    """What differs between a training's fingerprint and this run's, as the user names it."""
    changes = []
    for key in sorted(k for k in set(before) | set(now) if not k.endswith("_by_path")):
        old, new = before.get(key), now.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            for name in sorted(set(old) | set(new)):
                was, now_ = old.get(name, "unused"), new.get(name, "unused")
                if was == now_:
                    continue
                if name == "held_out":
                    changes.append(f"{was} held-out preview item(s) (now {now_}: --previews N holds out N with "
                                   "--preview-every above 0, none with --preview-every 0)")
                else:
                    changes.append(f"--{name.replace('_', '-')} {was} (now {now_})")
        elif key in ("styles", "data"):
            flag = "--style" if key == "styles" else "--data"
            changes.append(f"another {flag} file list (this training named its files by path, and hidden files, "
                           "duplicates and the -o folder are now left out of --data folders)"
                           if before.get(f"{key}_by_path") else f"other {flag} file contents")
        else:
            changes.append(f"--{key} {old} (now {new})")
    return changes


def checkpoint_steps(output: Path) -> list[int]:
    """The steps of the finished checkpoints in a model directory (Orbax names each folder by its
    step; a save cut short leaves only a temporary folder, which does not count)."""
    folder = output / "checkpoints"
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()) if folder.is_dir() else []


def check_flow(method: str, data: Sequence[Path], train: TrainConfig) -> None:
    """--flow serves the temporal loss on video data: refused where there is none, and checked
    (OpenCV's build) before the work where there is."""
    if method == "dis":
        return
    if train.temporal_weight <= 0 or not _has_video(data):
        raise UserError(f"--flow {method} applies to the temporal loss between a video's frames, and in this training "
                        + ("--temporal-weight is 0" if train.temporal_weight <= 0 else "--data has no video"))
    check_flow_method(method)


def check_model_dir(job: TrainJob) -> None:
    """A new model directory, or (--resume) the one this job's settings were trained into. A
    directory that a run left before its first checkpoint (a failure, a kill) counts as new."""
    output = job.output
    check_output_dir(output, "-o")
    job_file = output / JOB_FILE
    steps = checkpoint_steps(output)
    if not job.train.resume:
        if steps or (output / "model.json").exists():
            raise UserError(f"{output} already holds a model or its checkpoints: --resume continues that training, "
                            "or choose another -o")
        if output.is_dir() and any(output.iterdir()) and not job_file.is_file():
            raise UserError(f"-o {output} is a folder with other files in it, not a model directory; "
                            "choose a new or empty folder")
        return
    if not steps and not job_file.is_file():
        raise UserError(f"--resume: {output} has no checkpoints to continue from")
    if steps and steps[-1] > job.train.steps:
        raise UserError(f"--resume: {output} is already at step {steps[-1]}, past --steps {job.train.steps}; "
                        f"give --steps {steps[-1]} or more")
    try:
        before = json.loads(job_file.read_text())
    except (OSError, ValueError):
        raise UserError(f"--resume: {output} has no readable {JOB_FILE}: not a training of this jaxstyle") from None
    now = json.loads(json.dumps(_fingerprint(job), default=str))
    if not isinstance(before, dict) or not isinstance(before.get("train"), dict) or \
            not isinstance(before.get("loss"), dict):
        raise UserError(f"--resume: {output}'s {JOB_FILE} is not a training of this jaxstyle")
    before = _as_now(before, job)
    changed = _changes(before, now)
    if changed:
        raise UserError(f"--resume: {output} was trained with other settings: {'; '.join(changed)}")


def _as_now(before: dict, job: TrainJob) -> dict:
    """An older job.json in today's terms: settings added since, with the value it was trained
    with; paths where today there are digests (the same paths count as the same files)."""
    before = {**before, "train": {**ADDED_TRAIN_SETTINGS, **before["train"]}, "loss": dict(before["loss"])}
    before["loss"]["network"] = _network_name(before["loss"].get("network"))
    for key, files in (("styles", job.styles), ("data", job.data)):
        if any(isinstance(v, str) and "/" in v for v in before.get(key) or []):
            same = before[key] == [str(p.resolve()) for p in files]
            before[key] = _digests(files) if same else before[key]
            before[f"{key}_by_path"] = not same
    if "previews" in before["train"]:  # (it held its previews out whatever --preview-every was)
        before["train"]["held_out"] = before["train"].pop("previews")
    _drop_unused_temporal(before["train"], job.data)
    if not _has_video(job.data):
        before["flow"] = None
    return before


def train_main(argv: Sequence[str]) -> int:
    args = build_train_parser().parse_args(argv)
    train = from_flags(TrainConfig, args)
    train.check()
    config = from_flags(StyleConfig, args).resolved()
    processes = from_flags(Processes, args)
    if not args.style:
        raise UserError("--style STYLE is required (an image, repeated for several, or a folder of style images)")
    if not args.data:
        raise UserError("--data PATH is required (images and videos, or folders of them)")
    if not args.output:
        raise UserError("-o MODEL_DIR is required")
    styles, folder = style_files(args.style)
    kind = train.kind if train.kind != "auto" else ("predicted" if folder else "styles")
    style_images = [read_image(p) for p in styles]
    data = find_inputs(args.data, skip=Path(args.output))
    check_flow(args.flow, data, train)
    job = TrainJob(styles, data, Path(args.output), train, config, kind=kind, flow=args.flow,
                   progress=not args.quiet)
    check_model_dir(job)
    items = check_sizes(data, train.size, train.frame_size, train.held_out, pairs=train.temporal_weight > 0)
    if train.held_out * 4 > items and processes.process_id == 0:
        fewer = items // 4
        log(f"note: --previews {train.previews} holds out {train.held_out} of the data's {items} item(s) (they are never "
            f"trained on); {f'--previews {fewer}, or ' if 0 < fewer < train.previews else ''}--preview-every 0 "
            "(no previews), trains on more")
    processes = init_distributed(processes)
    check_training_memory(train, arch=loss_arch(config))  # (JAX's devices are known now)
    settings = {**_fingerprint(job), "styles": len(job.styles), "data": len(job.data)}  # (the files: compared next)
    check_same_inputs(settings, [*job.styles, *job.data], processes.num_processes, "training")
    with claimed(*((job.output,) if processes.process_id == 0 else ())):
        job.output.mkdir(parents=True, exist_ok=True)
        if processes.process_id == 0:  # (on --resume too: an older job.json is written in today's terms)
            write_text_atomic(job.output / JOB_FILE, json.dumps(_fingerprint(job), indent=1, default=str) + "\n")
        network = network_for(config)
        log(f"training a '{kind}' network ({len(styles)} style(s), width {train.width}, {train.blocks} blocks) on "
            f"{network.describe()}; {len(jax.devices())} x {jax.devices()[0].platform} device(s), "
            f"process {processes.process_id + 1} of {processes.num_processes}")
        metrics = train_network(job, network, style_images, log=log)
    if processes.process_id == 0:
        final = metrics.get("final", {})
        rate = metrics["images_per_second"]
        log(f"wrote the model {job.output}: {train.steps} steps in {metrics['wall_seconds']:.1f} s"
            f"{'' if rate is None else f' ({rate:.2f} images/s)'}, final loss {final.get('total', float('nan')):.4g}")
    return 0
