"""The configuration: presets and resolution, the checks of every section, and the CLI flags derived
from it (one per field, parsed back into the same config)."""

import dataclasses
import math

import pytest

from jaxstyle.cli import build_parser
from jaxstyle.cli.flags import flag_name, from_flags
from jaxstyle.config import PRESETS, AudioConfig, StyleConfig, TileConfig, VideoConfig
from jaxstyle.errors import UserError
from jaxstyle.video import Processes, VideoOptions


def test_presets_fill_what_is_not_given():
    for name, preset in PRESETS.items():
        cfg = StyleConfig(preset=name).resolved()
        for key, value in preset.items():
            assert getattr(cfg, key) == value, (name, key)
    cfg = StyleConfig(preset="quality", iterations=7, start_size=0).resolved()
    assert cfg.iterations == 7 and cfg.start_size == 0 and cfg.coarse_iterations == 150


def test_derived_defaults():
    cfg = StyleConfig(iterations=9, coarse_iterations=5, optimizer="adam",
                      video=VideoConfig(long_term=(4, 1, 2, 2))).resolved()
    assert cfg.learning_rate == 0.02
    assert cfg.style_layer_weights == (0.2,) * 5
    assert cfg.tiles.coarse_iterations == 5          # as untiled coarse scales unless given
    assert cfg.video.iterations == 4                 # half of --iterations
    assert cfg.video.long_term == (1, 2, 4)          # sorted, unique
    cfg = StyleConfig(tiles=TileConfig(coarse_iterations=3), video=VideoConfig(iterations=0)).resolved()
    assert cfg.tiles.coarse_iterations == 3 and cfg.video.iterations == 0


def test_resolved_once():
    cfg = StyleConfig(size=64).resolved()
    assert cfg.is_resolved and cfg.resolved() is cfg
    changed = dataclasses.replace(cfg, iterations=3)
    assert not changed.is_resolved and changed.resolved().iterations == 3
    assert not StyleConfig().is_resolved
    assert dataclasses.asdict(cfg)["tiles"]["size"] == 1024  # sections nest in the metrics' config


@pytest.mark.parametrize("config,needle", [
    (StyleConfig(preset="slow"), "unknown preset"),
    (StyleConfig(optimizer="newton"), "unknown optimizer"),
    (StyleConfig(size=8), "--size"),
    (StyleConfig(scale_factor=1.0), "--scale-factor"),
    (StyleConfig(frames_per_device=0), "--frames-per-device"),
    (StyleConfig(style_layer_weights=(1.0,)), "style layer weights"),
    (StyleConfig(content_mask="m.png"), "go together"),
    (StyleConfig(tiles=TileConfig(size=32)), "--tile-size"),
    (StyleConfig(tiles=TileConfig(mode="stitched")), "--tile-mode"),
    (StyleConfig(tiles=TileConfig(mode="independent", size=128, overlap=64)), "--tile-overlap"),
    (StyleConfig(tiles=TileConfig(rounds=0)), "--tile-rounds"),
    (StyleConfig(tiles=TileConfig(coarse_iterations=-1)), "--tile-coarse-iterations"),
    (StyleConfig(video=VideoConfig(long_term=(2, 4))), "--long-term"),
    (StyleConfig(video=VideoConfig(passes=0)), "--passes"),
    (StyleConfig(video=VideoConfig(fade=-1)), "--fade"),
    (StyleConfig(video=VideoConfig(temporal_weight=-1.0)), "--temporal-weight"),
    (StyleConfig(audio=AudioConfig(batch=0)), "--audio-batch"),
    (StyleConfig(audio=AudioConfig(chunk_seconds=0.0)), "--audio-chunk-seconds"),
    (StyleConfig(audio=AudioConfig(spectrum_content=2.0)), "--audio-spectrum-content"),
])
def test_every_section_is_checked(config, needle):
    with pytest.raises(UserError, match=needle.replace("-", r"\-")):
        config.resolved()


def test_scales_keep_the_aspect_and_end_at_the_size():
    cfg = StyleConfig(preset="fast").resolved()
    assert cfg.scales(384, 512) == [(96, 128), (192, 256), (384, 512)]
    balanced = StyleConfig(preset="balanced").resolved().scales(512, 512)
    assert balanced[-1] == (512, 512) and balanced[0] == (128, 128)
    assert all(math.isclose(b[0] / a[0], math.sqrt(2), rel_tol=0.02) for a, b in zip(balanced[:-2], balanced[1:-1]))
    assert StyleConfig(start_size=0).resolved().scales(30, 40) == [(30, 40)]


def _all_fields(cls, prefix=""):
    for field in dataclasses.fields(cls):
        if "section" in field.metadata:
            yield from _all_fields(field.default_factory, field.metadata["prefix"])
        else:
            yield field, prefix


def test_one_flag_per_field():
    parser = build_parser()
    known = {opt for action in parser._actions for opt in action.option_strings}
    names = []
    for cls in (StyleConfig, VideoOptions, Processes):
        for field, prefix in _all_fields(cls):
            names.append(flag_name(field, prefix))
    assert len(names) == len(set(names))
    assert set(names) <= known
    # the flags of earlier releases are all still there
    for flag in ("--tile-size", "--tile-mode", "--tile-iterations", "--tile-coarse-iterations", "--tile-rounds",
                 "--temporal-weight", "--video-iterations", "--long-term", "--passes", "--overlap", "--sequential",
                 "--audio-iterations", "--audio-griffin-lim-iters", "--audio-stereo", "--photoreal", "--content-mask",
                 "--frames-dir", "--no-audio", "--quality", "--resume", "--coordinator", "--process-id"):
        assert flag in known, flag


def test_flags_parse_into_the_config():
    args = build_parser().parse_args([
        "c.jpg", "--style", "s.jpg", "--size", "300", "--style-layers", "relu1_1,relu2_1", "--style-weights", "0.7,0.3",
        "--tile-size", "512", "--tile-mode", "independent", "--video-iterations", "7", "--long-term", "1,3",
        "--sequential", "--audio-batch", "4", "--photoreal", "100", "--no-audio", "--start", "1.5",
        "--num-processes", "2"])
    cfg = from_flags(StyleConfig, args)
    assert cfg == StyleConfig(size=300, style_layers=("relu1_1", "relu2_1"), style_weights=(0.7, 0.3),
                              photoreal=100.0, tiles=TileConfig(size=512, mode="independent"),
                              video=VideoConfig(iterations=7, long_term=(1, 3), sequential=True),
                              audio=AudioConfig(batch=4))
    assert from_flags(VideoOptions, args) == VideoOptions(audio=False, start=1.5)
    assert from_flags(Processes, args) == Processes(num_processes=2)
    # nothing given: the dataclasses' defaults, and the preset fills the rest when resolved
    bare = build_parser().parse_args(["c.jpg"])
    assert from_flags(StyleConfig, bare) == StyleConfig()
    assert from_flags(StyleConfig, bare).resolved() == StyleConfig().resolved()
