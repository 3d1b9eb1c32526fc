"""--carry: a network's video frames carried along the content's optical flow. Off, it changes
nothing and measures e_stab as the engine does; on, a steady scene's flicker is damped by the
share carried, a scene cut starts afresh, and moving content stays the network's (no drift)."""

from __future__ import annotations

import numpy as np
import pytest

from jaxstyle import imaging
from jaxstyle.errors import UserError
from jaxstyle.feedforward.carry import FlowCarry
from jaxstyle.io.images import read_image
from jaxstyle.video import flow as flowlib

from ..helpers import MEDIA

H, W = 48, 64


def _photo(name: str = "tubingen.jpg") -> np.ndarray:
    return imaging.resize(read_image(MEDIA / "content" / name), 2 * H, 2 * W)


def _panning(frames: int, step: int = 2) -> np.ndarray:
    """A camera moving right by ``step`` px a frame over a photo."""
    photo = _photo()
    return np.stack([photo[20:20 + H, 10 + t * step:10 + t * step + W] for t in range(frames)])


def _flickering(contents: np.ndarray, amount: float = 0.08, seed: int = 0) -> np.ndarray:
    """A stand-in network: the content recoloured, with its own noise on every frame (flicker)."""
    rng = np.random.default_rng(seed)
    styled = 0.2 + 0.6 * contents[..., ::-1]
    return np.clip(styled + rng.normal(0, amount, contents.shape), 0, 1).astype(np.float32)


def _carried(carry: float, contents: np.ndarray, network_out: np.ndarray):
    flow_carry = FlowCarry(carry)
    return np.stack([flow_carry(c, n) for c, n in zip(contents, network_out)]), flow_carry.metrics()


def test_off_it_changes_nothing_and_measures_e_stab_as_the_engine_does():
    contents = _panning(4)
    network_out = _flickering(contents)
    out, metrics = _carried(0.0, contents, network_out)
    np.testing.assert_array_equal(out, network_out)
    forward, backward = flowlib.compute_flows(contents)
    masks = flowlib.consistency_mask(forward, backward)
    expected = float(flowlib.stability_error(network_out, backward, masks))
    assert metrics["stability_error"] == pytest.approx(expected, rel=1e-5)
    assert len(metrics["pair_temporal_errors"]) == 3 and metrics["scene_cuts"] == []


def test_a_still_scene_takes_the_share_of_the_previous_output():
    contents = np.repeat(_photo()[None, :H, :W], 3, axis=0)
    network_out = _flickering(contents)
    out, metrics = _carried(0.5, contents, network_out)
    np.testing.assert_array_equal(out[0], network_out[0])
    np.testing.assert_allclose(out[1], 0.5 * (network_out[0] + network_out[1]), atol=2e-3)
    np.testing.assert_allclose(out[2], 0.5 * out[1] + 0.5 * network_out[2], atol=2e-3)
    _, alone = _carried(0.0, contents, network_out)
    assert metrics["stability_error"] < 0.6 * alone["stability_error"]


def test_moving_content_is_steadier_and_stays_the_networks():
    contents = _panning(8)
    network_out = _flickering(contents)
    _, alone = _carried(0.0, contents, network_out)
    out, carried = _carried(0.5, contents, network_out)
    assert carried["stability_error"] < 0.75 * alone["stability_error"]
    # what it carries moves with the content: the frames stay near the network's, not smeared toward the start
    clean = 0.2 + 0.6 * contents[..., ::-1]
    assert np.abs(out[-1] - clean).mean() < np.abs(network_out[-1] - clean).mean()


def test_a_scene_cut_starts_afresh():
    first, second = _photo()[:H, :W], imaging.resize(read_image(MEDIA / "styles" / "the_scream.jpg"), H, W)
    contents = np.stack([first, first, second])
    network_out = _flickering(contents)
    out, metrics = _carried(0.5, contents, network_out)
    assert metrics["scene_cuts"] == [2]
    np.testing.assert_array_equal(out[2], network_out[2])
    assert len(metrics["pair_temporal_errors"]) == 1


def test_without_scene_cuts_it_carries_across_one():
    first, second = _photo()[:H, :W], imaging.resize(read_image(MEDIA / "styles" / "the_scream.jpg"), H, W)
    contents = np.stack([first, first, second])
    network_out = _flickering(contents)
    flow_carry = FlowCarry(0.5, scene_cuts=False)
    out = np.stack([flow_carry(c, n) for c, n in zip(contents, network_out)])
    assert flow_carry.metrics()["scene_cuts"] == [] and len(flow_carry.metrics()["pair_temporal_errors"]) == 2
    assert not np.array_equal(out[2], network_out[2])


@pytest.mark.parametrize("carry", [-0.1, 1.0, 2.0])
def test_a_share_outside_zero_to_one_is_refused(carry):
    with pytest.raises(UserError, match="carry must be a share from 0"):
        FlowCarry(carry)
