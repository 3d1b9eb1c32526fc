"""A trained model on disk and its use: ``MODEL_DIR/params.msgpack`` (the network's parameters,
Flax's msgpack) and ``MODEL_DIR/model.json`` (the network's spec, its styles, the loss settings it
was trained with, and the parameters' SHA-256, checked on load).

:meth:`Model.stylize` runs the network on frames of any size: batches of ``frames_per_device`` per
device, sharded over a ('frames',) mesh, one compile per batch shape.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from ..errors import UserError, program
from ..io.files import atomic_output, write_text_atomic
from ..nets.transformer import Stylizer, StylizerSpec
from ..optim.solve import frame_mesh, local_rows, replicate, shard_frames

MODEL_FORMAT = "jaxstyle-feedforward-model"
MODEL_VERSION = 1
PARAMS_FILE = "params.msgpack"
META_FILE = "model.json"

_APPLY: dict[tuple, Any] = {}


def _apply_fn(module: Stylizer):
    key = (module.spec,)
    if key not in _APPLY:
        _APPLY[key] = jax.jit(lambda params, images, cond: module.apply(
            {"params": params}, images, jnp.broadcast_to(cond, (images.shape[0], cond.shape[-1]))))
    return _APPLY[key]


@dataclass
class Model:
    spec: StylizerSpec
    params: Any                       # NumPy pytree
    meta: dict = field(default_factory=dict)

    @property
    def module(self) -> Stylizer:
        return Stylizer(self.spec)

    @property
    def styles(self) -> list[str]:
        return list(self.meta.get("styles", []))

    def mix(self, weights: Sequence[float] | None) -> np.ndarray:
        """A ``styles`` model's conditioning: a blend of its trained styles (default: the first)."""
        if self.spec.kind != "styles":
            raise UserError("--style-mix blends the styles of a 'styles' model; this one predicts from --style")
        n = self.spec.cond_dim
        if weights is None:
            weights = [1.0] + [0.0] * (n - 1)
        weights = np.asarray(weights, np.float64)
        if weights.ndim != 1 or len(weights) != n:
            raise UserError(f"--style-mix has {weights.size} weight(s) but the model has {n} style(s)")
        if not np.all(np.isfinite(weights)):
            raise UserError("--style-mix weights must be finite numbers")
        if np.any(weights < 0) or not np.any(weights > 0):
            raise UserError("--style-mix weights must be >= 0 and not all zero")
        weights = weights / weights.max()  # (so that huge weights sum without overflow)
        return (weights / weights.sum()).astype(np.float32)

    def _placed(self, mesh):
        """The parameters on the devices of ``mesh``, placed once (a video sends frames, not weights)."""
        key = None if mesh is None else tuple(d.id for d in mesh.devices.flat)
        cache = self.__dict__.setdefault("_on_devices", {})
        if key not in cache:
            cache[key] = replicate(jax.tree.map(jnp.asarray, self.params), mesh)
        return cache[key]

    def stylize(self, frames: np.ndarray, cond: np.ndarray, *, frames_per_device: int = 1,
                devices: Sequence[jax.Device] | None = None) -> np.ndarray:
        """Frames [N, H, W, 3] in [0, 1] -> stylized [N, H, W, 3], batched and sharded over devices."""
        frames = np.asarray(frames, np.float32)
        n = frames.shape[0]
        devices = list(devices or jax.local_devices())
        mesh = frame_mesh(n, frames_per_device, devices)
        per_batch = frames_per_device * (1 if mesh is None else mesh.devices.size)
        fn = _apply_fn(self.module)
        params = self._placed(mesh)
        cond = replicate(jnp.asarray(cond, jnp.float32), mesh)
        out = []
        for start in range(0, n, per_batch):
            batch = frames[start:start + per_batch]
            pad = per_batch - batch.shape[0]
            if pad:  # one shape for the last batch
                batch = np.concatenate([batch, np.repeat(batch[-1:], pad, axis=0)])
            result = fn(params, shard_frames(batch, mesh), cond)
            out.append(local_rows(result)[:per_batch - pad])
        return np.concatenate(out) if out else frames.copy()


def params_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_model(folder: Path, model: Model) -> None:
    """Write the parameters, then the description that names their digest (each atomically), so a
    folder with a ``model.json`` always has the parameters it describes."""
    folder.mkdir(parents=True, exist_ok=True)
    data = serialization.msgpack_serialize(jax.tree.map(np.asarray, model.params))
    with atomic_output(folder / PARAMS_FILE) as tmp:
        tmp.write_bytes(data)
    meta = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "network": dataclasses.asdict(model.spec),
            "params_sha256": params_digest(data), **model.meta}
    write_text_atomic(folder / META_FILE, json.dumps(meta, indent=2, default=str) + "\n")


def load_model(folder: str | Path) -> Model:
    """The model in ``folder``; anything wrong with it is one UserError line."""
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not folder.is_dir():
        raise UserError(f"--model {folder} is not a directory" if folder.exists() else f"--model {folder} does not exist")
    if not meta_path.is_file():
        if (folder / "job.json").is_file() or (folder / "checkpoints").is_dir():  # (a training's folder)
            raise UserError(f"--model {folder} is a training that has not finished (no {META_FILE} yet): continue it "
                            f"with '{program()} train ... --resume'")
        raise UserError(f"--model {folder} has no {META_FILE}: not a jaxstyle model (train one with '{program()} train')")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"--model {folder}: {META_FILE} is not readable JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise UserError(f"--model {folder}: {META_FILE} does not describe a jaxstyle feed-forward model")
    if meta.get("version") != MODEL_VERSION:
        raise UserError(f"--model {folder} is format version {meta.get('version')}; this jaxstyle reads {MODEL_VERSION}")
    try:
        spec = StylizerSpec(**meta["network"])
        spec.check()
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"--model {folder}: bad network description ({exc})") from None
    params_path = folder / PARAMS_FILE
    try:
        data = params_path.read_bytes()
    except OSError:
        raise UserError(f"--model {folder} has no readable {PARAMS_FILE}") from None
    if params_digest(data) != meta.get("params_sha256"):
        raise UserError(f"--model {folder}: {PARAMS_FILE} does not match the SHA-256 in {META_FILE} "
                        "(a changed or partly copied model)")
    template = jax.eval_shape(lambda: Stylizer(spec).init_params(jax.random.PRNGKey(0)))
    try:
        params = serialization.from_state_dict(template, serialization.msgpack_restore(data))
        ok = jax.tree.structure(params) == jax.tree.structure(template) and all(
            np.shape(a) == t.shape for a, t in zip(jax.tree.leaves(params), jax.tree.leaves(template)))
    except Exception:  # msgpack and the state-dict restore raise many kinds
        ok = False
    if not ok:
        raise UserError(f"--model {folder}: {PARAMS_FILE} does not fit the network in {META_FILE}")
    params = jax.tree.map(lambda a: np.asarray(a, np.float32), params)
    extra = {k: v for k, v in meta.items() if k not in ("format", "version", "network", "params_sha256")}
    return Model(spec, params, extra)

