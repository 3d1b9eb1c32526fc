"""Training a feed-forward network: Adam on the engine's loss (:mod:`.loss`), one jit-compiled step,
data-parallel over a ('frames',) mesh (the batch axis sharded with ``NamedSharding``, parameters
replicated); several hosts form one mesh over all their devices, each feeding its share of every
step (``jax.make_array_from_process_local_data``).

The model directory holds: ``checkpoints/`` (Orbax, every ``checkpoint_every`` steps, atomic: a
kill leaves the last finished one), ``previews/step_NNNNNN.png`` (the held-out frames, content
first, then each previewed style), ``metrics.json`` (the loss curve and throughput) and, at the
end, the model (:mod:`.model`). Since every batch is a function of the step (:mod:`.data`), a
resumed run reaches the same parameters as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P
from tqdm import tqdm

from ..config import LOSS_FIELDS, StyleConfig, TrainConfig
from ..errors import UserError
from ..imaging import contact_sheet
from ..io.files import json_default, write_text_atomic
from ..io.images import write_image
from ..nets.transformer import Stylizer, StylizerSpec
from ..nets.vgg import Network
from ..optim.solve import global_frame_mesh, replicate, shard_frames
from ..video.flow import FlowCache
from .data import TrainingData, store_input
from .loss import StyleBank, loss_parts, training_objective
from .model import Model, save_model

PREVIEW_STYLES = 4  # styles shown in a preview sheet


@dataclass
class TrainJob:
    styles: list[Path]             # style image files (a folder already expanded)
    data: list[Path]               # image and video files
    output: Path                   # the model directory
    train: TrainConfig
    config: StyleConfig            # resolved; its LOSS_FIELDS set the loss
    kind: str = "styles"           # styles | predicted
    flow: str = "dis"
    progress: bool = True
    devices: list | None = None    # the mesh's devices (default: as many of each process's as divide its share)

    @property
    def checkpoints(self) -> Path:
        return self.output / "checkpoints"

    @property
    def cache(self) -> Path:
        return self.output / "cache"


def data_devices(batch_size: int, num_processes: int) -> list[jax.Device]:
    """The devices of the step's mesh: as many of each process's devices as divide its share."""
    if batch_size % num_processes:
        raise UserError(f"--batch-size {batch_size} must be a multiple of the {num_processes} processes")
    share, local = batch_size // num_processes, len(jax.local_devices())
    use = max(d for d in range(1, min(share, local) + 1) if share % d == 0)
    if num_processes == 1:
        return jax.local_devices()[:use]
    chosen = [d for p in range(num_processes)
              for d in sorted((x for x in jax.devices() if x.process_index == p), key=lambda x: x.id)[:use]]
    return chosen


def _host_copy(tree):
    """This process's copy of replicated (possibly global) arrays, as NumPy."""
    return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)) if isinstance(a, jax.Array) else np.asarray(a), tree)


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"jaxstyle:train:{name}")


