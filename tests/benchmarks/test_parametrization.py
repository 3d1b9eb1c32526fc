"""bench_parametrization's pieces: the pyramid synthesis (no VGG, so it is instant) and its flags."""

import argparse

import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.bench_parametrization import parse_configs, pyramid


def test_the_pyramid_starts_as_the_image_and_adds_upsampled_levels():
    rng = np.random.default_rng(0)
    image = rng.random((12, 10, 3), dtype=np.float32)
    synthesize, sizes = pyramid(12, 10, 2, 0.5)
    assert sizes == [12 * 10 * 3, 6 * 5 * 3, 3 * 3 * 3]  # odd sides round up
    z = np.concatenate([image.reshape(-1), np.zeros(sum(sizes[1:]), np.float32)])
    np.testing.assert_allclose(synthesize(jnp.asarray(z)), image, atol=1e-6)  # zeros above: the image
    z[sizes[0]:sizes[0] + sizes[1]] = 1.0  # a flat level 1 adds s^1 everywhere
    np.testing.assert_allclose(synthesize(jnp.asarray(z)), image + 0.5, atol=1e-5)
    pixels, only = pyramid(12, 10, 0, 1.0)
    assert only == [360] and np.allclose(pixels(jnp.asarray(image.reshape(-1))), image)


def test_configs_parse_and_bad_ones_are_refused():
    assert parse_configs("0:1,3:0.5:30") == [(0, 1.0, 10), (3, 0.5, 30)]
    for bad in ("3", "3:x", "0:nan", "-1:1", "0:1:0", "0:1:2:3"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_configs(bad)
