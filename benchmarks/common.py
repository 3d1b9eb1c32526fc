"""Shared helpers of the benchmarks: media, the default Gatys loss in JAX and PyTorch, timing,
the machine's matmul rate, environment facts and JSON output.

Both contenders always get the same network (the arrays of one ``jaxstyle.Network``), the same
images and the same loss (``jaxstyle.objective.Objective`` / ``reference_torch.TorchGatysLoss``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jaxstyle import imaging  # noqa: E402
from jaxstyle.config import StyleConfig  # noqa: E402
from jaxstyle.io.images import read_image  # noqa: E402
from jaxstyle.nets.taps import style_image_size  # noqa: E402
from jaxstyle.objective import Objective, ScaleInputs  # noqa: E402
from reference_torch import TorchGatysLoss, TorchVGG  # noqa: E402  (benchmarks/ is on sys.path)

MEDIA = ROOT.parent / "shared" / "media"
CONTENT = MEDIA / "content" / "tubingen.jpg"
STYLE = MEDIA / "styles" / "starry_night.jpg"
OUT_DIR = ROOT / "outputs" / "bench"


# ----------------------------------------------------------------------------------------------
# Media and the loss


def read_media() -> tuple[np.ndarray, np.ndarray]:
    """The content (tubingen) and style (starry night) images, float32 RGB [H, W, 3]."""
    for path in (CONTENT, STYLE):
        if not path.is_file():
            raise SystemExit(f"benchmark media not found: {path} (expected ../shared/media beside the repo)")
    return read_image(CONTENT), read_image(STYLE)


def loss_setup(cfg: StyleConfig | None = None) -> tuple[StyleConfig, dict[str, float]]:
    """jaxstyle's loss for a config (default: StyleConfig() -- content 1, style 10, tv 1,
    relu4_2 / relu1_1..relu5_1 at 0.2 each, mse): the resolved config and its weights as floats."""
    cfg = (cfg or StyleConfig()).resolved()
    if cfg.distance != "mse":
        raise SystemExit("the PyTorch reference implements the mse distance only")
    floats = {"content": float(cfg.content_weight), "style": float(cfg.style_weight), "tv": float(cfg.tv_weight)}
    return cfg, floats


def jax_problem(network, cfg: StyleConfig, frames: np.ndarray, style: np.ndarray):
    """(objective, batched targets, weights) for frames [B, H, W, 3], exactly as a single-scale run
    of ``jaxstyle.schedules`` builds them."""
    b, h, w, _ = frames.shape
    inputs = ScaleInputs(network, frames, frames, [style], np.ones(1), style_side=max(h, w))
    objective = Objective.select(cfg, inputs)
    return objective, objective.targets(inputs, slice(0, b)), objective.weights(cfg, inputs)


def to_nchw(images: np.ndarray):
    import torch

    images = np.asarray(images, np.float32)
    if images.ndim == 3:
        images = images[None]
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def from_nchw(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().transpose(0, 2, 3, 1)


def torch_loss(network, cfg: StyleConfig, floats: dict[str, float], frames: np.ndarray, style: np.ndarray,
               device: str = "cpu", precision: str = "float32"):
    """TorchGatysLoss with targets from the same frames and the same resized style image."""
    loss = TorchGatysLoss(TorchVGG(network, device, precision), cfg.content_layers, cfg.style_layers,
                          cfg.style_layer_weights, floats["content"], floats["style"], floats["tv"])
    h, w = frames.shape[1:3]
    sh, sw = style_image_size(style.shape[0], style.shape[1], max(h, w))
    loss.set_targets(to_nchw(frames).to(device), loss.style_grams(to_nchw(imaging.resize(style, sh, sw)).to(device)))
    return loss


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12))


# ----------------------------------------------------------------------------------------------
# Timing, machine facts, output


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if len(values) else float("nan")


def settle(seconds: float) -> None:
    """Pause between contenders so spinning thread pools of the previous one go idle."""
    if seconds > 0:
        time.sleep(seconds)


def matmul_rates(n: int = 2048, reps: int = 5) -> dict[str, Any]:
    """float32 n x n matmul rate (GFLOP/s, 2 n^3 FLOPs) of jnp.dot (jitted), numpy and torch:
    the medians of ``reps`` timed calls after one warm-up each, and the raw seconds."""
    import torch

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    flops = 2.0 * n ** 3
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    jdot = jax.jit(jnp.dot)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    runners: dict[str, Callable[[], Any]] = {
        "jax": lambda: jdot(ja, jb).block_until_ready(),
        "numpy": lambda: np.dot(a, b),
        "torch": lambda: torch.mm(ta, tb),
    }
    out: dict[str, Any] = {"n": n, "reps": reps, "seconds": {}, "gflops": {}}
    for name, fn in runners.items():
        fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out["seconds"][name] = times
        out["gflops"][name] = flops / median(times) / 1e9
    return out


def merge_matmul(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Median rate over several matmul measurements (e.g. one before and one after the benchmark)."""
    n = samples[0]["n"]
    flops = 2.0 * n ** 3
    gflops = {}
    for name in samples[0]["seconds"]:
        times = [t for s in samples for t in s["seconds"][name]]
        gflops[name] = flops / median(times) / 1e9
    return {"n": n, "gflops": gflops, "samples": samples}


def environment(network=None) -> dict[str, Any]:
    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    env = {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        # XLA:CPU sizes its intra-op thread pool to the cores the process may run on.
        "jax_threads": cores,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu": cpu,
        "cores_available": cores,
        "load_average_at_start": load,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if network is not None:
        env["network"] = network.describe()
        env["network_sha256"] = network.sha256
    return env


def check_same_hardware(env: dict[str, Any]) -> None:
    if env["jax_backend"] != "cpu":
        print(f"WARNING: JAX runs on {env['jax_backend']} but PyTorch on the CPU; the comparison is not like for like "
              "(set JAX_PLATFORMS=cpu)", file=sys.stderr)


def warn_if_busy(env: dict[str, Any]) -> None:
    """Other processes on the cores distort everything, PyTorch's OpenMP most of all (its threads
    wait at barriers for a descheduled peer: 5-10x outliers were seen with one busy core)."""
    load = env.get("load_average_at_start")
    if load and load[0] > 0.5 * env["cores_available"]:
        print(f"WARNING: the machine is busy (1-min load average {load[0]:.2f} on {env['cores_available']} cores); "
              "timings will be noisy, PyTorch's most of all", file=sys.stderr)


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default))
    os.replace(tmp, path)
    return path


def _json_default(obj):
    if isinstance(obj, np.ndarray) or hasattr(obj, "tolist"):
        return np.asarray(obj).tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")