def train_network(job: TrainJob, network: Network, style_images: Sequence[np.ndarray], log: Callable = print) -> dict:
    """Run ``job``; returns its metrics (also in ``metrics.json``)."""
    t_start = time.perf_counter()
    tc, cfg = job.train, job.config
    procs, me = jax.process_count(), jax.process_index()
    # the frame store: process 0 decodes first, the others then find it (or decode on their own disk)
    stored = []
    for turn in ((0,), tuple(range(1, procs))) if procs > 1 else ((0,),):
        if me in turn:
            stored = [store_input(path, job.cache / "frames", tc.size, tc.frame_size) for path in job.data]
        _barrier(f"store{turn[0]}")
    data = TrainingData(stored, tc.size, pairs=tc.temporal_weight > 0, seed=cfg.seed, n_styles=len(style_images),
                        previews=tc.held_out, flows=FlowCache(job.cache / "flows"), flow_method=job.flow,
                        motion=tc.synthetic_motion)
    log(f"data: {data.describe()}")
    style_side = cfg.style_scale * float(np.median([max(s.height, s.width) for s in stored]))
    bank = StyleBank.build(network, cfg, style_images, job.kind, style_side)
    spec = StylizerSpec(job.kind, bank.conds.shape[1], tc.width, tc.blocks)
    module = Stylizer(spec)
    objective, weights = training_objective(cfg, network, tc.size)
    weights = dict(weights, temporal=np.float32(tc.temporal_weight if data.any_pairs else 0.0))

    devices = job.devices or data_devices(tc.batch_size, procs)
    mesh = global_frame_mesh(devices) if len(devices) > 1 else None
    tx = optax.adam(tc.learning_rate)
    params = module.init_params(jax.random.PRNGKey(cfg.seed))
    state = {"params": params, "opt_state": tx.init(params)}
    state = replicate(state, mesh) if mesh is not None else state
    variables = replicate(network.variables, mesh)
    weights = replicate({k: np.asarray(v, np.float32) for k, v in weights.items()}, mesh)

    def step(state, variables, batch, weights):
        def total(params):
            parts = loss_parts(module, objective, network, params, variables, batch, weights)
            return parts["total"], parts

        (_, parts), grads = jax.value_and_grad(total, has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "opt_state": opt_state}, parts

    kept = None if mesh is None else NamedSharding(mesh, P())
    step_c = jax.jit(step, donate_argnums=(0,), out_shardings=None if mesh is None else (kept, kept))

    # (a save cut short by a kill leaves a temporary folder: cleared when training starts again)
    options = ocp.CheckpointManagerOptions(max_to_keep=2, save_interval_steps=tc.checkpoint_every,
                                           enable_async_checkpointing=False, cleanup_tmp_directories=True)
    manager = ocp.CheckpointManager(job.checkpoints.resolve(), options=options)
    start = 0
    records: list[dict] = []
    try:
        latest = manager.latest_step() if tc.resume else None
        if latest is not None:
            abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
            try:
                state = manager.restore(latest, args=ocp.args.StandardRestore(abstract))
            except Exception as exc:  # Orbax and TensorStore raise many kinds for a damaged folder
                _quiet_closed_loop_callbacks()
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(" See full")[0][:160]
                raise UserError(f"--resume: the checkpoint of step {latest} in {job.checkpoints} cannot be read "
                                f"({reason}); if it is damaged, delete {job.checkpoints / str(latest)} to resume "
                                "from an earlier one, or train into a new -o") from None
            start = int(latest)
            records = [r for r in _read_metrics(job.output).get("curve", []) if r["step"] <= start]
            log(f"resuming at step {start} of {tc.steps}")
        elif tc.resume:
            log("no checkpoint to resume from: training from the start")
        share = tc.batch_size // procs
        previews = data.preview_frames()
        preview_conds = bank.conds[:PREVIEW_STYLES]
        bar = tqdm(total=tc.steps, initial=start, unit="step", desc="train", dynamic_ncols=True) \
            if job.progress and me == 0 else None
        t0, images_done, compile_seconds = time.perf_counter(), 0, 0.0
        for k in range(start, tc.steps):
            first = k * tc.batch_size + me * share
            batch = data.batch(range(first, first + share))
            grams, cond = bank.for_samples(batch.styles)
            arrays = {"contents": batch.contents, "cond": cond, "grams": grams}
            if batch.previous is not None:
                arrays.update(previous=batch.previous, forward=batch.forward, backward=batch.backward,
                              paired=batch.paired)
            t_step = time.perf_counter()
            state, parts = step_c(state, variables, shard_frames(arrays, mesh), weights)
            if k == start:
                jax.block_until_ready(state)
                compile_seconds = time.perf_counter() - t_step
                t0 = time.perf_counter()
            else:
                images_done += tc.batch_size
            done = k + 1
            if done % tc.log_every == 0 or done == tc.steps:
                values = {name: float(np.asarray(v.addressable_data(0) if isinstance(v, jax.Array) else v))
                          for name, v in parts.items()}
                if not np.isfinite(values["total"]):
                    raise UserError(f"the training loss became {values['total']} at step {done}; try a smaller "
                                    "--learning-rate or smaller loss weights, into a new -o (or remove "
                                    f"{job.output}: its checkpoints hold these settings)")
                rate = images_done / max(time.perf_counter() - t0, 1e-9)
                records.append({"step": done, "seconds": round(time.perf_counter() - t_start, 3), **values,
                                "images_per_second": rate})
                if bar is not None:
                    bar.set_postfix(loss=f"{values['total']:.4g}", content=f"{values['content']:.3g}",
                                    style=f"{values['style']:.3g}", temporal=f"{values['temporal']:.3g}",
                                    img_s=f"{rate:.2f}")
            # the curve goes to disk before the checkpoint: whatever step a resume restores, the
            # records up to it are there (a kill between the two loses no record)
            if me == 0 and (done % tc.log_every == 0 or done == tc.steps):
                _write_metrics(job.output, records, {"steps": tc.steps, "step": done, "finished": False,
                                                     "compile_seconds": compile_seconds})
            # (the last step always: a longer --steps on --resume continues from it)
            manager.save(done, args=ocp.args.StandardSave(state), force=done == tc.steps)
            if me == 0 and tc.preview_every and (done % tc.preview_every == 0 or done == tc.steps) and len(previews):
                _write_preview(job.output / "previews" / f"step_{done:06d}.png", module.spec, state["params"],
                               previews, preview_conds)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        manager.wait_until_finished()
    finally:
        manager.close()
    wall = time.perf_counter() - t_start
    # (the first step of a run compiles and is not timed: a run of one step has no rate)
    rate = images_done / max(time.perf_counter() - t0, 1e-9) if images_done else None
    summary = {"steps": tc.steps, "step": tc.steps, "finished": True, "resumed_from": start, "wall_seconds": wall,
               "compile_seconds": compile_seconds, "images_per_second": rate, "devices": len(devices), "processes": procs, "data": data.describe(),
               "final": records[-1] if records else {}}
    if me == 0:
        meta = {"kind": job.kind, "styles": [str(p) for p in job.styles], "style_side": style_side,
                "loss": {name: getattr(cfg, name) for name in LOSS_FIELDS},
                "vgg": {"arch": network.arch, "sha256": network.sha256},
                "train": dataclasses.asdict(tc), "temporal_weight": tc.temporal_weight if data.any_pairs else 0.0,
                "data": [str(p) for p in job.data]}
        save_model(job.output, Model(spec, _host_copy(state["params"]), meta))
        _write_metrics(job.output, records, summary)
    _barrier("saved")
    return {**summary, "curve": records}


def _quiet_closed_loop_callbacks() -> None:
    """After a failed restore, TensorStore's other reads still finish and call back into Orbax's
    event loop, which is closed by then: each prints a RuntimeError traceback that is not the
    user's business (the failure itself is reported). Drop those; anything else goes on as before."""
    previous = sys.unraisablehook

    def hook(unraisable):
        if not (isinstance(unraisable.exc_value, RuntimeError) and "Event loop is closed" in str(unraisable.exc_value)):
            previous(unraisable)

    sys.unraisablehook = hook


def _write_preview(path: Path, spec: StylizerSpec, params, previews: np.ndarray, conds: np.ndarray) -> None:
    model = Model(spec, _host_copy(params))
    columns = [previews] + [model.stylize(previews, cond) for cond in conds]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, contact_sheet(columns))


def _read_metrics(folder: Path) -> dict:
    try:
        return json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def _write_metrics(folder: Path, records: list[dict], summary: dict) -> None:
    write_text_atomic(folder / "metrics.json", json.dumps({**summary, "curve": records}, indent=1,
                                                          default=json_default) + "\n")
