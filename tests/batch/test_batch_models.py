"""Batch jobs over trained feed-forward networks: items with a "model" (or the job's --model) are
stylized by it, equal to the single command's output; what does not fit the network is a failed
item with its reason, and the rest go on."""

import json

import jax
import numpy as np
import pytest

from jaxstyle import imaging
from jaxstyle.feedforward import Model, save_model
from jaxstyle.io.images import read_image, write_image
from jaxstyle.io.video import iter_frames, probe
from jaxstyle.nets.transformer import Stylizer, StylizerSpec

from ..helpers import MEDIA, SHALLOW, run_main
from ..video.test_video import make_clip


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A two-style network with random parameters (so its output is not its input); nothing here
    needs a trained one."""
    spec = StylizerSpec("styles", 2, width=4, blocks=1)
    params = Stylizer(spec).init_params(jax.random.PRNGKey(0))
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(0)
    noisy = [np.asarray(a) + rng.normal(0, 0.1, np.shape(a)).astype(np.float32) for a in leaves]
    folder = tmp_path_factory.mktemp("models") / "wave"
    save_model(folder, Model(spec, jax.tree.unflatten(tree, noisy), {"kind": "styles", "styles": ["a", "b"]}))
    return folder


@pytest.fixture()
def inputs(tmp_path):
    photo = read_image(MEDIA / "content" / "tubingen.jpg")
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "a.png", imaging.resize(photo, 30, 40))
    write_image(folder / "b.png", imaging.resize(photo, 40, 30))
    make_clip(folder / "c.mp4", "40x30", frames=4)
    return folder


def test_items_with_a_model_match_single_runs_and_misfits_fail_alone(capsys, tmp_path, inputs, model_dir):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(json.dumps(line) for line in [
        {"content": "in/a.png", "model": str(model_dir)},
        {"content": "in/c.mp4", "model": str(model_dir), "options": "--style-mix 1,3 --frames-per-device 2"},
        {"content": "in/b.png", "model": str(model_dir), "style": str(MEDIA / "styles" / "starry_night.jpg")},
        {"content": "in/b.png", "model": str(model_dir), "options": "--style-mix 1,2,3"},
        {"content": "in/b.png"},
    ]))
    out = tmp_path / "out"
    code, err = run_main(["batch", jobs, "--out-dir", out, "--size", "40", "--quiet"], capsys)
    assert code == 2 and "3 of 5 item(s) failed" in err.strip().splitlines()[-1], err
    records = {r["item"]: r for r in map(json.loads, (out / "index.jsonl").read_text().splitlines())}
    assert [records[i]["status"] for i in range(5)] == ["ok", "ok", "failed", "failed", "failed"]
    assert "--style-mix instead of --style" in records[2]["error"] and "2 style(s)" in records[3]["error"]
    assert "\"style\"" in records[4]["error"]
    assert records[0]["model"] == str(model_dir) and records[0]["output"] == str(out / "a_wave.png")
    # the same as the single command
    code, err = run_main([inputs / "a.png", "--model", model_dir, "--size", "40", "-o", tmp_path / "a.png"], capsys)
    assert code == 0, err
    batch_image, single_image = read_image(out / "a_wave.png"), read_image(tmp_path / "a.png")
    assert batch_image.shape == (30, 40, 3) and np.array_equal(batch_image, single_image)
    assert not np.allclose(batch_image, read_image(inputs / "a.png"), atol=0.02)  # the network did something
    code, err = run_main([inputs / "c.mp4", "--model", model_dir, "--size", "40", "--style-mix", "1,3", "-q",
                          "--frames-per-device", "2", "-o", tmp_path / "c.mp4"], capsys)
    assert code == 0, err
    assert probe(out / "c_wave.mp4").frame_count == 4
    for x, y in zip(iter_frames(out / "c_wave.mp4"), iter_frames(tmp_path / "c.mp4")):
        assert np.array_equal(x, y)
    # rerun: the finished items are skipped, the failed ones fail again
    code, err = run_main(["batch", jobs, "--out-dir", out, "--size", "40", "--quiet"], capsys)
    assert code == 2 and "2 item(s) already done" in err, err


def test_the_jobs_optimizer_flags_serve_its_items_with_init_network(capsys, tmp_path, inputs, model_dir, vgg16):
    # The job's --model with --iterations: refused when no item optimizes (the flag would do
    # nothing), taken when an item's own options say --init network (the optimizer runs for it).
    out = tmp_path / "out"
    flags = ["--model", model_dir, "--size", "32", "--iterations", "1", "--coarse-iterations", "1", "--start-size", "0",
             "--quiet", *SHALLOW]
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"content": "in/a.png"}))
    code, err = run_main(["batch", jobs, "--out-dir", out, *flags], capsys)
    assert code == 2 and "--iterations, --coarse-iterations, --start-size, --content-layers, --style-layers apply to "\
        "the optimizer" in err and not out.exists(), err
    jobs.write_text("\n".join(json.dumps(line) for line in [
        {"content": "in/a.png"},
        {"content": "in/b.png", "style": str(MEDIA / "styles" / "starry_night.jpg"), "options": "--init network"}]))
    code, err = run_main(["batch", jobs, "--out-dir", out, *flags], capsys)
    assert code == 0, err
    records = [json.loads(r) for r in (out / "index.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert records[1]["metrics"]["iterations"] == 1 and read_image(records[1]["output"]).shape == (32, 24, 3)


def test_a_folder_with_the_jobs_model_needs_no_styles(capsys, tmp_path, inputs, model_dir):
    out = tmp_path / "out"
    code, err = run_main(["batch", "--contents", inputs, "--model", model_dir, "--out-dir", out, "--size", "32",
                          "--quiet"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".png", ".mp4")) == \
        ["a_wave.png", "b_wave.png", "c_wave.mp4"]
    assert read_image(out / "b_wave.png").shape == (32, 24, 3)
    records = [json.loads(r) for r in (out / "index.jsonl").read_text().splitlines()]
    assert [r["model"] for r in records] == [str(model_dir)] * 3  # the job's --model ran them
    code, err = run_main(["batch", "--contents", inputs, "--model", tmp_path / "none", "--out-dir", tmp_path / "o2"],
                         capsys)
    assert code == 2 and "does not exist" in err and not (tmp_path / "o2").exists()


def test_carry_is_for_the_items_a_network_stylizes(capsys, tmp_path, inputs, model_dir):
    out = tmp_path / "out"
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"content": "in/c.mp4", "style": str(MEDIA / "styles" / "starry_night.jpg")}))
    code, err = run_main(["batch", jobs, "--out-dir", out, "--carry", "0.5", "--quiet"], capsys)
    assert code == 2 and "no video of the job is stylized by a network" in err and not out.exists(), err
    jobs.write_text("\n".join(json.dumps(line) for line in [  # a network's image and an optimizer's video: none
        {"content": "in/a.png", "model": str(model_dir)},
        {"content": "in/c.mp4", "style": str(MEDIA / "styles" / "starry_night.jpg")}]))
    code, err = run_main(["batch", jobs, "--out-dir", out, "--carry", "0.5", "--quiet"], capsys)
    assert code == 2 and "no video of the job is stylized by a network" in err and not out.exists(), err
    # the job's --carry is for the items that take it: the network's video; the others run without it
    jobs.write_text("\n".join(json.dumps(line) for line in [
        {"content": "in/c.mp4", "model": str(model_dir), "options": "--frames-per-device 2"},
        {"content": "in/a.png", "model": str(model_dir)},
        {"content": "in/c.mp4", "style": str(MEDIA / "styles" / "starry_night.jpg"),
         "options": "--iterations 1 --coarse-iterations 1 --video-iterations 1 --start-size 0 --network vgg16"}]))
    code, err = run_main(["batch", jobs, "--out-dir", tmp_path / "mixed", "--carry", "0.5", "--size", "32",
                          "--quiet"], capsys)
    assert code == 0, err
    records = [json.loads(r) for r in (tmp_path / "mixed" / "index.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "ok", "ok"] and records[0]["metrics"]["carry"] == 0.5
    assert "carry" not in records[2]["metrics"]
    jobs.write_text("\n".join(json.dumps(line) for line in [
        {"content": "in/c.mp4", "model": str(model_dir), "options": "--carry 0.5 --frames-per-device 2"},
        {"content": "in/c.mp4", "style": str(MEDIA / "styles" / "starry_night.jpg"), "options": "--carry 0.5"}]))
    code, err = run_main(["batch", jobs, "--out-dir", out, "--size", "40", "--quiet"], capsys)
    assert code == 2 and "1 of 2 item(s) failed" in err, err
    records = [json.loads(r) for r in (out / "index.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "failed"]
    assert records[0]["metrics"]["carry"] == 0.5 and records[0]["metrics"]["stability_error"] > 0
    assert "the optimizer's frames start from the warped previous output" in records[1]["error"]
