"""Agreement between the processes of a multi-host job (video lanes, batch buckets, training): every
process runs the same compiled programs in the same order (one program over the global mesh), so
what decides whether a program runs (a lane's first frame, a later frame, a checkpoint to resume
from) is agreed through JAX's multi-host collectives first, and so is what the job is: every
process must run the same command on the same inputs (:func:`check_same_inputs`). One process: each
function is its own answer, with no collective.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from .errors import UserError

DIGEST_BYTES = 1 << 16  # of a file, its size and its first and last 64 KiB are compared


def spans_processes(devices) -> bool:
    """Whether these devices belong to more than this process (a global program)."""
    return any(d.process_index != jax.process_index() for d in devices)


def any_process(flag: bool, num_processes: int) -> bool:
    if num_processes == 1:
        return flag
    return bool(np.any(multihost_utils.process_allgather(np.asarray(flag, np.int32))))


def min_over_processes(value: int, num_processes: int) -> int:
    if num_processes == 1:
        return value
    return int(np.min(multihost_utils.process_allgather(np.asarray(value, np.int64))))


def sum_over_processes(value: int, num_processes: int) -> int:
    if num_processes == 1:
        return value
    return int(np.sum(multihost_utils.process_allgather(np.asarray(value, np.int64))))


def broadcast_from_first(value: np.ndarray, num_processes: int) -> np.ndarray:
    """Process 0's ``value`` on every process (each passes an array of the same shape and dtype)."""
    if num_processes == 1:
        return value
    return np.asarray(multihost_utils.broadcast_one_to_all(value))


def file_digest(path: Path) -> str:
    """SHA-256 of a file's size and of its first and last 64 KiB: cheap for a long video or 10,000
    photos, and a copy that differs (another take, a re-encode, a cut-short transfer) differs here."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        digest.update(str(size).encode())
        handle.seek(0)
        digest.update(handle.read(DIGEST_BYTES))
        if size > DIGEST_BYTES:
            handle.seek(max(DIGEST_BYTES, size - DIGEST_BYTES))
            digest.update(handle.read(DIGEST_BYTES))
    return digest.hexdigest()


def _digest_array(text: str) -> np.ndarray:
    return np.frombuffer(hashlib.sha256(text.encode()).digest(), np.uint8).copy()


def check_same_inputs(settings: dict, files: Sequence[Path], num_processes: int, what: str = "job") -> None:
    """Every process reads its own copy of the inputs (no shared filesystem is needed to read), so a
    host with another command or another file would silently compute something else. Its settings
    (as a JSON-able dict) and the digests of its files are compared with process 0's through JAX;
    a difference is one line naming the first process and what differs."""
    if num_processes == 1:
        return
    mine = _digest_array(json.dumps(settings, sort_keys=True, default=str))
    every = np.asarray(multihost_utils.process_allgather(mine))
    other = [p for p in range(len(every)) if not np.array_equal(every[p], every[0])]
    if other:
        raise UserError(f"process {other[0]} runs this {what} with other settings than process 0: every process "
                        "must run the same command (only --process-id differs)")
    digests = np.zeros((len(files), 32), np.uint8)
    for i, path in enumerate(files):
        digests[i] = _digest_array(file_digest(Path(path)) if Path(path).is_file() else "absent")
    every = np.asarray(multihost_utils.process_allgather(digests))
    for p in range(1, len(every)):
        for i, path in enumerate(files):
            if not np.array_equal(every[p][i], every[0][i]):
                raise UserError(f"process {p} reads another {path} than process 0 (its size or content differs): "
                                "every host needs the same input files")
