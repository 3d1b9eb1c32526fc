"""bench_layers: the layer shapes it times, and that both contenders compute the same gradient."""

import json

from benchmarks.bench_layers import layer_shapes, main


def test_layer_shapes_are_the_distinct_convolutions():
    shapes = layer_shapes("vgg16", 128)
    assert shapes[:3] == [("conv1_1", 128, 3, 64), ("conv1_2", 128, 64, 64), ("conv2_1", 64, 64, 128)]
    assert [s[0] for s in shapes] == ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2",
                                      "conv4_1", "conv4_2", "conv5_1"]


def test_a_tiny_run_times_every_layer_on_the_same_gradient(tmp_path, capsys):
    assert main(["--size", "16", "--rounds", "1", "--calls", "1", "--json", str(tmp_path / "l.json")]) == 0
    data = json.loads((tmp_path / "l.json").read_text())
    assert len(data["layers"]) == 9 and data["jax_seconds"] > 0 and data["torch_seconds"] > 0
    for row in data["layers"]:
        assert row["grad_rel_diff"] < 1e-5, row
    assert "JAX/torch" in capsys.readouterr().out
