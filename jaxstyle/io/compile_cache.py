"""The persistent XLA compilation cache of CLI runs: a later run with the same shapes, weights layout
and devices loads its compiled programs from disk instead of compiling them again (on 2 CPU cores
the example spends ~8 s of its minute compiling; on a GPU or TPU the L-BFGS and VGG programs take
tens of seconds).

The folder is ``xla`` under :func:`jaxstyle.io.files.cache_root` (``~/.cache/jaxstyle/xla``). JAX's
own settings win: ``JAX_COMPILATION_CACHE_DIR`` moves it (the test suite points it at a temporary
folder) and ``JAX_ENABLE_COMPILATION_CACHE=false`` turns it off. Only programs that took a second or
more to compile are kept (JAX's threshold: eager ops compile in milliseconds and would only fill the
folder), and the folder is capped, the least recently used programs going first. A cache that cannot
be written is skipped: it only saves time.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import jax

from .files import cache_root

MAX_BYTES = 2 << 30


def enable_compile_cache() -> Path | None:
    """Point JAX at the cache folder unless the user configured (or disabled) it; the folder used, or
    None when JAX's own setting stands or the folder cannot be written. Call before the first compile."""
    if not jax.config.jax_enable_compilation_cache or jax.config.jax_compilation_cache_dir:
        return None
    folder = cache_root() / "xla"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK | os.X_OK):
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    # a cache that fails mid-run (a full disk, a file-size limit) only costs time: JAX's warnings
    # about it must not read as a second error beside the job's own one line
    warnings.filterwarnings("ignore", message="Error (writing|reading) persistent compilation cache",
                            category=UserWarning)
    if jax.config.jax_compilation_cache_max_size < 0:  # unset: JAX would let it grow without bound
        jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return folder
