"""--photoreal: the matting-Laplacian term inside the optimizer lowers the output's matting energy."""

import numpy as np

import jaxstyle
from jaxstyle.objective import matting
from jaxstyle.config import StyleConfig


def _energy(content, image):
    return float(matting.matting_energy(content, image)) / (content.shape[0] * content.shape[1])


def test_photoreal_lowers_matting_energy(vgg16, content_small, style_small):
    base = dict(start_size=0, iterations=20, chunk=10)
    plain = jaxstyle.stylize_frames(content_small[None], [style_small], StyleConfig(**base), network=vgg16)
    real = jaxstyle.stylize_frames(content_small[None], [style_small], StyleConfig(**base, photoreal=1e3),
                                   network=vgg16)
    e0, e1 = _energy(content_small, plain.images[0]), _energy(content_small, real.images[0])
    assert e1 < 0.5 * e0, (e0, e1)
    assert "photoreal" in real.metrics["final"] and "photoreal" not in plain.metrics["final"]
    # the term reported in the metrics is the per-pixel energy of the optimized image
    np.testing.assert_allclose(real.metrics["final"]["photoreal"][0], e1, rtol=0.05)
    # still a stylized image, not the content
    assert np.abs(real.images[0] - content_small).mean() > 0.01
