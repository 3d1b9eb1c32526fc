"""The objective window by window (coupled tiles): the halo, the plan, and every loss part and the
gradient equal to the whole frame's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle import imaging
from jaxstyle.config import StyleConfig
from jaxstyle.io.images import read_image
from jaxstyle.nets.vgg import halo_px, min_window
from jaxstyle.objective import Regions, Windows, windowed

from ..helpers import one_frame_objective

CONTENT = ("relu2_2",)
STYLE = ("relu1_1", "relu2_1", "relu3_1")


def test_halo_is_the_receptive_field_reach():
    # reach past a position's own cell: the strides of the 3x3 convolutions before it
    assert halo_px("vgg16", ("relu1_1",)) == 16          # 1
    assert halo_px("vgg16", ("relu3_1",)) == 16          # 1+1+2+2+4 = 10
    assert halo_px("vgg16", ("relu4_2",)) == 48          # 2+4+12+8+8 = 34
    assert halo_px("vgg16", ("relu5_1",)) == 64          # 58
    assert halo_px("vgg19", ("relu5_1",)) == 80          # 70
    assert min_window("vgg16", ("relu5_1", "relu4_2")) == 144


def test_plan_partitions_the_frame():
    for height, width, window, halo in ((72, 100, 64, 16), (2160, 3840, 1024, 64), (100, 50, 200, 64)):
        cover = np.zeros((height, width), int)
        for (wh, ww), wins in windowed.plan(height, width, window, halo):
            assert wh <= window and ww <= window
            for ys, xs, r0, r1, c0, c1 in wins:
                assert ys % 16 == 0 and xs % 16 == 0
                # the block keeps the halo from every window edge that is not the frame's edge
                assert r0 >= (halo if ys > 0 else 0) and c0 >= (halo if xs > 0 else 0)
                assert wh - r1 >= (halo if ys + wh < height else 0) and ww - c1 >= (halo if xs + ww < width else 0)
                cover[ys + r0:ys + r1, xs + c0:xs + c1] += 1
        assert (cover == 1).all()


def _problem(vgg16, media, regions: bool):
    content = imaging.resize(read_image(media / "content" / "tubingen.jpg"), 72, 100)
    style = read_image(media / "styles" / "starry_night.jpg")
    x = np.clip(content + 0.1 * np.random.RandomState(0).randn(*content.shape), 0, 1).astype(np.float32)
    cfg = StyleConfig(content_layers=CONTENT, style_layers=STYLE).resolved()
    masks = None
    if regions:  # left / right of the content, top / bottom of the style
        left = np.zeros((1, 72, 100, 2), np.float32)
        left[..., :45, 0] = 1
        left[..., 45:, 1] = 1
        top = np.zeros(style.shape[:2] + (2,), np.float32)
        top[: style.shape[0] // 2, :, 0] = 1
        top[style.shape[0] // 2:, :, 1] = 1
        masks = Regions(left, [top], (1, 2))
    objective, targets, weights = one_frame_objective(cfg, vgg16, content, [style], 100, regions=masks)
    assert ("style" in objective.names) and (type(objective.terms[1]).__name__ ==
                                             ("RegionStyleTerm" if regions else "StyleTerm"))
    return content, x, objective, targets, weights


@pytest.mark.parametrize("regions", [False, True])
def test_windowed_loss_and_gradient_are_the_whole_frames(vgg16, media, regions):
    content, x, objective, targets, weights = _problem(vgg16, media, regions)
    halo = halo_px("vgg16", objective.layers)
    assert halo == 16

    def value_grad(windows):
        fn = jax.value_and_grad(lambda y: objective.total(vgg16, vgg16.variables, y, targets, weights, windows))
        return jax.jit(fn)(jnp.asarray(x))

    v0, g0 = value_grad(None)
    plan = windowed.plan(72, 100, 64, halo)
    assert windowed.count(plan) == 8  # one window shape: 2 x 4 windows of 56 x 52 px
    v1, g1 = value_grad(Windows(plan))
    np.testing.assert_allclose(float(v1), float(v0), rtol=1e-5)
    scale = float(jnp.abs(g0).max())
    assert float(jnp.abs(g1 - g0).max()) < 1e-4 * scale
    # every part, not only the total
    whole = objective.parts(vgg16, vgg16.variables, jnp.asarray(x), targets, weights)
    parts = objective.parts(vgg16, vgg16.variables, jnp.asarray(x), targets, weights, Windows(plan, batch=3))
    for name in objective.names:
        np.testing.assert_allclose(float(parts[name]), float(whole[name]), rtol=1e-4, atol=1e-7, err_msg=name)
    # the content features of the frame, computed window by window, are the frame's
    feats = windowed.content_features(vgg16, CONTENT, content[None], 64, halo)
    np.testing.assert_allclose(feats["relu2_2"][0], np.asarray(targets["content"]["relu2_2"]), atol=1e-5)
    # without the halo the windows see zero padding inside the frame: visibly off, so the test can tell
    v2, g2 = value_grad(Windows(windowed.plan(72, 100, 32, 0)))
    assert float(jnp.abs(g2 - g0).max()) > 1e-2 * scale


def test_weighted_terms_refuse_windows(vgg16, media):
    content = imaging.resize(read_image(media / "content" / "tubingen.jpg"), 72, 100)
    cfg = StyleConfig(content_layers=CONTENT, style_layers=STYLE).resolved()
    objective, targets, weights = one_frame_objective(cfg, vgg16, content, [content], 100,
                                                      loss_weights=np.ones((1, 72, 100), np.float32))
    with pytest.raises(ValueError, match="window by window"):
        objective.parts(vgg16, vgg16.variables, jnp.asarray(content), targets, weights,
                        Windows(windowed.plan(72, 100, 64, 16)))
