"""The loss terms one by one, and the objective that selects and sums them."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle.config import StyleConfig
from jaxstyle.objective import Objective, Regions, ScaleInputs, Temporal, TERMS
from jaxstyle.objective.content import ContentTerm
from jaxstyle.objective.distances import gram, rms
from jaxstyle.objective.photoreal import PhotorealTerm
from jaxstyle.objective.regions import RegionStyleTerm
from jaxstyle.objective.regularizers import RANGE_WEIGHT, RangeTerm, TVTerm
from jaxstyle.objective.style import StyleTerm
from jaxstyle.objective.temporal import TemporalTerm

from ..helpers import one_frame_objective

LAYERS = ("relu1_1", "relu2_1")


@pytest.fixture(scope="module")
def small(content_small, style_small):
    return content_small[:32, :40], style_small[:32, :32]


def _cfg(**kw):
    return StyleConfig(content_layers=("relu2_1",), style_layers=LAYERS, **kw).resolved()


def test_objective_selects_terms_for_the_inputs(vgg16, small):
    content, style = small
    plain, _, weights = one_frame_objective(_cfg(), vgg16, content, [style], 32)
    assert plain.names == ("content", "style", "tv", "temporal", "range")
    assert [type(t) for t in plain.terms] == [ContentTerm, StyleTerm, TVTerm, TemporalTerm, RangeTerm]
    assert {k: float(v) for k, v in weights.items()} == {"content": 1.0, "style": 10.0, "tv": 1.0, "temporal": 0.0,
                                                         "range": RANGE_WEIGHT}
    real, _, weights = one_frame_objective(_cfg(photoreal=500.0), vgg16, content, [style], 32)
    assert real.names[-1] == "photoreal" and float(weights["photoreal"]) == 500.0
    regions = Regions(np.ones((1, 32, 40, 1), np.float32), [np.ones((32, 32, 1), np.float32)], (0,))
    masked, _, _ = one_frame_objective(_cfg(), vgg16, content, [style], 32, regions=regions)
    assert isinstance(masked.terms[1], RegionStyleTerm) and masked.names[1] == "style"
    weighted, _, _ = one_frame_objective(_cfg(), vgg16, content, [style], 32,
                                         loss_weights=np.ones((1, 32, 40), np.float32))
    assert weighted.terms[0].weighted and weighted.terms[1].weighted and not weighted.terms[0].windowed
    temporal = Temporal(np.zeros((1, 32, 40, 3), np.float32), np.ones((1, 32, 40), np.float32), 50.0)
    _, _, weights = one_frame_objective(_cfg(), vgg16, content, [style], 32, temporal=temporal)
    assert float(weights["temporal"]) == 50.0
    assert len({t.name for t in TERMS if t is not RegionStyleTerm}) == len(TERMS) - 1  # names are keys


def test_total_is_the_weighted_sum_of_the_parts(vgg16, small):
    content, style = small
    objective, targets, weights = one_frame_objective(_cfg(photoreal=10.0), vgg16, content, [style], 32)
    x = jnp.asarray(np.clip(content + 0.2, 0, 1.2))
    parts = objective.parts(vgg16, vgg16.variables, x, targets, weights)
    total = sum(float(weights[name]) * float(parts[name]) for name in objective.names)
    np.testing.assert_allclose(float(parts["total"]), total, rtol=1e-5)
    assert set(parts) == {"total", *objective.names}


def test_content_term_is_the_normalized_feature_distance(vgg16, small):
    content, style = small
    objective, targets, weights = one_frame_objective(_cfg(), vgg16, content, [style], 32)
    term = objective.terms[0]
    feats = vgg16.features(content[None], ("relu2_1",))
    assert float(term.loss(content, {k: v[0] for k, v in feats.items()}, targets["content"])) == 0.0
    other = vgg16.features(style[:, :32][None, :, :32], ("relu2_1",))["relu2_1"][0]
    target = targets["content"]["relu2_1"][:, :16]  # same shape as the other image's features
    want = float(jnp.mean(((other[:, :16] - target) / rms(target)) ** 2))
    got = float(ContentTerm(("relu2_1",)).loss(None, {"relu2_1": other[:, :16]}, {"relu2_1": target}))
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_weighted_terms_with_full_weights_are_the_plain_ones(vgg16, small):
    """Loss weights of 1 everywhere and the frame's own normalizers: the plain content and style."""
    content, style = small
    plain, pt, _ = one_frame_objective(_cfg(), vgg16, content, [style], 32)
    x = jnp.asarray(np.clip(content[::-1] * 0.8 + 0.1, 0, 1))
    feats = {k: v[0] for k, v in vgg16.features(x[None], plain.layers).items()}
    norms = {"content": {"relu2_1": np.asarray([float(rms(pt["content"]["relu2_1"]))])},
             "style": {k: np.asarray([float(rms(pt["style"][k]))]) for k in LAYERS}}
    weighted, wt, _ = one_frame_objective(_cfg(), vgg16, content, [style], 32,
                                          loss_weights=np.ones((1, 32, 40), np.float32), loss_norms=norms)
    for i in (0, 1):
        np.testing.assert_allclose(float(weighted.terms[i].loss(x, feats, wt[weighted.names[i]])),
                                   float(plain.terms[i].loss(x, feats, pt[plain.names[i]])), rtol=1e-5)


