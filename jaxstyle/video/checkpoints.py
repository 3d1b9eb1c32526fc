"""The lanes' checkpoints: after every step, each lane's short history of 8-bit outputs (what its
next frames warp), saved by Orbax.

The histories are packed into two fixed-shape arrays, ``frames`` [rows, history, H, W, 3] uint8 and
``times`` [rows, history] int32 (the frame index of each slot, -1 for an empty one), one row per
lane of this process. With several processes they are one global array over a one-device-per-process
('hosts',) mesh, each process's rows its own shard, and Orbax saves it in its multi-process mode:
every process writes its own shard and process 0 commits the step once all have, so a step is
either in the checkpoint for every process or for none. The directory must be shared by the
processes (as the work directory is).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding, PartitionSpec as P


class LaneCheckpoints:
    def __init__(self, folder: Path, rows: int, history: int, frame_hw: tuple[int, int]):
        self.rows, self.history = rows, history
        self.frame_hw = tuple(frame_hw)
        procs = jax.process_count()
        hosts = [min((d for d in jax.devices() if d.process_index == p), key=lambda d: d.id) for p in range(procs)]
        mesh = jax.make_mesh((procs,), ("hosts",), devices=hosts, axis_types=(jax.sharding.AxisType.Auto,))
        self.sharding = NamedSharding(mesh, P("hosts"))
        self.shapes = {"frames": ((rows, history, *self.frame_hw, 3), np.uint8), "times": ((rows, history), np.int32)}
        options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True, enable_async_checkpointing=False)
        self.manager = ocp.CheckpointManager(folder.resolve(), options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, histories: list[dict[int, np.ndarray]]) -> None:
        """Checkpoint this process's lanes' histories (frame index -> uint8 frame) after ``step``."""
        frames = np.zeros(self.shapes["frames"][0], np.uint8)
        times = np.full(self.shapes["times"][0], -1, np.int32)
        for row, history in enumerate(histories):
            for slot, t in enumerate(sorted(history)[-self.history:]):
                frames[row, slot], times[row, slot] = history[t], t
        tree = {name: jax.make_array_from_process_local_data(self.sharding, value)
                for name, value in (("frames", frames), ("times", times))}
        self.manager.save(step, args=ocp.args.StandardSave(tree))
        self.manager.wait_until_finished()

    def restore(self, step: int, lanes: int) -> list[dict[int, np.ndarray]]:
        """The histories of this process's first ``lanes`` rows after ``step``."""
        procs = jax.process_count()
        abstract = {name: jax.ShapeDtypeStruct((procs * shape[0], *shape[1:]), dtype, sharding=self.sharding)
                    for name, (shape, dtype) in self.shapes.items()}
        tree = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        frames, times = (np.asarray(tree[name].addressable_data(0)) for name in ("frames", "times"))
        return [{int(t): frames[row, slot] for slot, t in enumerate(times[row]) if t >= 0} for row in range(lanes)]

    def close(self) -> None:
        self.manager.close()
