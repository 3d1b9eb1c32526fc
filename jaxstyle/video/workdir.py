"""The work directory of a video job: its manifest (what run it belongs to), the finished frames as
8-bit PNGs, the lanes' checkpoints (:mod:`.checkpoints`), the decoded mask labels and the cached flows.

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
from jax.experimental import multihost_utils

from ..errors import UserError
from ..io.files import write_failure
from .checkpoints import LaneCheckpoints


class WorkDir:
    def __init__(self, path: Path, process_id: int = 0, num_processes: int = 1):
        self.path = path
        self.process_id = process_id
        self.num_processes = num_processes

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

    def joined_path(self, t: int) -> Path:
        """Pass 1's frame t with the lanes joined (written for the refinement passes)."""
        return self.path / "joined" / f"{t:06d}.png"

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
        except BaseException:  # an interrupt: no temporary file is left beside the frames
            tmp.unlink(missing_ok=True)
            raise

    @staticmethod
    def load_png(path: Path) -> np.ndarray:
        return np.asarray(iio.imread(path))

    # ---- checkpoints ----------------------------------------------------------------------------
    def checkpoints(self, rows: int, history: int, frame_hw: tuple[int, int]) -> LaneCheckpoints:
        """The lanes' checkpoints (Orbax, in ``ckpt/``): ``rows`` lanes per process, ``history``
        frames each."""
        return LaneCheckpoints(self.path / "ckpt", rows, history, frame_hw)
