"""jaxstyle: neural style transfer in JAX for images, video and audio.

The package is layered; imports only point down this list:

- ``errors``, ``imaging`` (pixel operations), ``io`` (files: images, labels, video, audio, JSON)
- ``nets`` (VGG, feature taps and Gram statistics, weights)
- ``objective`` (the loss terms and their sum, evaluated whole or window by window)
- ``optim`` (the optimizers behind one protocol, and ``solve``)
- ``config`` (the one configuration, in sections)
- ``schedules`` (coarse to fine, coupled and independent tiles)
- ``video`` (lanes, flow, temporal inputs, the work directory, the job), ``audio`` (spectrograms)
- ``feedforward`` (networks trained by the engine's losses: data, loss, training, models)
- ``api`` (this module's functions), ``cli`` (the command line, one module per job)

The names below load on first use (PEP 562), so ``python -m jaxstyle`` can answer an interrupt
during its start-up with one line: importing the package itself imports nothing heavy.
"""

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "stylize_frames": "api", "stylize_image": "api", "Result": "api", "Temporal": "api",
    "StyleConfig": "config", "PRESETS": "config", "UserError": "errors", "NonFiniteLoss": "errors",
    "Network": "nets", "load_network": "nets",
    "stylize_with_model": "api", "load_model": "api", "TrainConfig": "config",
    "enable_compile_cache": "io.compile_cache",  # (the CLI turns it on; a library leaves JAX's settings alone)
}
_SUBMODULES = {"api", "audio", "cli", "config", "errors", "imaging", "io", "nets", "objective", "optim",
               "schedules", "video", "feedforward"}

__all__ = [*_EXPORTS, "clear_caches", "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'jaxstyle' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})


def clear_caches() -> None:
    """Drop every compiled program and cached statistic (networks, solver, audio)."""
    for module in ("nets", "optim", "audio"):
        importlib.import_module(f".{module}", __name__).clear_caches()
