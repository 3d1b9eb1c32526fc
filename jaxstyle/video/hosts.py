"""Agreement between the processes of a multi-host video job: every process runs the same compiled
programs in the same order (one program over the global mesh), so what decides whether a program
runs (a lane's first frame, a later frame, a checkpoint to resume from) is agreed through JAX's
multi-host collectives first."""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils


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
