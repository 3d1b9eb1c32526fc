"""``python cli.py batch JOBS.jsonl --out-dir DIR`` (or ``--contents DIR --styles A,B``): many
inputs in one job, on one process or several (``--coordinator``, as for a video).

Every other flag of ``python cli.py`` applies to every item (an item's own ``options`` come after
it). The job checks everything it can first: its own flags (a bad one ends the job, exit 2), then
every item (parse, paths, readable inputs); an item that fails a check, or fails later, is recorded
in ``DIR/index.jsonl`` with its one-line reason and the rest go on. Images whose working shape and
settings agree are optimized together in shape buckets (:mod:`jaxstyle.batch.buckets`); other
images, videos and sounds run one at a time through the same code as a single command, in this
process (one start-up, compiled programs reused across items of the same shape). Items with a
trained network (a ``"model"`` in the jobs file, or the job's ``--model MODEL_DIR``, which also lets
``--contents`` go without ``--styles``) are stylized by it, one pass per frame, each network loaded once. Rerunning the
same command skips the items already done (``--redo`` does them again). Exit 0 when every item
succeeded, 2 when any failed, 130 on an interrupt (the finished items stay recorded).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import threading
import time
from pathlib import Path
from typing import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from tqdm import tqdm

from .. import imaging, interrupts, schedules
from ..api import network_for
from ..batch import BatchItem, ResultsIndex, batchable, expand_folder, group_buckets, output_names, read_jobs, \
    stylize_bucket
from ..config import StyleConfig
from ..video import Processes, VideoOptions
from ..errors import NonFiniteLoss, UserError
from ..feedforward import Model, load_model
from ..hosts import check_same_inputs
from ..imaging import target_size
from ..io.files import check_output_dir, check_output_file, os_error_line
from ..io.images import IMAGE_EXTENSIONS, check_output_path, image_size, read_image, write_image
from ..io.video import VIDEO_OUTPUT_EXTENSIONS, probe
from ..optim import compile_count
from .audio import audio_main
from .common import Parser, check_memory, claimed, crash_log, log, one_line
from .flags import from_flags, given_flags, given_section_flags
from .image import image_main
from .model import check_model_use, model_main
from .parser import build_parser
from .applies import (check_carry_is_for_a_network, check_flags_apply, check_flags_apply_to_network,
                      check_lane_flags_apply, picture_flags_error, runs_network, sound_flags_error,
                      unused_picture_flags, unused_sound_flags, unused_video_options, verb, video_options_error)
from .video import init_distributed, video_main

# images of a bucket optimized at once per device unless --frames-per-device says otherwise (videos keep
# the single command's default: there it sets the number of lanes, which changes the result)
BATCH_FRAMES_PER_DEVICE = 8


def item_file_flags(args: argparse.Namespace) -> list[str]:
    """The flags in ``args`` (parsed after a placeholder content and ``--style style.png``) that name
    one item's files: in a batch job those are the items' keys, and the metrics go to index.jsonl.
    Read from the parsed flags, so an abbreviation (``--out``) or ``-oX.png`` is found too."""
    given = {"--output": args.output is not None, "--style": len(args.style) > 1,
             "--style-audio": args.style_audio is not None, "--metrics-json": args.metrics_json is not None}
    return [flag for flag, is_given in given.items() if is_given]


def build_batch_parser() -> Parser:
    parser = Parser(prog="python cli.py batch", allow_abbrev=False,
                    usage="python cli.py batch [JOBS.jsonl | --contents DIR|GLOB --styles STYLE[,STYLE...]] "
                          "--out-dir DIR [--redo] [-q] [any flag of 'python cli.py', applied to every item]",
                    description="Stylize many inputs in one job: the lines of a JSONL file ({\"content\": ..., "
                                "\"style\": ..., \"output\": ..., \"options\": \"--size 256\"}), or every file of a "
                                "folder times every style. Results and reasons for failures go to DIR/index.jsonl.")
    parser.add_argument("--contents", metavar="DIR|GLOB", help="a folder (or glob pattern) of contents")
    parser.add_argument("--styles", metavar="STYLE[,STYLE...]", help="styles for --contents (each content x each style)")
    parser.add_argument("--out-dir", required=True, metavar="DIR", help="where the outputs and index.jsonl go")
    parser.add_argument("--redo", action="store_true", help="redo items that an earlier run of the job finished")
    parser.add_argument("--max-bucket", type=int, default=64, metavar="N",
                        help="images held in memory per run of a bucket [default: 64]; --frames-per-device of "
                             f"them are optimized at once on each device [default for images: {BATCH_FRAMES_PER_DEVICE}]")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return parser


@dataclasses.dataclass
class Planned:
    """An item that passed its checks: its parsed flags, resolved config and working shape."""

    item: BatchItem
    key: str
    args: argparse.Namespace
    config: StyleConfig
    shape: tuple[int, int] | None = None  # images only


@dataclasses.dataclass(frozen=True)
class Hosts:
    """The processes of a batch job: every process plans every item the same way; each bucket's
    images are split over the processes and optimized as one program over all their devices; the
    other items are dealt round-robin."""

    id: int = 0
    count: int = 1

    @property
    def first(self) -> bool:
        return self.id == 0

    def share(self, n: int) -> slice:
        bounds = [n * p // self.count for p in range(self.count + 1)]
        return slice(bounds[self.id], bounds[self.id + 1])

    def rows(self, n: int) -> int:
        """Rows every process brings for a bucket of ``n`` images (the largest share)."""
        return -(-n // self.count)

    def barrier(self, name: str) -> None:
        if self.count > 1:
            multihost_utils.sync_global_devices(name)

    def total(self, value: int) -> int:
        if self.count == 1:
            return value
        return int(np.sum(multihost_utils.process_allgather(np.asarray(value, np.int64))))


class BatchRun:
    """The state of one job: its index, counts and progress bar."""

    def __init__(self, index: ResultsIndex, total: int, quiet: bool, job_model: str | None = None):
        self.index, self.ok, self.failed, self.job_model = index, 0, 0, job_model
        self.bar = None if quiet else tqdm(total=total, unit="item", desc="batch", dynamic_ncols=True)

    def say(self, line: str) -> None:
        (self.bar.write if self.bar is not None else log)(line)

    def record(self, item: BatchItem, key: str | None, status: str, *, error: str | None = None, metrics=None,
               bucket: str | None = None, seconds: float | None = None) -> None:
        record = item.record()
        if record["model"] is None and self.job_model and item.kind != "audio":  # (the job's --model ran it)
            record["model"] = str(self.job_model)
        self.index.append({**record, "key": key, "status": status, "error": error, "bucket": bucket,
                           "seconds": seconds, "metrics": metrics})
        if status == "ok":
            self.ok += 1
            self.say(f"[{item.index}] wrote {item.output}" + (f" ({bucket})" if bucket else ""))
        else:
            self.failed += 1
            self.say(f"[{item.index}] failed: {error}")
        if self.bar is not None:
            self.bar.update(1)
        _interruptible()


def _interruptible() -> None:
    """Interrupts act again (an item's output lock holds them while it is released); one that came
    meanwhile ends the job now, with every finished item recorded."""
    if threading.current_thread() is threading.main_thread():
        interrupts.install()


def _reason(exc: Exception) -> str:
    if isinstance(exc, (UserError, NonFiniteLoss)):
        return str(exc)
    if isinstance(exc, OSError) and (line := os_error_line(exc)):  # the disk or a name, not a bug
        return line
    return f"internal error: {one_line(exc)}; the traceback is in {crash_log(exc)}"


PROCESS_FLAGS = ("--coordinator", "--num-processes", "--process-id")


class Models:
    """The trained networks of a job's items, each loaded (and its digest checked) once."""

    def __init__(self):
        self._loaded: dict[Path, Model] = {}

    def get(self, path) -> Model:
        key = Path(path).resolve()
        if key not in self._loaded:
            self._loaded[key] = load_model(path)
        return self._loaded[key]


@functools.lru_cache(maxsize=1)
def _parser():
    return build_parser()


def _parse(argv: Sequence[str]):
    """The command line of the job or of an item, parsed by one parser for the whole job (building
    one takes some 20 ms, and a job of 10,000 items parses twice that many lines)."""
    return _parser().parse_args(list(argv))


def _split_job_flags(job_flags: list[str]) -> tuple[list[str], Processes, str | None]:
    """Check the job's flags; returns the flags for every item (the multi-host ones taken out: they
    are the job's), the job's processes and its ``--model``."""
    args = _parse(["content.png", "--style", "style.png", *job_flags])
    item_dirs = [f for f in given_flags(VideoOptions, args) if f in ("--frames-dir", "--work-dir")]
    misplaced = item_file_flags(args) + item_dirs
    if misplaced:
        raise UserError(f"{', '.join(misplaced)} {verb(misplaced)} to one item's files: give "
                        f"{'it' if len(misplaced) == 1 else 'them'} per item (a jobs file's keys and options)")
    from_flags(StyleConfig, args).resolved()  # a bad value ends the job before any item runs
    check_lane_flags_apply(args)  # (as would a contradiction every item would fail on)
    item_flags, skip = [], False
    for flag in job_flags:
        if skip:
            skip = False
        elif flag.split("=", 1)[0] in PROCESS_FLAGS:
            skip = "=" not in flag
        else:
            item_flags.append(flag)
    return item_flags, from_flags(Processes, args), args.model


def _optimizes_from_network(item: BatchItem) -> bool:
    """The item's own options say --init network (the optimizer runs from the network's output)."""
    try:
        own = _parse([str(item.content), "--style", "style.png", *item.options])
    except UserError:
        return False  # (the item fails with its own reason)
    return getattr(own, "init", None) == "network"  # (a flag not given is not in the namespace)


def _check_job_flags_apply(job_flags: list[str], items: list[BatchItem]) -> None:
    """The job's flags are for the items that take them: a job with none that does would silently
    ignore them. Video flags are for its videos (a sound takes --start/--duration too); with the
    job's --model, the optimizer's flags are for items run with --init network (the job's or their own)."""
    args = _parse(["content.png", "--style", "style.png", *job_flags])
    readable = [item for item in items if item.problem is None]
    if args.model and not any(_optimizes_from_network(item) for item in readable):
        check_flags_apply_to_network(args)
    if "--carry" in given_section_flags(StyleConfig, args, "video") and not any(
            item.kind == "video" and (args.model or item.model) and getattr(args, "init", None) != "network"
            and not _optimizes_from_network(item) for item in readable):
        raise UserError("--carry carries a trained network's video frames along the optical flow, and no video of the "
                        "job is stylized by a network (a \"model\" without --init network)")
    kinds = {item.kind for item in readable}
    if not kinds:
        return
    unused = [f for f in unused_video_options(args, "image") if all(f in unused_video_options(args, k) for k in kinds)]
    if unused:
        sound_flags = [f for f in unused if f not in unused_video_options(args, "audio")]
        raise video_options_error(unused, "the job has no video or sound" if sound_flags else "the job has no video")
    unused = unused_sound_flags(args, "image", False) if "audio" not in kinds else []
    if unused:  # (a video item's "style" is its frames' style: no item of a job stylizes a video's sound)
        raise sound_flags_error(unused, "the job has no sound")
    unused = unused_picture_flags(args, "audio") if kinds == {"audio"} else []
    if unused:
        raise picture_flags_error(unused, "the job has only sounds")


def _plan(item: BatchItem, job_flags: list[str], models: Models) -> Planned:
    """Parse and check one item (raises UserError with its reason)."""
    args = _parse(item.argv(job_flags))
    config = from_flags(StyleConfig, args).resolved()
    if args.model:  # a trained network: the single command's own path (model_main)
        if item.kind == "audio":
            raise UserError("a trained network stylizes images and videos, not sound")
        check_model_use(args, config, models.get(args.model))
    elif args.style_mix is not None or config.init == "network":
        raise UserError("--style-mix and --init network use a trained network: give the item a \"model\" "
                        "(or the job --model MODEL_DIR)")
    elif not item.styles:
        raise UserError(f"{item.where}: no style (give \"style\", or a \"model\")")
    own = _parse([str(item.content), "--style", "style.png", *item.options])
    misplaced = item_file_flags(own) + (["--model"] if own.model else []) + given_flags(Processes, own)
    if misplaced:
        raise UserError(f"{', '.join(misplaced)} in \"options\": an item's files are its \"style\", \"model\" and "
                        "\"output\" (its metrics go to index.jsonl), and the processes are the job's")
    check_flags_apply(own, item.kind, item.content.name)  # (the job's flags are for the items that take them)
    if "--carry" in given_section_flags(StyleConfig, own, "video"):
        check_carry_is_for_a_network(args)
    check_lane_flags_apply(args)
    if args.model and config.init != "network":
        check_flags_apply_to_network(own)
    if config.video.carry and not (runs_network(args) and item.kind == "video"):
        # the job's --carry is for the videos a network stylizes (an item's own was refused above)
        config = dataclasses.replace(config, video=dataclasses.replace(config.video, carry=0.0))
    planned = Planned(item, item.key(job_flags), args, config)
    if item.kind == "image":
        inputs = [item.content, *item.styles]
        check_output_path(item.output, inputs)
        check_output_file(item.output, "output")
        height, width = image_size(item.content)
        for style in item.styles:
            image_size(style)
        planned.shape = target_size(height, width, config.size)
        if config.style_weights is not None and len(config.style_weights) != len(item.styles):
            raise UserError(f"{len(config.style_weights)} style weights given for {len(item.styles)} style images")
    elif item.kind == "video":
        check_output_path(item.output, [item.content, *item.styles], VIDEO_OUTPUT_EXTENSIONS, temp_depth=2)
        probe(item.content)
    else:  # a sound
        if not item.content.is_file():
            raise UserError(f"{item.content} does not exist")
        for style in item.styles:  # (any file ffmpeg reads a sound from will do, but not a picture)
            if style.suffix.lower() in IMAGE_EXTENSIONS:
                raise UserError(f"{item.content.name} is a sound file, and its style {style.name} is a picture: "
                                "give a sound (wav, flac, mp3, ogg, m4a, or a video's audio)")
    return planned


def _run_single(run: BatchRun, planned: Planned, metrics_dir: Path, models: Models) -> None:
    """One item through the single command's own code (its checks, locks and writes)."""
    item = planned.item
    metrics_path = metrics_dir / f"item{item.index}.json"
    args = argparse.Namespace(**{**vars(planned.args), "metrics_json": str(metrics_path)})
    t0 = time.perf_counter()
    try:
        if args.model:
            model_main(args, planned.config, models.get(args.model))
        else:
            {"image": image_main, "video": video_main, "audio": audio_main}[item.kind](args, planned.config)
        metrics = json.loads(metrics_path.read_text())
        metrics.pop("config", None)
        run.record(item, planned.key, "ok", metrics=metrics, seconds=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - an item's failure is recorded and the job goes on
        run.record(item, planned.key, "failed", error=_reason(exc), seconds=time.perf_counter() - t0)
    finally:
        metrics_path.unlink(missing_ok=True)


def _run_bucket(run: BatchRun, bucket, networks: dict, hosts: Hosts = Hosts()) -> None:
    """A bucket's images optimized together; an image that fails alone is recorded alone. With
    several processes each brings its share of the bucket as its rows of one program over every
    process's devices (an image it cannot read, or a share smaller than the others', becomes a
    stand-in row whose result is dropped)."""
    config = bucket.config
    h, w = bucket.shape
    t0 = time.perf_counter()
    ready, contents, styles = [], [], []
    for planned in bucket.items[hosts.share(len(bucket.items))]:
        try:
            content = imaging.resize(read_image(planned.item.content), *bucket.shape)
            style = read_image(planned.item.styles[0])
        except UserError as exc:
            run.record(planned.item, planned.key, "failed", error=str(exc))
            continue
        ready.append(planned)
        contents.append(content)
        styles.append(style)
    if not ready and hosts.count == 1:
        return
    rows = hosts.rows(len(bucket.items)) if hosts.count > 1 else len(ready)
    while len(contents) < rows:  # stand-ins, so every process brings as many rows
        contents.append(contents[0] if ready else np.zeros((h, w, 3), np.float32))
        styles.append(styles[0] if ready else np.zeros((h, w, 3), np.float32))
    devices = jax.devices() if hosts.count > 1 else None
    network = None
    try:
        check_memory(config, h, w, frames=min(rows, config.frames_per_device * len(jax.local_devices())))
        key = (config.network, config.pooling, config.precision)
        if key not in networks:
            networks[key] = network_for(config)
        network = networks[key]
        schedules.check_network(config, network)
        with claimed(*(p.item.output for p in ready)):
            try:
                images, metrics = stylize_bucket(contents, styles, config, network, devices=devices)
            except NonFiniteLoss:
                if len(ready) == 1 and hosts.count == 1:
                    raise
                images = metrics = None  # one image diverged: find it, the others still finish
            if images is not None:
                for planned, image in zip(ready, images):
                    write_image(planned.item.output, image)
    except Exception as exc:  # noqa: BLE001 - the bucket's items are recorded as failed and the job goes on
        for planned in ready:
            run.record(planned.item, planned.key, "failed", error=_reason(exc), bucket=bucket.name)
        return
    if images is None:  # each process retries its own images alone, on its own devices
        for planned, content, style in zip(ready, contents, styles):
            sub = dataclasses.replace(bucket, items=[planned])
            _run_bucket_alone(run, sub, content, style, network)
        return
    seconds = (time.perf_counter() - t0) / max(1, len(ready))
    for planned, m in zip(ready, metrics):
        run.record(planned.item, planned.key, "ok", metrics=m, bucket=bucket.name, seconds=seconds)


def _run_bucket_alone(run: BatchRun, bucket, content, style, network) -> None:
    planned = bucket.items[0]
    t0 = time.perf_counter()
    try:
        with claimed(planned.item.output):
            images, metrics = stylize_bucket([content], [style], bucket.config, network)
            write_image(planned.item.output, images[0])
        run.record(planned.item, planned.key, "ok", metrics=metrics[0], bucket=bucket.name,
                   seconds=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - this image diverged (or failed) on its own
        run.record(planned.item, planned.key, "failed", error=_reason(exc), bucket=bucket.name)


def batch_main(argv: Sequence[str]) -> int:
    argv = list(argv)
    jobs = argv.pop(0) if argv and not argv[0].startswith("-") else None
    args, job_flags = build_batch_parser().parse_known_args(argv)
    if (jobs is None) == (args.contents is None):
        raise UserError("give either a JOBS.jsonl file or --contents DIR --styles STYLE[,STYLE...]")
    if args.max_bucket < 1:
        raise UserError("--max-bucket must be at least 1")
    job_flags, processes, job_model = _split_job_flags(job_flags)
    out_dir = check_output_dir(args.out_dir, "--out-dir")
    if jobs is not None:
        if args.styles:
            raise UserError("--styles goes with --contents; a jobs file names each item's style")
        items = read_jobs(jobs, model=bool(job_model))
    else:
        styles = [s for s in (args.styles or "").split(",") if s]
        for style in styles:  # (every item would fail on it)
            if not Path(style).is_file():
                raise UserError(f"--styles: {style} " + ("is not a file" if Path(style).exists() else "does not exist"))
        items = expand_folder(args.contents, styles, model=bool(job_model))
        if any(item.content.parent.resolve() == out_dir.resolve() for item in items):
            raise UserError(f"--out-dir {args.out_dir} holds --contents files: a rerun would stylize the outputs as "
                            "contents; give another --out-dir")
    _check_job_flags_apply(job_flags, items)
    if job_model:
        load_model(job_model)  # a bad one ends the job
    processes = init_distributed(processes)  # before anything asks JAX for its devices
    out_dir.mkdir(parents=True, exist_ok=True)
    items = output_names(items, out_dir, job_model)
    hosts = Hosts(processes.process_id, processes.num_processes)
    models = [Path(m) / "model.json" for m in {job_model, *(item.model for item in items)} if m]
    files = sorted({path for item in items for path in (item.content, *item.styles) if path is not None} | set(models))
    check_same_inputs({"flags": job_flags, "model": job_model, "items": [item.record() for item in items]}, files,
                      hosts.count, "batch job")
    lock = ResultsIndex(out_dir).path if hosts.first else out_dir / f"index.p{hosts.id}.jsonl"
    with claimed(lock):  # one job per output folder (each process holds its own part)
        if hosts.first:
            ResultsIndex(out_dir).compact()  # parts a killed job left are merged before anyone reads
        hosts.barrier("batch:index")
        index = ResultsIndex(out_dir, hosts.id, hosts.count)
        return _run_job(items, job_flags, index, out_dir, args, hosts, job_model)


def _run_job(items: list[BatchItem], job_flags: list[str], index: ResultsIndex, out_dir: Path, args,
             hosts: Hosts, job_model: str | None = None) -> int:
    t0, compiles_before = time.perf_counter(), compile_count()
    run = BatchRun(index, len(items), args.quiet or not hosts.first, job_model)
    skipped, images, singles = 0, [], []
    models = Models()
    for item in items:  # every check first (every process plans alike; process 0 records)
        if item.problem is not None:
            if hosts.first:
                run.record(item, None, "failed", error=item.problem)
            continue
        key = item.key(job_flags)
        if not args.redo and index.finished(item.index, key):
            skipped += 1
            if run.bar is not None:
                run.bar.update(1)
            continue
        try:
            planned = _plan(item, job_flags, models)
        except Exception as exc:  # noqa: BLE001
            if hosts.first:
                run.record(item, key, "failed", error=_reason(exc))
            continue
        optimized = not planned.args.model  # (a trained network's items run one at a time: one pass each)
        if item.kind == "image" and optimized and batchable(planned.config, *planned.shape, len(item.styles)):
            if "--frames-per-device" not in [a.split("=", 1)[0] for a in item.argv(job_flags)]:
                planned.config = dataclasses.replace(planned.config, frames_per_device=BATCH_FRAMES_PER_DEVICE)
            images.append((planned.shape, planned.config, planned))
        else:
            singles.append(planned)
    buckets = group_buckets(images, args.max_bucket)
    if skipped and hosts.first:
        run.say(f"{skipped} item(s) already done by an earlier run of this job (--redo does them again)")
    if hosts.first:
        run.say(f"{len(items)} item(s): {len(images)} image(s) in {len(buckets)} bucket(s) "
                f"({', '.join(f'{b.name} x{len(b.items)}' for b in buckets) or 'none'}), {len(singles)} one at a "
                f"time" + (f"; {hosts.count} processes" if hosts.count > 1 else ""))
    networks: dict = {}
    for bucket in buckets:
        _run_bucket(run, bucket, networks, hosts)
    # the items' --metrics-json (the job holds the folder's lock)
    metrics_dir = out_dir / (".jaxstyle-batch-metrics" + (f"-p{hosts.id}" if hosts.count > 1 else ""))
    metrics_dir.mkdir(exist_ok=True)
    try:
        for i, planned in enumerate(singles):
            if i % hosts.count == hosts.id:  # dealt round-robin; each runs on its own process's devices
                _run_single(run, planned, metrics_dir, models)
    finally:
        for leftover in metrics_dir.glob("*"):
            leftover.unlink(missing_ok=True)
        metrics_dir.rmdir()
    if run.bar is not None:
        run.bar.close()
    hosts.barrier("batch:done")
    done, failed = hosts.total(run.ok), hosts.total(run.failed)
    if hosts.first:
        index.compact([item.index for item in items])
    wall = time.perf_counter() - t0
    compiles = compile_count() - compiles_before
    if hosts.first:
        log(f"batch: {done} done, {failed} failed, {skipped} skipped in {wall:.1f} s "
            f"({done / wall if wall else 0:.2f} items/s, {compiles} compile(s), {len(buckets)} bucket(s)); "
            f"index: {index.path}")
    if failed:
        raise UserError(f"{failed} of {len(items)} item(s) failed; their reasons are in {index.path}")
    return 0
