"""Coupled tiles: the whole frame's losses and gradient evaluated window by window are the untiled ones."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle
from jaxstyle import imaging, windowed
from jaxstyle.config import StyleConfig
from jaxstyle.errors import UserError
from jaxstyle.masks import resize_masks
from jaxstyle.optimize import FrameTargets, LossSpec, Weights, loss_parts
from jaxstyle.stylize import content_features, layer_shapes, style_grams

CONTENT = ("relu2_2",)
STYLE = ("relu1_1", "relu2_1", "relu3_1")


def test_halo_is_the_receptive_field_reach():
    # reach past a position's own cell: the strides of the 3x3 convolutions before it
    assert windowed.halo_px("vgg16", ("relu1_1",)) == 16          # 1
    assert windowed.halo_px("vgg16", ("relu3_1",)) == 16          # 1+1+2+2+4 = 10
    assert windowed.halo_px("vgg16", ("relu4_2",)) == 48          # 2+4+12+8+8 = 34
    assert windowed.halo_px("vgg16", ("relu5_1",)) == 64          # 58
    assert windowed.halo_px("vgg19", ("relu5_1",)) == 80          # 70
    assert windowed.min_window("vgg16", ("relu5_1", "relu4_2")) == 144


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
    content = imaging.resize(imaging.read_image(media / "content" / "tubingen.jpg"), 72, 100)
    style = imaging.read_image(media / "styles" / "starry_night.jpg")
    x = np.clip(content + 0.1 * np.random.RandomState(0).randn(*content.shape), 0, 1).astype(np.float32)
    spec = LossSpec(CONTENT, STYLE, (1 / 3,) * 3, "mse", regions=2 if regions else 0)
    ct = {k: v[0] for k, v in content_features(vgg16, spec, content[None]).items()}
    targets = FrameTargets(content=ct, style=style_grams(vgg16, spec, [style], [1.0], 100),
                           temporal=jnp.zeros((72, 100, 3)), temporal_mask=jnp.zeros((72, 100)))
    if regions:
        left = np.zeros((72, 100, 2), np.float32)
        left[:, :45, 0] = 1
        left[:, 45:, 1] = 1
        shapes = layer_shapes(vgg16, STYLE, 72, 100)
        g = targets.style
        targets = targets._replace(style={k: jnp.stack([g[k], 0.5 * g[k]]) for k in STYLE},
                                   style_masks={k: jnp.asarray(resize_masks(left, *shapes[k])) for k in STYLE},
                                   region_weights=jnp.asarray([0.45, 0.55], jnp.float32))
    return content, x, spec, targets


@pytest.mark.parametrize("regions", [False, True])
def test_windowed_loss_and_gradient_are_the_whole_frames(vgg16, media, regions):
    content, x, spec, targets = _problem(vgg16, media, regions)
    weights = Weights(*(jnp.float32(v) for v in (1.0, 10.0, 1.0, 0.0, 0.0)))
    halo = windowed.halo_px("vgg16", spec.layers)
    assert halo == 16

    def value_grad(s):
        fn = jax.value_and_grad(lambda y: loss_parts(vgg16, s, vgg16.variables, y, targets, weights)["total"])
        return jax.jit(fn)(jnp.asarray(x))

    v0, g0 = value_grad(spec)
    plan = windowed.plan(72, 100, 64, halo)
    assert windowed.count(plan) == 8  # one window shape: 2 x 4 windows of 56 x 52 px
    v1, g1 = value_grad(dataclasses.replace(spec, windows=plan))
    np.testing.assert_allclose(float(v1), float(v0), rtol=1e-5)
    scale = float(jnp.abs(g0).max())
    assert float(jnp.abs(g1 - g0).max()) < 1e-4 * scale
    # the content features of the frame, computed window by window, are the frame's
    feats = windowed.content_features(vgg16, CONTENT, content[None], 64, halo)
    np.testing.assert_allclose(feats["relu2_2"][0], np.asarray(targets.content["relu2_2"]), atol=1e-5)
    # without the halo the windows see zero padding inside the frame: visibly off, so the test can tell
    v2, g2 = value_grad(dataclasses.replace(spec, windows=windowed.plan(72, 100, 32, 0)))
    assert float(jnp.abs(g2 - g0).max()) > 1e-2 * scale


def _cfg(**kw):
    base = dict(start_size=0, iterations=4, coarse_iterations=4, tile_iterations=4, chunk=2, content_layers=CONTENT,
                style_layers=STYLE)
    base.update(kw)
    return StyleConfig(**base)


def test_windowed_run_is_the_untiled_run(vgg16, media):
    """The same L-BFGS run, one window at a time: the same image."""
    content = imaging.resize(imaging.read_image(media / "content" / "tubingen.jpg"), 72, 100)
    style = imaging.read_image(media / "styles" / "starry_night.jpg")
    cfg = _cfg(tile_size=0)
    whole = jaxstyle.stylize_frames(content[None], [style], cfg, network=vgg16)
    windows = jaxstyle.stylize_frames(content[None], [style], cfg, network=vgg16, windows=(64, 16))
    # one frame: its windows go frames_per_device at a time on each of the 8 (fake) devices
    assert windows.metrics["scales"][0]["windows"] == {"count": 8, "at_once": 8, "devices": 8}
    assert np.abs(whole.images - content).mean() > 0.01
    np.testing.assert_allclose(windows.images, whole.images, atol=2e-3)
    np.testing.assert_allclose(windows.metrics["final"]["total"], whole.metrics["final"]["total"], rtol=1e-3)


def test_coupled_tiles_through_the_api(vgg16, media):
    content = imaging.resize(imaging.read_image(media / "content" / "tubingen.jpg"), 72, 100)
    style = imaging.read_image(media / "styles" / "starry_night.jpg")
    frames = np.stack([content, content[:, ::-1]])
    result = jaxstyle.stylize_frames(frames, [style], _cfg(tile_size=64), network=vgg16)
    tiled = result.metrics["tiled"]
    assert tiled["mode"] == "coupled" and tiled["halo"] == 16
    # two frames: the frames are sharded over devices, each frame's windows go one at a time
    assert tiled["scales"] == [{"size": [72, 100], "window": 64, "count": 8, "at_once": 1, "devices": 1}]
    assert result.images.shape == frames.shape and np.isfinite(result.images).all()
    assert 0.01 < np.abs(result.images - frames).mean() < 0.4
    # too small a tile for the layers' receptive field: one clear error
    with pytest.raises(UserError, match="too small for coupled tiles"):
        jaxstyle.stylize_frames(frames, [style], _cfg(tile_size=64, style_layers=("relu5_1",)), network=vgg16)


def test_coupled_tiles_iterations_per_scale(vgg16, media):
    """Two tiled scales: the one below the last runs --tile-coarse-iterations, the last --tile-iterations."""
    content = imaging.resize(imaging.read_image(media / "content" / "tubingen.jpg"), 100, 140)
    style = imaging.read_image(media / "styles" / "starry_night.jpg")
    cfg = _cfg(start_size=40, scale_factor=2.0, coarse_iterations=2, tile_coarse_iterations=3, tile_iterations=1,
               tile_size=64).resolved()
    result = jaxstyle.stylize_frames(content[None], [style], cfg, network=vgg16)
    assert [s["size"] for s in result.metrics["tiled"]["scales"]] == [[57, 80], [100, 140]]
    assert [s["iterations"] for s in result.metrics["scales"]] == [2, 2, 3, 1]
    assert np.isfinite(result.images).all()


def test_coupled_tiles_with_temporal_targets(vgg16, media):
    """Video frames: init and temporal targets reach the windowed fine scale at the frame's size."""
    from jaxstyle.stylize import Temporal

    content = imaging.resize(imaging.read_image(media / "content" / "tubingen.jpg"), 72, 100)
    style = imaging.read_image(media / "styles" / "starry_night.jpg")
    frames = np.stack([content, content[:, ::-1]])
    grey = np.full_like(frames, 0.5)
    result = jaxstyle.stylize_frames(frames, [style], _cfg(tile_size=64), network=vgg16, init=grey,
                                     temporal=Temporal(grey, np.ones(frames.shape[:3], np.float32), 1e4))
    assert result.metrics["tiled"]["mode"] == "coupled"
    assert np.abs(result.images - 0.5).mean() < 0.1
    fine = result.metrics["scales"][-1]
    assert fine["size"] == [72, 100] and "windows" in fine
    assert min(fine["final"]["temporal"]) > 0  # the term is live at the windowed scale (masks of zeros give 0)
