"""benchmarks/device_check.sh runs end to end on a CPU at tiny sizes (the command a GPU's first
minutes will run, so it must not fail there for want of a test)."""

import json
import os
import subprocess
import sys

from tests.helpers import ROOT, cli_env


def test_device_check_tiny_runs_every_part(tmp_path):
    # bfloat16 exercises autocast; tf32 and float32 differ from it only in PyTorch's matmul/conv
    # switches. torch.compile is left out here (its CPU compile alone takes most of a minute): a
    # contender that fails is recorded in the JSON, it never ends the run. The budget is lifted so
    # that a loaded machine skips no part (the test is about every part running).
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path), "JAX_PLATFORMS": "cpu"}
    env["XLA_FLAGS"] = cli_env(1)["XLA_FLAGS"]  # one CPU device, as on a single chip
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--tiny", "--precisions",
                           "bfloat16", "--torch-compile-precisions", "", "--budget-s", "3600"],
                          env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "device_check"
    assert (out / "device_check.log").is_file()
    data = json.loads((out / "device_check.json").read_text())
    assert data["skipped"] == []
    (entry,) = data["throughput"]
    assert set(entry["precisions"]) == {"bfloat16"}
    for precision, row in entry["precisions"].items():
        contenders = row["contenders"]
        assert set(contenders) == {"jax", "torch_eager"}, contenders
        for name, c in contenders.items():
            assert "error" not in c, (name, c)
            assert c["median_seconds"] > 0 and 0 < c["mfu"] < 10
            if name != "jax":  # the same loss on both sides (bfloat16 rounds differently)
                assert c["initial_loss_rel_diff_vs_jax"] < (1e-4 if precision == "tf32" else 2e-2)
                assert row[f"jax_over_{name}"] > 0
    amortized = data["amortized"]["precisions"]
    assert set(amortized) == {"bfloat16"}
    for row in amortized.values():
        assert row["final_loss_mean"] < row["initial_loss_mean"] and row["seconds_per_frame"] > 0
    lanes = data["lanes"]
    assert lanes["modes"]["sequential"]["lanes"] == 1 and lanes["modes"]["lanes"]["lanes"] == 2
    assert lanes["lanes_over_sequential_e_stab"] > 0 and lanes["modes"]["lanes"]["scene_cuts"] == []
    assert "JAX/eager" in data["table"] and "ms/it" in proc.stdout
