"""Tiled stylization of frames larger than --tile-size: schedule, compiles, targets, temporal inputs."""

import jax.numpy as jnp
import numpy as np

import jaxstyle
from jaxstyle import imaging
from jaxstyle.api import image_losses
from jaxstyle.config import StyleConfig, TileConfig
from jaxstyle.io.images import read_image
from jaxstyle.nets.taps import features_fn
from jaxstyle.objective import Temporal
from jaxstyle.objective.distances import rms
from jaxstyle.objective.style import blended_grams
from jaxstyle.schedules.independent import frame_norms, margin_weights, offset_targets
from jaxstyle.schedules.tile_geometry import plan_tiles_minimal
from jaxstyle.schedules.tile_plan import tile_iterations, tiled_scales

from ..helpers import SHALLOW_LAYERS

ONE = np.ones(1)  # the blend of one style image


def _cfg(tile_iterations=4, tile_coarse_iterations=None, **kw):
    # (shallow layers: the tiling does not depend on them, and the compiles are several times cheaper)
    base = dict(start_size=32, scale_factor=2.0, coarse_iterations=4, iterations=4, chunk=2, **SHALLOW_LAYERS,
                tiles=TileConfig(size=64, overlap=16, iterations=tile_iterations, coarse_iterations=tile_coarse_iterations,
                                 rounds=2, mode="independent"))
    base.update(kw)
    return StyleConfig(**base).resolved()


def test_schedule_sizes():
    cfg = _cfg()
    coarse, fine = tiled_scales(cfg, 120, 200)
    assert coarse == (38, 64)
    assert fine == [(77, 128), (120, 200)]
    assert all(max(hw) > 64 for hw in fine)
    # the tiled scales below the last run as many iterations as untiled coarse scales, unless told
    assert [tile_iterations(cfg, i, len(fine)) for i in range(len(fine))] == [4, 4]
    cfg = _cfg(coarse_iterations=7, tile_iterations=3)
    assert [tile_iterations(cfg, i, len(fine)) for i in range(len(fine))] == [7, 3]
    cfg = _cfg(coarse_iterations=7, tile_iterations=3, tile_coarse_iterations=5)
    assert [tile_iterations(cfg, i, len(fine)) for i in range(len(fine))] == [5, 3]


def test_tiled_frame_compiles_once_per_scale(vgg16, media):
    content = imaging.resize(read_image(media / "content" / "tubingen.jpg"), 72, 100)
    style = read_image(media / "styles" / "starry_night.jpg")
    result = jaxstyle.stylize_frames(content[None], [style], _cfg(), network=vgg16)
    out = result.images
    assert out.shape == (1, 72, 100, 3) and np.isfinite(out).all()
    tiled = result.metrics["tiled"]
    assert tiled["coarse_size"] == [46, 64]
    assert [s["size"] for s in tiled["scales"]] == [[72, 100]]
    rounds = [s for s in result.metrics["scales"] if "round" in s]
    assert [s["round"] for s in rounds] == [0, 1]
    assert rounds[0]["tiles"] == rounds[1]["tiles"] > 1
    # the grid shifts between rounds, but the tile count (hence the compiled shape) does not
    assert rounds[1]["compile_seconds"] == 0.0
    # the picture is stylized but keeps the content; no pixel is left uncovered (black)
    assert 0.02 < np.abs(out[0] - content).mean() < 0.4
    assert out.reshape(-1, 3).max(1).min() > 0.0
    losses = image_losses(out[0], content, [style], _cfg(), network=vgg16)
    start = image_losses(content, content, [style], _cfg(), network=vgg16)
    assert losses["style"] < 0.5 * start["style"], (losses, start)


def test_offset_targets_average_to_the_style_gram(vgg16, style_small, media):
    content = imaging.resize(read_image(media / "content" / "tubingen.jpg"), 64, 64)
    tiles = np.stack([content[:32, :32], content[32:, :32], content[:32, 32:], content[32:, 32:]])
    cfg = _cfg(style_layers=("relu1_1", "relu2_1"))
    targets = offset_targets(vgg16, cfg, [style_small], ONE, np.concatenate([tiles, tiles[::-1]]), 2, 4, 64)
    a = blended_grams(vgg16, cfg.style_layers, [style_small], ONE, 64)
    for k in cfg.style_layers:
        t = targets[k].reshape(2, 4, *targets[k].shape[1:])
        np.testing.assert_allclose(t.mean(1), np.broadcast_to(np.asarray(a[k]), t.mean(1).shape), rtol=1e-4, atol=1e-5)
        # tiles differ from each other by their own Gram differences
        assert np.abs(t[0, 0] - t[0, 1]).max() > 1e-3


def test_frame_norms_are_the_whole_frames(vgg16, style_small, media):
    """Tiles are normalized by their frame's content-feature rms and the style Gram's rms."""
    content = imaging.resize(read_image(media / "content" / "tubingen.jpg"), 48, 64)
    frames = np.stack([content, content[::-1] * 0.5])
    cfg = _cfg(style_layers=("relu1_1", "relu2_1"))
    norms = frame_norms(vgg16, cfg, [style_small], ONE, frames, 3, 64)
    feats = features_fn(vgg16, cfg.content_layers)(vgg16.variables, jnp.asarray(frames))
    for k in cfg.content_layers:
        want = [float(rms(feats[k][i])) for i in range(2)]
        np.testing.assert_allclose(norms["content"][k], np.repeat(want, 3), rtol=1e-4)
    a = blended_grams(vgg16, cfg.style_layers, [style_small], ONE, 64)
    for k in cfg.style_layers:
        np.testing.assert_allclose(norms["style"][k], np.full(6, float(rms(a[k]))), rtol=1e-4)


def test_tiled_with_temporal_and_init(vgg16, media):
    """Video frames go through the same path: init and temporal targets are cut into tiles."""
    content = imaging.resize(read_image(media / "content" / "tubingen.jpg"), 48, 80)
    style = read_image(media / "styles" / "starry_night.jpg")
    frames = np.stack([content, content[:, ::-1]])
    previous = np.full_like(frames, 0.5)
    masks = np.ones(frames.shape[:3], np.float32)
    strong = jaxstyle.stylize_frames(frames, [style], _cfg(), network=vgg16, init=previous,
                                     temporal=Temporal(previous, masks, 1e4)).images
    assert strong.shape == frames.shape
    # a heavy temporal weight holds the frames at the (grey) temporal target
    assert np.abs(strong - 0.5).mean() < 0.1


def test_margin_weights_fade_inside_the_canvas_only():
    homs = plan_tiles_minimal(64, 160, 64, 16)          # one row of 3 tiles: starts 0, 48, 96
    w = margin_weights(homs, (64, 64), (64, 160))
    assert w.shape == (3, 64, 64)
    np.testing.assert_allclose(w[:, :, 32], 1.0)         # tile centres
    np.testing.assert_allclose(w[0, :, 0], 1.0)          # canvas edges keep full weight
    np.testing.assert_allclose(w[2, :, -1], 1.0)
    assert w[0, 0, -1] < 0.1 and w[1, 0, 0] < 0.1 and w[1, 0, -1] < 0.1   # inner edges fade out
    np.testing.assert_allclose(w[:, 0, :], w[:, -1, :])  # one row: no vertical fading
    # in the overlap of tiles 0 and 1 (canvas columns 48..63) one weight falls as the other rises
    a, b = w[0, 0, 48:], w[1, 0, :16]
    assert np.all(np.diff(a) <= 0) and np.all(np.diff(b) >= 0) and (a + b).min() >= 1.0
