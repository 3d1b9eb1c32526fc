"""Jobs over several processes (jax.distributed, local processes with fake CPU devices): the check
that every host runs the same command on the same inputs, the video lanes' Orbax checkpoints in its
multi-process mode, and tiled frames as one program over every process's devices. (The untiled
video job over two processes: tests/video/test_video.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np

from ..helpers import ROOT, cli_env, free_port
from .test_video import FAST, assert_same_frames, make_clip, pngs, style, two_processes_and_one  # noqa: F401 (a fixture)

# Each process saves its lanes' histories (process p's frames are filled with 10 * p + the step),
# restores the step before last and checks it gets its own rows back. A second pair of processes
# (as after a kill) finds the same latest step and the same rows.
CHECKPOINT_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import jax, numpy as np
    jax.distributed.initialize(sys.argv[1], 2, int(sys.argv[2]))
    from jaxstyle.video.checkpoints import LaneCheckpoints
    me, folder, mode = jax.process_index(), Path(sys.argv[3]), sys.argv[4]
    rows = 2 - me  # process 0 has two lanes, process 1 one (a row of padding)
    ckpt = LaneCheckpoints(folder, 2, 3, (4, 5))
    def histories(step):
        return [{t: np.full((4, 5, 3), 10 * me + t + row, np.uint8) for t in range(max(0, step - 2), step + 1)}
                for row in range(rows)]
    if mode == "save":
        for step in range(4):
            ckpt.save(step, histories(step))
    latest = ckpt.latest_step()
    restored = ckpt.restore(latest, rows)
    same = all(sorted(got) == sorted(want) and all(np.array_equal(got[t], want[t]) for t in want)
               for got, want in zip(restored, histories(latest)))
    ckpt.close()
    print(json.dumps({"latest": latest, "same": same, "rows": len(restored),
                      "times": [sorted(h) for h in restored]}))
""")


# Each process has its own copy of an input; process 1's differs where the case says so. One pair
# of processes runs every case (a start of jax.distributed costs more than the checks).
SAME_INPUTS_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import jax
    jax.distributed.initialize(sys.argv[1], 2, int(sys.argv[2]))
    from jaxstyle.errors import UserError
    from jaxstyle.hosts import check_same_inputs
    me, folder = jax.process_index(), Path(sys.argv[3])
    errors = {}
    for case in ("same", "file", "settings"):
        mine = folder / case / f"p{me}" / "clip.mp4"
        mine.parent.mkdir(parents=True, exist_ok=True)
        mine.write_bytes(b"x" * 100_000 + (b"other" if case == "file" and me == 1 else b"same"))
        settings = {"iterations": 5 if case == "settings" and me == 1 else 4}
        try:
            check_same_inputs(settings, [mine], 2, "video job")
            errors[case] = None
        except UserError as exc:
            errors[case] = str(exc).replace(str(mine), "FILE")
    print(json.dumps(errors))
""")


def _two_processes(script: str, *args) -> list[dict]:
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-c", script, f"127.0.0.1:{port}", str(i), *map(str, args)],
                              cwd=ROOT, env=cli_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(2)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode()[-3000:]
        # the result line (Gloo may write its own log on the same line, without a newline)
        line = next(x for x in reversed(out.decode().splitlines()) if '{"' in x)
        outs.append(json.JSONDecoder().raw_decode(line[line.index('{"'):])[0])
    return outs


def test_every_host_must_run_the_same_command_on_the_same_inputs(tmp_path):
    """Each host reads its own copy (a path of its own here, as on two machines): equal copies pass,
    a differing copy or setting is one line on every process."""
    errors = _two_processes(SAME_INPUTS_SCRIPT, tmp_path)
    assert errors[0] == errors[1], errors  # every process says the same
    assert errors[0]["same"] is None, errors
    assert "process 1 reads another FILE than process 0" in errors[0]["file"], errors
    assert "process 1 runs this video job with other settings" in errors[0]["settings"], errors


def test_lane_checkpoints_across_two_processes(tmp_path):
    """Orbax in its multi-process mode: one step for both processes, each restoring its own rows."""
    folder = tmp_path / "ckpt"
    saved = _two_processes(CHECKPOINT_SCRIPT, folder, "save")
    assert [r["latest"] for r in saved] == [3, 3] and all(r["same"] for r in saved), saved
    assert [r["times"] for r in saved] == [[[1, 2, 3], [1, 2, 3]], [[1, 2, 3]]]
    assert sorted(p.name for p in folder.iterdir() if p.name.isdigit()) == ["2", "3"]  # the last two kept
    again = _two_processes(CHECKPOINT_SCRIPT, folder, "restore")
    assert again == saved


def test_tiled_frames_across_two_processes_equal_one_process(style, tmp_path, vgg16):
    """Frames above --tile-size (coupled tiles) as one program over two processes with a fake device
    each, a lane each (so each process brings one frame: its windows go one at a time, not spread
    over the mesh as a single frame's would be); the frames equal one process with 2 devices."""
    clip = make_clip(tmp_path / "clip.mp4", size="80x60", frames=8)
    common = [clip, "--style", style, "--frames-per-device", "1", "--overlap", "0", "--optimizer", "adam",
              "--tile-size", "64", *FAST]
    errs, m = two_processes_and_one(common, tmp_path, 1)
    assert "2 lane(s) (1 here)" in errs[0] and "2 lane(s) (1 here)" in errs[1], errs[0]
    assert "working size 80x60" in errs[0], errs[0]
    assert m["multi"]["devices"] == 2 == m["single"]["devices"] and m["multi"]["processes"] == 2
    frames = {name: pngs(tmp_path / f"frames_{name}") for name in ("multi", "single")}
    assert len(frames["multi"]) == 8 and np.ptp(frames["multi"]["frame_000001.png"]) > 0
    assert_same_frames(frames["multi"], frames["single"], "tiled frames, two processes vs one")
