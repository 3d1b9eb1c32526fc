"""Coupled tiles through the schedules: a windowed run is the untiled run, the API tiles large
frames, the iterations per tiled scale, and temporal targets at the windowed scale."""

import numpy as np
import pytest

import jaxstyle
from jaxstyle import imaging, schedules
from jaxstyle.config import StyleConfig, TileConfig
from jaxstyle.errors import UserError
from jaxstyle.io.images import read_image
from jaxstyle.objective import Temporal
from jaxstyle.schedules.multiscale import ScaleOverrides, run_scales

CONTENT = ("relu2_2",)
STYLE = ("relu1_1", "relu2_1", "relu3_1")


def _cfg(tile_size=1024, tile_iterations=4, tile_coarse_iterations=None, **kw):
    base = dict(start_size=0, iterations=4, coarse_iterations=4, chunk=2, content_layers=CONTENT, style_layers=STYLE,
                tiles=TileConfig(size=tile_size, iterations=tile_iterations, coarse_iterations=tile_coarse_iterations))
    base.update(kw)
    return StyleConfig(**base)


def test_windowed_run_is_the_untiled_run(vgg16, media):
    """The same L-BFGS run, one window at a time: the same image."""
    content = imaging.resize(read_image(media / "content" / "tubingen.jpg"), 72, 100)
    style = read_image(media / "styles" / "starry_night.jpg")
    cfg = _cfg(tile_size=0).resolved()
    frames = schedules.prepare(content[None], [style], cfg)
    whole = run_scales(frames, cfg, vgg16)
    windows = run_scales(frames, cfg, vgg16, overrides=ScaleOverrides(windows=(64, 16)))
    # one frame: its windows go frames_per_device at a time on each of the 8 (fake) devices
    assert windows.metrics["scales"][0]["windows"] == {"count": 8, "at_once": 8, "devices": 8}
    assert np.abs(whole.images - content).mean() > 0.01
    np.testing.assert_allclose(windows.images, whole.images, atol=2e-3)
    np.testing.assert_allclose(windows.metrics["final"]["total"], whole.metrics["final"]["total"], rtol=1e-3)


def test_coupled_tiles_through_the_api(vgg16, media):
    content = imaging.resize(read_image(media / "content" / "tubingen.jpg"), 72, 100)
    style = read_image(media / "styles" / "starry_night.jpg")
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
    content = imaging.resize(read_image(media / "content" / "tubingen.jpg"), 100, 140)
    style = read_image(media / "styles" / "starry_night.jpg")
    cfg = _cfg(start_size=40, scale_factor=2.0, coarse_iterations=2, tile_coarse_iterations=3, tile_iterations=1,
               tile_size=64).resolved()
    result = jaxstyle.stylize_frames(content[None], [style], cfg, network=vgg16)
    assert [s["size"] for s in result.metrics["tiled"]["scales"]] == [[57, 80], [100, 140]]
    assert [s["iterations"] for s in result.metrics["scales"]] == [2, 2, 3, 1]
    assert np.isfinite(result.images).all()


def test_coupled_tiles_with_temporal_targets(vgg16, media):
    """Video frames: init and temporal targets reach the windowed fine scale at the frame's size."""
    content = imaging.resize(read_image(media / "content" / "tubingen.jpg"), 72, 100)
    style = read_image(media / "styles" / "starry_night.jpg")
    frames = np.stack([content, content[:, ::-1]])
    grey = np.full_like(frames, 0.5)
    result = jaxstyle.stylize_frames(frames, [style], _cfg(tile_size=64), network=vgg16, init=grey,
                                     temporal=Temporal(grey, np.ones(frames.shape[:3], np.float32), 1e4))
    assert result.metrics["tiled"]["mode"] == "coupled"
    assert np.abs(result.images - 0.5).mean() < 0.1
    fine = result.metrics["scales"][-1]
    assert fine["size"] == [72, 100] and "windows" in fine
    assert min(fine["final"]["temporal"]) > 0  # the term is live at the windowed scale (masks of zeros give 0)
