"""jaxstyle: neural style transfer in JAX for images, video and audio.

The package is layered; imports only point down this list:

- ``errors``, ``imaging`` (pixel operations), ``io`` (files: images, labels, video, audio, JSON)
- ``nets`` (VGG, feature taps and Gram statistics, weights)
- ``objective`` (the loss terms and their sum, evaluated whole or window by window)
- ``optim`` (the optimizers behind one protocol, and ``solve``)
- ``config`` (the one configuration, in sections)
- ``schedules`` (coarse to fine, coupled and independent tiles)
- ``video`` (lanes, flow, temporal inputs, the work directory, the job), ``audio`` (spectrograms)
- ``api`` (this module's functions), ``cli`` (the command line, one module per job)
"""

from .api import Result, Temporal, stylize_frames, stylize_image
from .audio import clear_caches as _clear_audio
from .config import PRESETS, StyleConfig
from .errors import NonFiniteLoss, UserError
from .nets import Network, load_network
from .nets import clear_caches as _clear_nets
from .optim import clear_caches as _clear_optim

__version__ = "0.1.0"

__all__ = [
    "PRESETS", "StyleConfig", "UserError", "NonFiniteLoss", "Result", "Temporal", "Network",
    "load_network", "stylize_frames", "stylize_image", "clear_caches", "__version__",
]


def clear_caches() -> None:
    """Drop every compiled program and cached statistic (networks, solver, audio)."""
    _clear_nets()
    _clear_optim()
    _clear_audio()
