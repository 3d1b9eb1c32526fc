"""Semantic masks: style matched region by region; a region without style keeps the content."""

import imageio.v3 as iio
import numpy as np
import pytest

import jaxstyle
from jaxstyle import imaging
from jaxstyle.config import StyleConfig
from jaxstyle.errors import UserError
from jaxstyle.io.labels import encode_labels
from jaxstyle.nets.taps import features_fn, image_grams
from jaxstyle.objective import build_regions
from jaxstyle.objective.distances import gram

from ..helpers import assert_one_line_error, run_main

RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


def _halves(h, w):
    img = np.zeros((h, w, 3), np.float32)
    img[:, : w // 2] = RED
    img[:, w // 2:] = BLUE
    return img


def test_labels_from_colours():
    labels = encode_labels(_halves(4, 6))
    assert len(np.unique(labels)) == 2
    regions = build_regions(labels, [encode_labels(_halves(8, 8))], (8, 12), [(8, 8)])
    assert regions.content.shape == (1, 8, 12, 2)
    np.testing.assert_allclose(regions.content.sum(-1), 1.0)
    np.testing.assert_array_equal(regions.style_presence(), [[1, 1]])


def test_region_grams_of_whole_image_equal_plain_gram(vgg16, style_small):
    layers = ("relu1_1", "relu3_1")
    plain = image_grams(vgg16, layers, style_small, 64)
    ones = np.ones(style_small.shape[:2] + (1,), np.float32)
    region = image_grams(vgg16, layers, style_small, 64, ones)
    for k in layers:
        np.testing.assert_allclose(np.asarray(region[k][0]), np.asarray(plain[k]), rtol=1e-4, atol=1e-6)


def test_unstyled_region_stays_closer_to_content(vgg16, content_small, style_small):
    """Style only on the left half (the style mask has only the left half's colour): the right half
    stays much closer to the content than the left, and closer than without masks."""
    h, w = content_small.shape[:2]
    content_labels = encode_labels(_halves(h, w))
    style_labels = np.full(style_small.shape[:2], encode_labels(np.array(RED, np.float32)), np.int64)
    regions = build_regions(content_labels, [style_labels], (h, w), [style_small.shape[:2]])
    cfg = StyleConfig(start_size=0, iterations=30, chunk=15, style_weight=100.0)
    masked = jaxstyle.stylize_frames(content_small[None], [style_small], cfg, network=vgg16, regions=regions).images[0]
    plain = jaxstyle.stylize_frames(content_small[None], [style_small], cfg, network=vgg16).images[0]
    left, right = slice(0, w // 2 - 4), slice(w // 2 + 4, w)

    def change(img, cols):
        return float(np.abs(img[:, cols] - content_small[:, cols]).mean())

    assert change(masked, right) < 0.5 * change(masked, left), (change(masked, right), change(masked, left))
    assert change(masked, right) < 0.5 * change(plain, right), (change(masked, right), change(plain, right))

    # the styled region's statistics moved toward the style's; the other's stayed near the content's
    feats = features_fn(vgg16, ("relu2_1",))
    def g(img, cols):
        return np.asarray(gram(feats(vgg16.variables, img[None, :, cols])["relu2_1"][0]))
    style_g = np.asarray(image_grams(vgg16, ("relu2_1",), style_small, 64)["relu2_1"])
    d = lambda a, b: float(np.linalg.norm(a - b))  # noqa: E731
    assert d(g(masked, left), style_g) < d(g(content_small, left), style_g)
    assert d(g(masked, right), g(content_small, right)) < d(g(masked, left), g(content_small, left))


def test_cli_masks(capsys, tmp_path, content_small, style_small, weights_dir, vgg16):
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    cmask, smask = tmp_path / "cm.png", tmp_path / "sm.png"
    iio.imwrite(content, imaging.to_uint8(content_small))
    iio.imwrite(style, imaging.to_uint8(style_small))
    iio.imwrite(cmask, imaging.to_uint8(_halves(*content_small.shape[:2])))
    iio.imwrite(smask, imaging.to_uint8(_halves(*style_small.shape[:2])))
    out = tmp_path / "out.png"
    base = [str(content), "--style", str(style), "--network", "vgg16", "--start-size", "0", "--iterations", "2",
            "-q"]
    code, err = run_main(base + ["-o", str(out), "--content-mask", str(cmask), "--style-mask", str(smask)], capsys)
    assert code == 0, err
    assert iio.imread(out).shape == content_small.shape[:2] + (3,)
    bad = tmp_path / "bad.png"
    iio.imwrite(bad, imaging.to_uint8(_halves(10, 10)))
    for extra, needle in [(["--content-mask", str(bad), "--style-mask", str(smask)], "is 10x10 px"),
                          (["--content-mask", str(cmask)], "go together")]:
        assert_one_line_error(*run_main(base + ["-o", str(tmp_path / "o2.png"), *extra], capsys), needle)
    green = tmp_path / "green.png"
    iio.imwrite(green, np.full(style_small.shape[:2] + (3,), (0, 255, 0), np.uint8))
    assert_one_line_error(*run_main(base + ["-o", str(tmp_path / "o4.png"), "--content-mask", str(cmask),
                                            "--style-mask", str(green)], capsys), "match by colour")


def test_api_masks_from_the_config(tmp_path, content_small, style_small, vgg16):
    """The Python API honours StyleConfig's content_mask / style_mask (as the CLI does), and refuses
    what the CLI refuses."""
    cmask, smask, green = tmp_path / "cm.png", tmp_path / "sm.png", tmp_path / "green.png"
    iio.imwrite(cmask, imaging.to_uint8(_halves(*content_small.shape[:2])))
    iio.imwrite(smask, np.full(style_small.shape[:2] + (3,), (255, 0, 0), np.uint8))  # style on the left only
    iio.imwrite(green, np.full(style_small.shape[:2] + (3,), (0, 255, 0), np.uint8))
    fast = dict(network=vgg16, start_size=0, iterations=4, chunk=4, style_weight=100.0)
    plain = jaxstyle.stylize_image(content_small, style_small, **fast)
    masked = jaxstyle.stylize_image(content_small, style_small, content_mask=str(cmask), style_mask=(str(smask),), **fast)
    frames = jaxstyle.stylize_frames(content_small[None], [style_small],
                                     StyleConfig(start_size=0, iterations=4, chunk=4, style_weight=100.0,
                                                 content_mask=str(cmask), style_mask=(str(smask),)), network=vgg16)
    np.testing.assert_allclose(frames.images[0], masked, atol=1e-6)
    right = slice(content_small.shape[1] // 2 + 4, None)
    assert np.abs(masked[:, right] - content_small[:, right]).mean() < np.abs(plain[:, right] - content_small[:, right]).mean()
    for mask, needle in [(str(green), "match by colour"), (str(tmp_path / "none.png"), "does not exist")]:
        with pytest.raises(UserError, match=needle):
            jaxstyle.stylize_image(content_small, style_small, content_mask=str(cmask), style_mask=(mask,), **fast)
    with pytest.raises(UserError, match="is 10x10 px"):
        iio.imwrite(tmp_path / "small.png", imaging.to_uint8(_halves(10, 10)))
        jaxstyle.stylize_image(content_small, style_small, content_mask=str(tmp_path / "small.png"),
                               style_mask=(str(smask),), **fast)