def test_style_term_is_zero_at_the_style_and_regions_of_one_region_are_plain(vgg16, small):
    content, style = small
    objective, targets, _ = one_frame_objective(_cfg(), vgg16, style, [style], 32)
    feats = {k: v[0] for k, v in vgg16.features(style[None], LAYERS).items()}
    assert float(objective.terms[1].loss(style, feats, targets["style"])) < 1e-10
    np.testing.assert_allclose(np.asarray(targets["style"]["relu1_1"]), np.asarray(gram(feats["relu1_1"])),
                               rtol=1e-4, atol=1e-6)
    one = Regions(np.ones((1, 32, 32, 1), np.float32), [np.ones((32, 32, 1), np.float32)], (0,))
    regional, rt, _ = one_frame_objective(_cfg(), vgg16, content[:, :32], [style], 32, regions=one)
    plain, pt, _ = one_frame_objective(_cfg(), vgg16, content[:, :32], [style], 32)
    x = content[:, :32]
    feats = {k: v[0] for k, v in vgg16.features(x[None], LAYERS).items()}
    np.testing.assert_allclose(float(regional.terms[1].loss(x, feats, rt["style"])),
                               float(plain.terms[1].loss(x, feats, pt["style"])), rtol=1e-4)


def test_pixel_terms():
    flat = jnp.full((8, 8, 3), 0.3)
    assert float(TVTerm().loss(flat, None, None)) == 0.0
    assert float(RangeTerm().loss(flat, None, None)) == 0.0
    assert float(RangeTerm().loss(flat + 1.0, None, None)) == pytest.approx(0.3 ** 2, rel=1e-5)
    target = {"target": jnp.zeros((8, 8, 3)), "mask": jnp.zeros((8, 8))}
    assert float(TemporalTerm().loss(flat, None, target)) == 0.0          # masked out
    target["mask"] = jnp.ones((8, 8))
    assert float(TemporalTerm().loss(flat, None, target)) == pytest.approx(0.09, rel=1e-5)


def test_temporal_targets_without_inputs_are_empty(vgg16, small):
    content, style = small
    scale = ScaleInputs(vgg16, content[None], content[None], [style], np.ones(1), style_side=32)
    target = TemporalTerm().targets(scale, slice(0, 1))
    assert target["target"].shape == (1, 32, 40, 3) and float(jnp.abs(target["mask"]).max()) == 0.0


def test_photoreal_term_is_per_pixel_matting_energy(vgg16, small):
    content, style = small
    scale = ScaleInputs(vgg16, content[None], content[None], [style], np.ones(1), style_side=32)
    stats = PhotorealTerm().targets(scale, slice(0, 1))
    one = type(stats)(*(a[0] for a in stats))
    affine = jnp.asarray(content * 0.5 + 0.2)  # a locally affine function of the guide costs ~nothing
    noisy = jnp.asarray(np.random.default_rng(0).random(content.shape), jnp.float32)
    assert float(PhotorealTerm().loss(affine, None, one)) < 1e-3 * float(PhotorealTerm().loss(noisy, None, one))
    assert Objective.select(_cfg(), scale).names.count("photoreal") == 0
