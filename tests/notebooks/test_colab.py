"""The Colab notebook runs from top to bottom (on CPU, with small parameters) and shows the
stylized image and clip inline, then trains a network on the clip, stylizes the clip with it and
runs a batch job of stills through it."""

import json
import os

import nbformat
from nbclient import NotebookClient

from ..helpers import ROOT, cli_env

NOTEBOOK = ROOT / "notebooks" / "colab_tpu.ipynb"
SMALL = {"IMAGE_SIZE": 32, "ITERATIONS": 2, "VIDEO_SIZE": 32, "VIDEO_SECONDS": 0.5, "VIDEO_ITERATIONS": 1,
         "FRAMES_PER_DEVICE": 1, "TRAIN_STEPS": 2, "TRAIN_SIZE": 32, "TRAIN_BATCH": 2, "TRAIN_WIDTH": 4}


def _with_parameters(nb, values: dict):
    """Override assignments of the cell tagged "parameters" (as papermill would)."""
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    lines = cell.source.splitlines()
    for name, value in values.items():
        at = [i for i, line in enumerate(lines) if line.split("=")[0].strip() == name]
        assert at, f"{name} is not a parameter of the notebook"
        lines[at[0]] = f"{name} = {value!r}"
    cell.source = "\n".join(lines)
    return nb


def test_the_notebook_runs_on_cpu_and_shows_the_results(tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("XLA_FLAGS", cli_env(2)["XLA_FLAGS"])
    nb = _with_parameters(nbformat.read(NOTEBOOK, as_version=4), SMALL)
    NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o.get("data", {}) for o in outputs if o.output_type == "display_data"]
    assert any("image/png" in d for d in shown), "the stylized image is shown"
    assert any("<video" in d.get("text/html", "") for d in shown), "the clip is shown as a playable video"
    assert (tmp_path / "outputs" / "colab" / "stylized.png").is_file()
    metrics = json.loads((tmp_path / "outputs" / "colab" / "clip.json").read_text())
    assert metrics["frames"] == 6 and metrics["devices"] == 2
    assert os.path.getsize(tmp_path / "outputs" / "colab" / "stylized.mp4") > 0
    work = tmp_path / "outputs" / "colab"
    assert json.loads((work / "model" / "metrics.json").read_text())["steps"] == 2
    assert json.loads((work / "network.json").read_text())["frames"] == 6
    assert sum("<video" in d.get("text/html", "") for d in shown) == 2, "both clips are shown"
    index = [json.loads(line) for line in (work / "batch" / "index.jsonl").read_text().splitlines()]
    assert [r["status"] for r in index] == ["ok"] * 3
