"""Helpers shared by the test modules: paths, the CLI in-process, one-line error checks, float
comparisons, packet checksums of media files and a smooth texture for optical flow."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import jax
import numpy as np

from jaxstyle.cli import main
from jaxstyle.io.ffmpeg import ffmpeg_exe
from jaxstyle.objective import Objective, ScaleInputs

ROOT = Path(__file__).resolve().parents[1]
# Tests of I/O, schedules, resumption and errors need a network, not its deep layers: losses on the
# first two VGG blocks compile and run in about half the time of the default relu1_1..relu5_1.
# (The default layers are exercised by the objective, parity, multiscale and network tests.)
SHALLOW = ["--content-layers", "relu2_2", "--style-layers", "relu1_2,relu2_2"]
SHALLOW_LAYERS = {"content_layers": ("relu2_2",), "style_layers": ("relu1_2", "relu2_2")}
MEDIA = ROOT.parent / "shared" / "media"
FF = ffmpeg_exe()


def run_main(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err


def assert_one_line_error(code, err, *needles):
    """Exit code 2, no traceback, and exactly one error line (the last line; info lines may precede it)."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert errors[0].startswith("jaxstyle: error:"), err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])


def one_frame_objective(config, network, content, styles, style_side, **inputs):
    """(objective, targets without the frame axis, weights) of one content frame [H, W, 3] for a
    resolved config, as a run builds them at a scale of that size."""
    scale = ScaleInputs(network, np.asarray(content, np.float32)[None], np.asarray(content, np.float32)[None],
                        [np.asarray(s, np.float32) for s in styles], np.full(len(styles), 1.0 / len(styles)),
                        style_side=style_side, **inputs)
    objective = Objective.select(config, scale)
    targets = jax.tree.map(lambda a: a[0], objective.targets(scale, slice(0, 1)))
    return objective, targets, objective.weights(config, scale)


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12))


def packet_crcs(path: Path, spec: str) -> list[tuple[str, str]]:
    """(size, crc) of every packet of one stream, read without decoding."""
    res = subprocess.run(
        [FF, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path),
         "-map", spec, "-c", "copy", "-f", "framecrc", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert res.returncode == 0, res.stderr.decode()
    rows = []
    for line in res.stdout.decode().splitlines():
        if line and not line.startswith("#"):
            parts = [p.strip() for p in line.split(",")]
            rows.append((parts[4], parts[5]))
    return rows


def free_port() -> int:
    """A free localhost port (a jax.distributed coordinator of the multi-process tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli_env(devices: int) -> dict[str, str]:
    """This process's environment (weights dir, compilation cache and the other XLA flags of
    tests/conftest.py included) with ``devices`` fake CPU devices, for a child process."""
    env = dict(os.environ)
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", env.get("XLA_FLAGS", ""))
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(ROOT)
    return env


def texture(x: np.ndarray, y: np.ndarray, seed: int = 0, extent: tuple[int, int] = (64, 56)) -> np.ndarray:
    """Smooth RGB texture in [0, 1] that optical flow can follow: a sum of sinusoids plus a few
    Gaussian blobs (centred within ``extent`` = (width, height) and 10 px around), at (x, y)."""
    width, height = extent
    rng = np.random.default_rng(seed)
    img = np.full(x.shape + (3,), 0.4, np.float32)
    for c in range(3):
        for _ in range(4):
            fx, fy = rng.uniform(0.05, 0.25, 2)
            phase = rng.uniform(0, 2 * np.pi)
            img[..., c] += np.sin(fx * x + fy * y + phase) / 8
        for _ in range(3):
            cx, cy = rng.uniform(-10, width + 10), rng.uniform(-10, height + 10)
            s = rng.uniform(3, 8)
            img[..., c] += 0.3 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
    return np.clip(img, 0, 1).astype(np.float32)
