"""The work directory of a video job: its manifest (what run it belongs to), the finished frames as
8-bit PNGs, the lanes' checkpoints, the decoded mask labels and the cached flows.

It sits beside the output (``.OUT.jaxstyle-work``) unless ``--work-dir`` names another. Everything
in it is written atomically (a temporary name, then a rename), so a killed run leaves only whole
files; ``--resume`` continues from them when the manifest matches the run's fingerprint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from ..errors import UserError
from ..io.files import write_failure


class WorkDir:
    def __init__(self, path: Path, process_id: int = 0, num_processes: int = 1):
        self.path = path
        self.process_id = process_id
        self.num_processes = num_processes
        self._orbax = None

    @property
    def manifest(self) -> Path:
        return self.path / "manifest.json"

    @property
    def flows(self) -> Path:
        return self.path / "flows"

    @property
    def masks(self) -> Path:
        return self.path / "masks"

    # ---- the run it belongs to -----------------------------------------------------------------
    def prepare(self, fingerprint: dict, resume: bool) -> bool:
        """Make the directory this run's: keep it when resuming the same run, else start afresh.
        Returns whether an earlier run's directory was kept. With several processes, process 0
        prepares it and tells the others (a JAX collective, not a polled file) whether that worked;
        each then checks that the manifest is its own run's."""
        fp = json.loads(json.dumps(fingerprint, default=str))
        error, kept = None, False
        if self.process_id == 0:
            try:
                kept = self._prepare_here(fp, resume)
            except UserError as exc:
                error = exc
        if self.num_processes == 1:
            if error is not None:
                raise error
            return kept
        failed, kept = (bool(v) for v in multihost_utils.broadcast_one_to_all(
            np.array([error is not None, kept], np.int32)))
        if error is not None:
            raise error
        if failed:
            raise UserError(f"process 0 could not prepare the work directory {self.path} (its error says why)")
        try:
            same = json.loads(self.manifest.read_text()) == fp
        except (OSError, ValueError):
            same = False
        if not same:
            raise UserError(f"{self.path} holds another run's manifest: every process must run the same command "
                            "and see the same work directory (a shared filesystem)")
        return kept

    def _prepare_here(self, fp: dict, resume: bool) -> bool:
        if resume and self.manifest.is_file():
            if json.loads(self.manifest.read_text()) != fp:
                raise UserError(f"cannot resume: {self.path} belongs to a run with other inputs or settings")
            return True
        if self.path.exists() and not self.manifest.is_file() and any(self.path.iterdir()):
            raise UserError(f"work directory {self.path} is not empty and is not a jaxstyle work directory; "
                            "choose another --work-dir")
        if self.path.exists() and not resume:
            self.remove()
        (self.path / "frames").mkdir(parents=True, exist_ok=True)
        tmp = self.manifest.with_suffix(".tmp")
        tmp.write_text(json.dumps(fp, indent=1))
        os.replace(tmp, self.manifest)
        return False

    def remove(self) -> None:
        """Delete the directory, which holds only what this engine wrote (it has our manifest)."""
        if self.manifest.is_file():
            shutil.rmtree(self.path, ignore_errors=True)

    def barrier(self, name: str) -> None:
        """Wait until every process has reached ``name`` (JAX's multi-host barrier)."""
        if self.num_processes > 1:
            multihost_utils.sync_global_devices(f"jaxstyle:{name}")

    # ---- frames ---------------------------------------------------------------------------------
    def frame_path(self, t: int, lane: int, pass_index: int = 1) -> Path:
        folder = "frames" if pass_index == 1 else f"pass{pass_index}"
        return self.path / folder / f"{t:06d}_{lane:03d}.png"

    @staticmethod
    def save_png(path: Path, image_u8: np.ndarray) -> None:
        tmp = path.with_name(f".{path.name}.tmp.png")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(tmp, image_u8)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise write_failure(path, exc) from None

    @staticmethod
    def load_png(path: Path) -> np.ndarray:
        return np.asarray(iio.imread(path))

    # ---- checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self, step: int, tree: dict) -> None:
        """Checkpoint the lanes' histories after ``step``.

        One process: an Orbax CheckpointManager (the last two steps kept). Several processes: each
        process writes its own lanes' histories to its own atomically replaced ``.npz`` (two,
        alternating). They are host-local NumPy data, not global arrays, so a host's checkpoint
        needs nothing from the others; the processes agree on the step to resume from
        (:func:`jaxstyle.video.lanes.run_lanes`).
        """
        if self.num_processes == 1:
            self._manager().save(step, args=ocp.args.StandardSave(tree))
            self._manager().wait_until_finished()
            return
        flat = {"step": np.int64(step)}
        for lane, data in tree.items():
            for t, image in data["outputs"].items():
                flat[f"{lane}/{t}"] = image
        # two files, alternating: a process killed between its peers' saves still has the step
        # they all finished (resuming takes the latest step every process has)
        path = self._npz(step % 2)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, **flat)
        os.replace(tmp, path)

    def _npz(self, slot: int) -> Path:
        return self.path / f"ckpt_p{self.process_id}_{slot}.npz"

    def _npz_steps(self) -> dict[int, Path]:
        steps = {}
        for slot in (0, 1):
            path = self._npz(slot)
            try:
                with np.load(path) as data:
                    steps[int(data["step"])] = path
            except (OSError, ValueError, KeyError):
                continue  # absent, or cut short by a kill (the write is atomic, so only absent)
        return steps

    def latest_checkpoint(self) -> int | None:
        """The last step this process checkpointed (None: none)."""
        if self.num_processes == 1:
            return self._manager().latest_step()
        steps = self._npz_steps()
        return max(steps) if steps else None

    def load_checkpoint(self, step: int | None = None) -> tuple[int, dict] | None:
        """The lanes' histories after ``step`` (default: the latest), or None."""
        if self.num_processes == 1:
            manager = self._manager()
            step = manager.latest_step() if step is None else step
            if step is None or step not in manager.all_steps():
                return None
            return step, manager.restore(step, args=ocp.args.StandardRestore())
        steps = self._npz_steps()
        step = max(steps) if step is None and steps else step
        if step not in steps:
            return None
        tree: dict = {}
        with np.load(steps[step]) as data:
            for key in data.files:
                if key != "step":
                    lane, t = key.split("/")
                    tree.setdefault(lane, {"outputs": {}})["outputs"][t] = data[key]
        return step, tree

    def close(self) -> None:
        if self._orbax is not None:
            self._orbax.close()
            self._orbax = None

    def _manager(self):
        if self._orbax is None:
            options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True)
            self._orbax = ocp.CheckpointManager((self.path / "ckpt").resolve(), options=options)
        return self._orbax
