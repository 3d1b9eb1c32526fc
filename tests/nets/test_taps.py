"""Feature taps and statistics: Gram matrices of large images summed block by block are exact."""

import jax.numpy as jnp
import numpy as np

from jaxstyle import imaging
from jaxstyle.imaging import resize_masks
from jaxstyle.io.images import read_image
from jaxstyle.nets import taps
from jaxstyle.objective.distances import gram, region_grams


def test_block_summed_grams_are_exact(vgg16, media, monkeypatch):
    """Large style images (a 4K frame's style at the frame's scale) are summed block by block with a
    halo >= the receptive-field radius: equal to the whole image's Grams (plain and per region); with
    too little halo the deep layers are visibly off, so the test can tell."""
    layers = ("relu1_1", "relu3_1", "relu5_1")
    img = imaging.resize(read_image(media / "styles" / "starry_night.jpg"), 150, 190)
    feats = taps.features_fn(vgg16, layers)(vgg16.variables, jnp.asarray(img)[None])
    shapes = taps.layer_shapes(vgg16, layers, 150, 190)
    halves = np.zeros((150, 190, 2), np.float32)
    halves[:70, :, 0] = 1
    halves[70:, :, 1] = 1
    masks = {k: resize_masks(halves, *shapes[k]) for k in layers}

    def blocked(halo):
        monkeypatch.setattr(taps, "GRAM_BLOCK", 64)
        monkeypatch.setattr(taps, "GRAM_HALO", halo)
        monkeypatch.setattr(taps, "GRAM_WINDOW", 0)  # block even this small image
        assert len(taps._gram_blocks(150)) * len(taps._gram_blocks(190)) == 9
        return taps.weighted_grams(vgg16, layers, img), taps.weighted_grams(vgg16, layers, img, masks)

    assert len(taps._gram_blocks(150)) * len(taps._gram_blocks(190)) == 1  # not blocked by default
    plain, regional = blocked(80)  # VGG16 relu5_1 sees 66 px on each side
    for k in layers:
        np.testing.assert_allclose(np.asarray(plain[k]), np.asarray(gram(feats[k][0])), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(regional[k]), np.asarray(region_grams(feats[k][0], jnp.asarray(masks[k]))),
                                   rtol=1e-4, atol=1e-5)
    short, _ = blocked(16)
    ref = np.asarray(gram(feats["relu5_1"][0]))
    assert np.abs(np.asarray(short["relu5_1"]) - ref).max() > 1e-2 * np.abs(ref).max()
