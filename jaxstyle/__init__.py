"""jaxstyle: neural style transfer in JAX for images, video and audio."""

from .config import PRESETS, StyleConfig
from .errors import NonFiniteLoss, UserError
from .stylize import Result, Temporal, stylize_frames, stylize_image
from .vgg import Network
from .weights import load_network

__version__ = "0.1.0"

__all__ = [
    "PRESETS", "StyleConfig", "UserError", "NonFiniteLoss", "Result", "Temporal", "Network",
    "load_network", "stylize_frames", "stylize_image", "__version__",
]
