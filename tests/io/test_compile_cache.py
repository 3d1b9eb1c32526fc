"""The CLI's persistent compilation cache: on by default under the cache root, and JAX's own
settings (a folder, or the cache turned off) win. Each case runs in a child process: the cache
folder is global JAX state, and this suite's own cache (tests/conftest.py) must stay untouched."""

import json
import os
import subprocess
import sys

import pytest

# enable the cache as the CLI does (through the public name API users call), compile one small
# program, report the folder chosen
CHILD = """
import json, jax, jax.numpy as jnp
import jaxstyle
folder = jaxstyle.enable_compile_cache()
jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((64, 64))).block_until_ready()
print(json.dumps({"folder": None if folder is None else str(folder),
                  "jax_dir": jax.config.jax_compilation_cache_dir,
                  "max_size": jax.config.jax_compilation_cache_max_size}))
"""


def run_child(tmp_path, **env_changes) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_") and k != "JAXSTYLE_CACHE"}
    env.update(JAX_PLATFORMS="cpu", XDG_CACHE_HOME=str(tmp_path / "xdg"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")  # keep even this quick compile
    env.update(env_changes)
    res = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def entries(folder) -> list:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_cache_defaults_to_the_cache_root_and_fills(tmp_path):
    out = run_child(tmp_path)
    folder = tmp_path / "xdg" / "jaxstyle" / "xla"
    assert out["folder"] == str(folder) == out["jax_dir"]
    assert out["max_size"] == 2 << 30  # capped: JAX's default lets it grow without bound
    assert entries(folder), "the compiled program was not written to the cache"


def test_jaxstyle_cache_moves_it(tmp_path):
    out = run_child(tmp_path, JAXSTYLE_CACHE=str(tmp_path / "mine"))
    assert out["folder"] == str(tmp_path / "mine" / "xla")
    assert entries(tmp_path / "mine" / "xla")


@pytest.mark.parametrize("setting", ["folder", "off"])
def test_jax_settings_win(tmp_path, setting):
    own = tmp_path / "jax-own"
    if setting == "folder":
        out = run_child(tmp_path, JAX_COMPILATION_CACHE_DIR=str(own))
        assert out["folder"] is None and out["jax_dir"] == str(own)
    else:
        out = run_child(tmp_path, JAX_ENABLE_COMPILATION_CACHE="false")
        assert out["folder"] is None and out["jax_dir"] is None
    assert not (tmp_path / "xdg").exists()


def test_unusable_cache_is_skipped(tmp_path):
    """A cache root that cannot hold the folder (here a file, which stops root too) only costs the
    compile time: the run goes on without a cache."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    out = run_child(tmp_path, JAXSTYLE_CACHE=str(blocker))
    assert out["folder"] is None and out["jax_dir"] is None
