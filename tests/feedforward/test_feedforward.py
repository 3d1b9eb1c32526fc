"""Feed-forward networks: the architecture keeps sizes, a training step lowers the engine's loss,
data parallelism over 8 fake devices or 2 processes equals one device, a SIGKILL then --resume
reaches the same parameters, models round-trip and are checked, and the CLI paths (train, --model
on images and videos, --init network) work or fail with one line."""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from jaxstyle import imaging
from jaxstyle.api import stylize_with_model
from jaxstyle.config import StyleConfig, TrainConfig
from jaxstyle.errors import UserError
from jaxstyle.feedforward import Model, TrainingData, TrainJob, load_model, save_model, store_input, train_network
from jaxstyle.feedforward.carry import FlowCarry
from jaxstyle.feedforward.loss import StyleBank, loss_parts, training_objective
from jaxstyle.io.audio import read_audio
from jaxstyle.io.images import read_image, write_image
from jaxstyle.io.video import iter_frames, probe
from jaxstyle.cli import main
from jaxstyle.nets.transformer import Stylizer, StylizerSpec
from jaxstyle.video.flow import FlowCache, consistency_mask, warp

from ..helpers import MEDIA, ROOT, SHALLOW, SHALLOW_LAYERS, assert_one_line_error, cli_env, free_port, run_main
from ..video.test_video import ff, make_clip

STYLE = MEDIA / "styles" / "starry_night.jpg"
STYLE2 = MEDIA / "styles" / "the_scream.jpg"
CLIP = MEDIA / "video" / "realshort.mp4"
TINY = ["--size", "32", "--frame-size", "48", "--width", "4", "--blocks", "1", "--previews", "1", "--log-every", "1",
        "--network", "vgg16", "--quiet", *SHALLOW]


def _params(folder: Path):
    return jax.tree.leaves(load_model(folder).params)


def _max_diff(a, b) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def _share_apart(a, b, tol: float = 1e-5) -> float:
    """The share of parameters that differ by more than ``tol``. (Adam's first steps move every
    parameter by about the learning rate times the sign of its gradient, so a gradient that is zero
    up to rounding may move either way: a few parameters may differ by up to 2 x the step size
    however the batch's sum is ordered.)"""
    apart = sum(int(np.sum(np.abs(x - y) > tol)) for x, y in zip(a, b))
    return apart / sum(x.size for x in a)


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    """Four small photos and a 6-frame clip."""
    folder = tmp_path_factory.mktemp("data")
    content = read_image(MEDIA / "content" / "tubingen.jpg")
    for i in range(4):
        write_image(folder / f"img{i}.png", imaging.resize(content[i * 60:i * 60 + 500, i * 80:i * 80 + 700], 60, 80))
    make_clip(folder / "clip.mp4", "64x48", frames=6)
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, data_folder, vgg16):
    """A two-style model trained for 3 steps through the CLI."""
    folder = tmp_path_factory.mktemp("models") / "tiny"
    code = jax_main(["train", "--style", STYLE, "--style", STYLE2, "--data", data_folder, "-o", folder, *TINY,
                     "--steps", "3", "--batch-size", "2", "--checkpoint-every", "2", "--preview-every", "2"])
    assert code == 0
    return folder


def jax_main(argv):
    """The CLI in this process, its output left to the terminal (run_main without capsys)."""
    return main([str(a) for a in argv])


def test_the_network_keeps_any_size_and_starts_as_the_identity():
    spec = StylizerSpec("styles", 2, width=4, blocks=1)
    module = Stylizer(spec)
    params = module.init_params(jax.random.PRNGKey(0))
    for h, w in ((37, 53), (16, 16), (64, 31)):
        x = np.random.default_rng(h).uniform(0.05, 0.95, (2, h, w, 3)).astype(np.float32)
        y = np.asarray(module.apply({"params": params}, x, np.eye(2, dtype=np.float32)))
        assert y.shape == x.shape
        np.testing.assert_allclose(y, x, atol=1e-4)  # the last convolution starts at zero
    model = Model(spec, jax.tree.map(np.asarray, params))
    out = model.stylize(np.full((5, 29, 41, 3), 0.5, np.float32), model.mix([1, 3]), frames_per_device=2)
    assert out.shape == (5, 29, 41, 3)


@pytest.mark.parametrize("kind", ["styles", "predicted"])
def test_a_training_step_lowers_the_engines_loss(data_folder, vgg16, tmp_path, kind):
    """Both networks: conditional instance norm over the styles, and Ghiasi et al.'s style
    prediction from the styles' VGG statistics (two styles here)."""
    cfg = StyleConfig(network="vgg16").resolved()
    stored = [store_input(data_folder / f"img{i}.png", tmp_path, 32, 48) for i in range(2)]
    data = TrainingData(stored, 32, pairs=False, seed=0, n_styles=2, previews=0)
    bank = StyleBank.build(vgg16, cfg, [read_image(STYLE), read_image(STYLE2)], kind, 64.0)
    assert bank.conds.shape == ((2, 2) if kind == "styles" else (2, 2 * (64 + 128 + 256 + 512 + 512)))
    module = Stylizer(StylizerSpec(kind, bank.conds.shape[1], width=4, blocks=1, embedding=8))
    objective, weights = training_objective(cfg, vgg16, 32)
    assert set(objective.names) == {"content", "style", "tv", "temporal", "range"}
    weights = dict(weights, temporal=np.float32(0))
    batch = data.batch(range(4))
    grams, cond = bank.for_samples(batch.styles)
    arrays = {"contents": batch.contents, "cond": cond, "grams": grams}
    params = module.init_params(jax.random.PRNGKey(0))
    # a step size small enough to descend smoothly: at 1e-2 the six steps oscillated, and whether
    # they ended below 0.8x depended on the CPU's rounding (one CPU went 13.2 -> 40 -> 10.6)
    tx = optax.adam(3e-3)
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        (loss, parts), grads = jax.value_and_grad(
            lambda p: (lambda r: (r["total"], r))(loss_parts(module, objective, vgg16, p, vgg16.variables, arrays,
                                                             weights)), has_aux=True)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, parts

    losses = []
    for _ in range(6):
        params, state, parts = step(params, state)
        losses.append(float(parts["total"]))
    print("training losses on one batch:", [round(x, 4) for x in losses])
    assert losses[-1] < 0.8 * losses[0]
    assert float(parts["content"]) > 0 and float(parts["style"]) > 0


def test_crops_are_a_function_of_the_sample_and_pairs_carry_flows(data_folder, tmp_path):
    stored = [store_input(data_folder / "clip.mp4", tmp_path / "frames", 32, 48),
              store_input(data_folder / "img0.png", tmp_path / "frames", 32, 48)]
    assert (stored[0].frames, stored[0].height, stored[0].width, stored[0].is_video) == (6, 36, 48, True)
    data = TrainingData(stored, 32, pairs=True, seed=3, n_styles=2, previews=1, flows=FlowCache(tmp_path / "flows"))
    assert len(data) == 5 and data.any_pairs  # 5 pairs of the clip + 1 photo, one held out
    a, b = data.batch(range(8)), data.batch(range(4, 8))
    np.testing.assert_array_equal(a.contents[4:], b.contents)  # a process's share is the same samples
    np.testing.assert_array_equal(a.forward[4:], b.forward)
    assert a.contents.shape == (8, 32, 32, 3) and a.forward.shape == (8, 32, 32, 2)
    assert set(a.paired.tolist()) <= {0.0, 1.0} and a.paired.sum() >= 1
    assert sorted(set(data.item_of(g) for g in range(len(data)))) == sorted(data.items)  # an epoch is a permutation


def test_synthetic_motion_pairs_carry_their_exact_flow(data_folder, tmp_path):
    """Stills get a moved copy of themselves as their earlier frame, the real clip's pairs stay as
    they were at ``motion`` 0 and are partly replaced at 0.5; warped by its backward flow the
    earlier frame lands on the later one (up to bilinear resampling) where the mask is on."""
    still = [store_input(data_folder / f"img{i}.png", tmp_path / "frames", 32, 48) for i in range(2)]
    assert not TrainingData(still, 32, pairs=True, seed=1, n_styles=1, previews=0).any_pairs
    moved = TrainingData(still, 32, pairs=True, seed=1, n_styles=1, previews=0, motion=0.3)
    plain = TrainingData(still, 32, pairs=False, seed=1, n_styles=1, previews=0)
    assert moved.any_pairs
    b = moved.batch(range(6))
    np.testing.assert_array_equal(b.contents, plain.batch(range(6)).contents)  # the crops are the same
    assert b.paired.tolist() == [1.0] * 6 and np.abs(b.backward).max() > 0.5
    assert not np.allclose(b.previous, b.contents, atol=0.02)
    mask = np.asarray(consistency_mask(b.forward, b.backward))
    assert 0.8 < mask.mean() < 1.0  # what moved out of the crop is masked, the rest is kept
    warped = np.asarray(warp(b.previous, b.backward))
    before = np.abs(b.previous - b.contents).mean()
    after = (np.abs(warped - b.contents).mean(-1) * mask).sum() / mask.sum()
    assert after < 0.35 * before, (after, before)
    np.testing.assert_array_equal(moved.batch(range(2, 4)).previous, b.previous[2:4])  # a function of the sample

    clip = [store_input(data_folder / "clip.mp4", tmp_path / "frames", 32, 48)]
    flows = FlowCache(tmp_path / "flows")
    real = TrainingData(clip, 32, pairs=True, seed=3, n_styles=1, previews=0, flows=flows).batch(range(16))
    mixed = TrainingData(clip, 32, pairs=True, seed=3, n_styles=1, previews=0, flows=flows, motion=0.5).batch(range(16))
    same = np.all(mixed.previous == real.previous, axis=(1, 2, 3))
    assert 0 < same.sum() < 16, same  # some real pairs kept, some replaced
    np.testing.assert_array_equal(mixed.contents, real.contents)
    with pytest.raises(UserError, match="--synthetic-motion"):
        TrainConfig(synthetic_motion=1.5).check()


def _train(folder, data_folder, vgg16, devices, steps=2, batch=8):
    cfg = StyleConfig(network="vgg16", **SHALLOW_LAYERS).resolved()
    tc = TrainConfig(size=32, frame_size=48, steps=steps, batch_size=batch, width=4, blocks=1, previews=1,
                     preview_every=0, log_every=1, checkpoint_every=10)
    # stills only (frame pairs across hosts: test_two_processes_train_as_one)
    job = TrainJob([STYLE], [data_folder / f"img{i}.png" for i in range(1, 4)], folder, tc, cfg, progress=False,
                   devices=devices)
    return train_network(job, vgg16, [read_image(STYLE)], log=lambda m: None)


def test_eight_fake_devices_train_as_one(data_folder, vgg16, tmp_path):
    assert len(jax.local_devices()) == 8
    many = _train(tmp_path / "eight", data_folder, vgg16, jax.local_devices())
    one = _train(tmp_path / "one", data_folder, vgg16, jax.local_devices()[:1])
    assert many["devices"] == 8 and one["devices"] == 1
    a, b = _params(tmp_path / "eight"), _params(tmp_path / "one")
    print(f"8 devices vs 1: {_share_apart(a, b):.2e} of the parameters differ by > 1e-5, at most by "
          f"{_max_diff(a, b):.2e}; losses {many['curve'][-1]['total']:.7f} {one['curve'][-1]['total']:.7f}")
    assert _share_apart(a, b) < 0.02 and _max_diff(a, b) <= 2.5e-3  # (2 x 1e-3, the step size)
    np.testing.assert_allclose([r["total"] for r in many["curve"]], [r["total"] for r in one["curve"]], rtol=1e-5)


def _cli_process(argv, devices: int, log):
    env = cli_env(devices)
    return subprocess.Popen([sys.executable, "-m", "jaxstyle", *map(str, argv)], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(log, "w"))


def test_two_processes_train_as_one(data_folder, tmp_path):
    """2 processes x 2 fake devices, each feeding its half of every batch, give one process's parameters."""
    job = ["train", "--style", STYLE, "--data", data_folder / "clip.mp4", "--data", data_folder / "img1.png", *TINY,
           "--steps", "2", "--batch-size", "4", "--preview-every", "0"]
    port = free_port()
    procs = [_cli_process([*job, "-o", tmp_path / "multi", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                           "--process-id", str(i)], 2, tmp_path / f"p{i}.log") for i in range(2)]
    assert jax_main([*job, "-o", tmp_path / "single"]) == 0  # meanwhile, in this process (4 of its 8 devices)
    for proc in procs:
        proc.wait(timeout=300)
    logs = [(tmp_path / f"p{i}.log").read_text() for i in range(2)]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert "process 1 of 2" in logs[0] and "4 x cpu" in logs[0]
    meta = json.loads((tmp_path / "multi" / "metrics.json").read_text())
    assert meta["processes"] == 2 and meta["devices"] == 4
    a, b = _params(tmp_path / "multi"), _params(tmp_path / "single")
    print(f"2 processes vs 1: {_share_apart(a, b):.2e} of the parameters differ by > 1e-5, at most by {_max_diff(a, b):.2e}")
    assert _share_apart(a, b) < 0.02 and _max_diff(a, b) <= 2.5e-3
    curves = [json.loads((tmp_path / name / "metrics.json").read_text())["curve"] for name in ("multi", "single")]
    np.testing.assert_allclose([r["total"] for r in curves[0]], [r["total"] for r in curves[1]], rtol=1e-5)


def test_a_sigkill_then_resume_reaches_the_same_parameters(data_folder, tmp_path):
    job = ["train", "--style", STYLE, "--data", data_folder, *TINY, "--size", "48", "--frame-size", "64",
           "--temporal-weight", "0", "--steps", "16", "--batch-size", "2", "--checkpoint-every", "3",
           "--preview-every", "0"]
    killed = tmp_path / "killed"
    proc = _cli_process([*job, "-o", killed], 8, tmp_path / "killed.log")
    deadline = time.time() + 240
    while not (killed / "checkpoints" / "3").is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    finished_first = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not finished_first, (tmp_path / "killed.log").read_text()
    assert not (killed / "model.json").exists()
    assert jax_main([*job, "-o", killed, "--resume"]) == 0
    assert jax_main([*job, "-o", tmp_path / "whole"]) == 0
    curve = json.loads((killed / "metrics.json").read_text())
    assert curve["resumed_from"] >= 3 and [r["step"] for r in curve["curve"]] == list(range(1, 17))
    assert _max_diff(_params(killed), _params(tmp_path / "whole")) < 1e-6


def test_resume_follows_the_files_contents_and_names_what_changed(capsys, data_folder, tmp_path):
    # The model folder inside its own data: its previews are not data. Moved, the same contents
    # resume (from the last step, checkpointed though not a multiple of --checkpoint-every);
    # edited, or with another flag, they are refused by name; a damaged checkpoint is one line.
    data = tmp_path / "data"
    data.mkdir()
    for name in ("img0.png", "img1.png", "img2.png"):
        (data / name).write_bytes((data_folder / name).read_bytes())
    job = ["train", "--style", STYLE, *TINY, "--temporal-weight", "0", "--checkpoint-every", "5", "--preview-every", "1"]
    assert jax_main([*job, "--data", data, "-o", data / "model", "--steps", "2"]) == 0
    assert sorted(p.name for p in (data / "model" / "previews").iterdir()) == ["step_000001.png", "step_000002.png"]
    moved = tmp_path / "moved"
    data.rename(moved)
    code, err = run_main([*job, "--data", moved, "-o", moved / "model", "--steps", "3", "--resume"], capsys)
    assert code == 0 and "resuming at step 2 of 3" in err and "3 image(s)" in err, err
    metrics = json.loads((moved / "model" / "metrics.json").read_text())
    assert metrics["finished"] and metrics["step"] == 3 and [r["step"] for r in metrics["curve"]] == [1, 2, 3]
    (moved / "img1.png").write_bytes((data_folder / "img3.png").read_bytes())
    code, err = run_main([*job, "--data", moved, "-o", moved / "model", "--steps", "4", "--resume", "--learning-rate",
                          "0.01"], capsys)
    assert_one_line_error(code, err, "trained with other settings: other --data file contents; --learning-rate 0.001 "
                          "(now 0.01)")
    (moved / "img1.png").write_bytes((data_folder / "img1.png").read_bytes())
    shutil.rmtree(moved / "model" / "checkpoints" / "3" / "default")  # a copy cut short
    code, err = run_main([*job, "--data", moved, "-o", moved / "model", "--steps", "4", "--resume"], capsys)
    assert code == 2 and err.strip().splitlines()[-1].startswith("jaxstyle: error: --resume: the checkpoint of step 3")
    assert "cannot be read" in err and "Traceback" not in err, err
    (moved / "model" / "model.json").unlink()  # as during a training
    code, err = run_main([moved / "img0.png", "--model", moved / "model", "-o", tmp_path / "o.png"], capsys)
    assert_one_line_error(code, err, "is a training that has not finished")


def test_style_mix_weights_blend_any_finite_size():
    model = Model(StylizerSpec("styles", 2, width=4, blocks=0), {})
    np.testing.assert_allclose(model.mix([1e308, 1e308]), [0.5, 0.5])
    np.testing.assert_allclose(model.mix([3e38, 1e38]), [0.75, 0.25], rtol=1e-6)
    for bad, needle in (([float("nan"), 1], "finite"), ([float("inf"), 1], "finite"), ([0, 0], "not all zero"),
                        ([1], "2 style"), ([-1, 2], ">= 0")):
        with pytest.raises(UserError, match=needle):
            model.mix(bad)
    with pytest.raises(UserError, match="predicts from --style"):
        Model(StylizerSpec("predicted", 8, width=4, blocks=0), {}).mix([1])


def test_a_model_round_trips_and_a_changed_one_is_refused(tmp_path):
    spec = StylizerSpec("styles", 3, width=4, blocks=0)
    params = jax.tree.map(np.asarray, Stylizer(spec).init_params(jax.random.PRNGKey(1)))
    params = jax.tree.map(lambda a: a + np.float32(0.25), params)
    save_model(tmp_path / "m", Model(spec, params, {"styles": ["a.jpg"], "style_side": 64.0}))
    back = load_model(tmp_path / "m")
    assert back.spec == spec and back.meta["styles"] == ["a.jpg"] and back.meta["style_side"] == 64.0
    assert _max_diff(jax.tree.leaves(back.params), jax.tree.leaves(params)) == 0
    image = np.full((20, 30, 3), 0.4, np.float32)
    out = stylize_with_model(image, tmp_path / "m", style_mix=[1, 0, 1], size=24)
    assert out.shape == (16, 24, 3)  # the Python API
    data = bytearray((tmp_path / "m" / "params.msgpack").read_bytes())
    data[-1] ^= 1
    (tmp_path / "m" / "params.msgpack").write_bytes(bytes(data))
    with pytest.raises(UserError, match="SHA-256"):
        load_model(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["network"]["width"] = 8
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(UserError):
        load_model(tmp_path / "m")


def test_the_model_stylizes_images_and_videos_at_their_size_with_audio(capsys, tiny_model, tmp_path):
    meta = json.loads((tiny_model / "model.json").read_text())
    assert meta["kind"] == "styles" and meta["network"]["cond_dim"] == 2 and len(meta["styles"]) == 2
    assert sorted(p.name for p in (tiny_model / "previews").iterdir()) == ["step_000002.png", "step_000003.png"]
    sheet = read_image(tiny_model / "previews" / "step_000003.png")
    assert sheet.shape == (32, 3 * 32 + 2 * 4, 3)  # one held-out frame: content and the two styles
    code, err = run_main([MEDIA / "content" / "tubingen.jpg", "--model", tiny_model, "--style-mix", "1,1",
                          "--size", "50", "-o", tmp_path / "out.png"], capsys)
    assert code == 0, err
    assert read_image(tmp_path / "out.png").shape == (38, 50, 3)
    clip = tmp_path / "sound.mp4"
    ff("-f", "lavfi", "-i", "testsrc2=size=38x30:rate=12", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000",
       "-frames:v", "7", "-t", str(7 / 12), "-c:v", "libx264", "-pix_fmt", "yuv444p", "-c:a", "aac",
       "-metadata:s:a:0", "language=eng", "-shortest", clip)
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    (frames_dir / "frame_000012.png").write_bytes(b"an earlier, longer run's")
    code, err = run_main([clip, "--model", tiny_model, "--frames-per-device", "2", "-q", "-o", tmp_path / "out.mp4",
                          "--frames-dir", frames_dir], capsys)
    assert code == 0, err
    src, out = probe(clip), probe(tmp_path / "out.mp4")
    assert (out.width, out.height, out.fps) == (src.width, src.height, src.fps) and out.has_audio
    frames = sum(1 for _ in iter_frames(clip))
    assert f"wrote {tmp_path / 'out.mp4'}: {frames} frames" in err and sum(1 for _ in iter_frames(tmp_path / "out.mp4")) == frames
    assert sorted(p.name for p in frames_dir.iterdir()) == [f"frame_{t:06d}.png" for t in range(frames)]
    # --style-audio: the network's frames and the stylized sound, muxed
    code, err = run_main([clip, "--model", tiny_model, "--frames-per-device", "2", "-q", "--style-audio",
                          MEDIA / "audio" / "rain_texture.wav", "--audio-iterations", "2", "--audio-filters", "16",
                          "--audio-griffin-lim-iters", "2", "--metrics-json", tmp_path / "m.json",
                          "-o", tmp_path / "sound_out.mp4"], capsys)
    assert code == 0, err
    assert sum(1 for _ in iter_frames(tmp_path / "sound_out.mp4")) == frames
    assert json.loads((tmp_path / "m.json").read_text())["audio"]["style_audio"].endswith("rain_texture.wav")
    kept, sr = read_audio(tmp_path / "out.mp4")
    stylized, sr2 = read_audio(tmp_path / "sound_out.mp4")
    assert [a.language for a in probe(tmp_path / "sound_out.mp4").audio] == ["eng"]  # the source stream's tag
    assert sr2 == sr and abs(len(stylized) - len(kept)) < sr // 10 and not np.allclose(
        stylized[:len(kept)], kept[:len(stylized)], atol=1e-2)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_carry_steadies_a_networks_video_and_reports_its_e_stab(capsys, tiny_model, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", "48x36", frames=6)
    code, err = run_main([clip, "--model", tiny_model, "--frames-per-device", "4", "-q", "--carry", "0.6",
                          "--metrics-json", tmp_path / "m.json", "-o", tmp_path / "o.mp4"], capsys)
    assert code == 0, err
    measured = json.loads((tmp_path / "m.json").read_text())
    assert f"e_stab {measured['stability_error']:.4f} carried" in err
    assert measured["carry"] == 0.6 and len(measured["pair_temporal_errors"]) == 5
    assert (measured["start"], measured["duration"], measured["style_mix"]) == (0.0, None, None)
    # the network's pass alone computes no flow (and so reports no e_stab)
    code, err = run_main([clip, "--model", tiny_model, "--frames-per-device", "4", "-q", "--metrics-json",
                          tmp_path / "alone.json", "-o", tmp_path / "alone.mp4"], capsys)
    assert code == 0, err
    assert "e_stab" not in err and "stability_error" not in json.loads((tmp_path / "alone.json").read_text())
    # the Python API: frames in order, carried the same way; one image has nothing to carry
    frames = np.stack(list(iter_frames(clip)))
    alone = stylize_with_model(frames, tiny_model)
    carried = stylize_with_model(frames, tiny_model, carry=0.6)
    np.testing.assert_array_equal(carried[0], alone[0])
    assert float(np.abs(carried[1:] - alone[1:]).max()) > 1e-3
    unsteady = FlowCarry(0.0)
    for content, frame in zip(frames, alone):
        unsteady(content, frame)
    assert measured["stability_error"] < 0.8 * unsteady.metrics()["stability_error"]
    with pytest.raises(UserError, match="not one image"):
        stylize_with_model(frames[0], tiny_model, carry=0.6)
    with pytest.raises(UserError, match="carry must be a share"):
        stylize_with_model(frames, tiny_model, carry=1.5)
    # frames are checked and scaled as an image is: 8-bit frames, NaN, none at all
    eight_bit = np.round(frames * 255).astype(np.uint8)
    np.testing.assert_allclose(stylize_with_model(eight_bit, tiny_model)[2], stylize_with_model(eight_bit[2], tiny_model))
    with pytest.raises(UserError, match="frame 1 contains NaN"):
        stylize_with_model(np.stack([frames[0], np.full_like(frames[0], np.nan)]), tiny_model)
    with pytest.raises(UserError, match="no frames"):
        stylize_with_model(frames[:0], tiny_model, carry=0.5)


def test_an_interrupted_network_video_leaves_frames_dir_as_it_was(capsys, tiny_model, tmp_path, monkeypatch):
    from jaxstyle.io import video as video_io

    clip = make_clip(tmp_path / "c.mp4", "32x24", frames=20)  # batches of 8 on the 8 fake devices
    frames_dir = tmp_path / "frames"
    code, err = run_main([clip, "--model", tiny_model, "-q", "-o", tmp_path / "o.mp4", "--frames-dir", frames_dir],
                         capsys)
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in frames_dir.iterdir()}
    assert len(before) == 20
    written = []

    def interrupted(self, frames):  # Ctrl-C as the second batch is written (the first batch's PNGs are out)
        written.append(len(frames))
        if len(written) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(video_io.VideoWriter, "write", interrupted)
    code, err = run_main([clip, "--model", tiny_model, "-q", "--carry", "0.5", "-o", tmp_path / "o2.mp4",
                          "--frames-dir", frames_dir], capsys)
    assert code == 130, err
    assert {p.name: p.read_bytes() for p in frames_dir.iterdir()} == before
    assert not (tmp_path / "o2.mp4").exists()


def test_init_network_warm_starts_the_optimizer_for_images_and_lanes(capsys, tiny_model, tmp_path):
    fast = ["--iterations", "2", "--start-size", "0", "--network", "vgg16", "-q"]
    code, err = run_main([MEDIA / "content" / "tubingen.jpg", "--model", tiny_model, "--init", "network", "--style",
                          STYLE, "--size", "40", *fast, "-o", tmp_path / "warm.png"], capsys)
    assert code == 0, err
    assert read_image(tmp_path / "warm.png").shape == (30, 40, 3)
    clip = make_clip(tmp_path / "c.mp4", "40x30", frames=4)
    code, err = run_main([clip, "--model", tiny_model, "--init", "network", "--style", STYLE, *fast,
                          "--video-iterations", "1", "--frames-per-device", "2", "--overlap", "0", "-o", tmp_path / "warm.mp4"], capsys)
    assert code == 0, err
    assert "wrote" in err and sum(1 for _ in iter_frames(tmp_path / "warm.mp4")) == 4


def test_a_style_prediction_network_trains_from_a_folder_and_takes_any_style(capsys, data_folder, tmp_path):
    styles = tmp_path / "styles"
    styles.mkdir()
    for path in (STYLE, STYLE2):
        write_image(styles / path.name.replace(".jpg", ".png"), imaging.resize(read_image(path), 64, 80))
    code, err = run_main(["train", "--style", styles, "--data", data_folder / "img0.png", "--data",
                          data_folder / "img1.png", *TINY, "--steps", "2", "--batch-size", "2", "--preview-every", "0",
                          "-o", tmp_path / "m"], capsys)
    assert code == 0, err
    assert "'predicted' network (2 style(s)" in err
    unseen = MEDIA / "styles" / "shipwreck.jpg"
    code, err = run_main([MEDIA / "content" / "tubingen.jpg", "--model", tmp_path / "m", "--style", unseen,
                          "--size", "40", "-o", tmp_path / "o.png"], capsys)
    assert code == 0, err
    code, err = run_main([MEDIA / "content" / "tubingen.jpg", "--model", tmp_path / "m", "-o", tmp_path / "x.png"],
                         capsys)
    assert_one_line_error(code, err, "exactly one")


@pytest.mark.parametrize("argv, needle", [
    (["train", "--data", "{data}", "-o", "{tmp}/m"], "--style"),
    (["train", "--style", STYLE, "-o", "{tmp}/m"], "--data"),
    (["train", "--style", STYLE, "--data", "{tmp}/none", "-o", "{tmp}/m"], "does not exist"),
    (["train", "--style", "{tmp}/none.jpg", "--data", "{data}", "-o", "{tmp}/m"], "does not exist"),
    (["train", "--style", STYLE, "--data", "{data}", "-o", "{tmp}/m", "--size", "8"], "--size"),
    (["train", "--style", STYLE, "--data", "{data}", "-o", "{tmp}/m", "--learning-rate", "0"], "--learning-rate"),
    (["train", "--style", STYLE, "--data", "{data}", "-o", "{tmp}/m", "--size", "64", "--frame-size", "64"], "smaller"),
    (["train", "--style", STYLE, "--data", "{data}", "-o", "{tmp}/m", "--synthetic-motion", "1.5"], "between 0 and 1"),
    (["train", "--style", STYLE, "--data", "{data}", "-o", "{tmp}/m", "--synthetic-motion", "0.5", "--temporal-weight",
      "0"], "needs --temporal-weight above 0"),
    (["train", "--style", STYLE, "--data", "{data}", "-o", "{model}"], "--resume"),
    (["train", "--style", STYLE, "--data", "{data}", "-o", "{tmp}/m", "--resume"], "no checkpoints"),
    (["train", "--style", STYLE, "--data", "{data}", "-o", "{model}", "--resume", *TINY], "other settings"),
    (["train", "--style", STYLE, "--style", STYLE2, "--data", "{data}", "-o", "{model}", *TINY, "--batch-size", "2",
      "--resume", "--steps", "1"], "past --steps 1"),
    (["train", "--style", STYLE, "--data", "{data}", "-o", "{data}"], "not a model directory"),
    (["train", "--style", STYLE, "--data", "{data}", "-o", "{tmp}/m", "--batch-size", "100000000"], "try --batch-size"),
    (["train", "--style", STYLE, "--data", "{data}", "-o", "{tmp}/m", "--width", "100000"], "smaller --width"),
    (["train", "--style", STYLE, "--style", STYLE, "--data", "{data}", "-o", "{tmp}/m"], "is given twice"),
    (["train", "--style", STYLE, "--data", "{data}/img0.png", "-o", "{tmp}/m", "--flow", "farneback"],
     "--data has no video"),
    (["train", "--style", STYLE, "--data", "{data}", "-o", "{tmp}/m", "--style-weight", "1e39"], "at most 3.4e38"),
    (["{content}", "--model", "{model}", "--style-mix", "1,,1", "-o", "{tmp}/o.png"], "comma-separated numbers"),
    (["{content}", "--model", "{model}/checkpoints", "-o", "{tmp}/o.png"], "not a jaxstyle model"),
    (["{audio}", "--model", "{model}", "-o", "{tmp}/o.wav"], "not sound"),
    (["{audio}", "--model", "{model}", "--audio-iterations", "2", "-o", "{tmp}/o.wav"], "not sound"),  # said first
    (["{content}", "--model", "{tmp}", "-o", "{tmp}/o.png"], "not a jaxstyle model"),
    (["{content}", "--model", "{tmp}/none", "-o", "{tmp}/o.png"], "does not exist"),
    (["{content}", "--model", "{model}", "--style-mix", "1,2,3", "-o", "{tmp}/o.png"], "2 style(s)"),
    (["{content}", "--model", "{model}", "--style", STYLE, "-o", "{tmp}/o.png"], "--style-mix"),
    (["{content}", "--style", STYLE, "--style-mix", "1", "-o", "{tmp}/o.png"], "--model"),
    (["{content}", "--style", STYLE, "--init", "network", "-o", "{tmp}/o.png"], "--model"),
    (["{content}", "--model", "{model}", "--init", "network", "-o", "{tmp}/o.png"], "--style"),
    # the network's pass ignores the optimizer's flags and does not stylize a sound
    (["{content}", "--model", "{model}", "--iterations", "5", "--size", "32", "-o", "{tmp}/o.png"],
     "--iterations applies to the optimizer, and --model alone runs the trained network"),
    (["{content}", "--model", "{model}", "--init", "noise", "--precision", "bfloat16", "-o", "{tmp}/o.png"],
     "--init, --precision apply to the optimizer"),  # (a prediction model's statistics: at its training precision)
    (["{clip}", "--model", "{model}", "--keep-work", "--temporal-weight", "3", "-o", "{tmp}/o.mp4"],
     "--keep-work, --temporal-weight apply to the optimizer"),
    (["{clip}", "--model", "{model}", "--style-audio", "{audio}", "--no-audio", "-o", "{tmp}/o.mp4"], "contradict"),
    # --carry: a share, for a network's video only
    (["{clip}", "--model", "{model}", "--carry", "1", "-o", "{tmp}/o.mp4"], "--carry must be a share from 0"),
    (["{clip}", "--model", "{model}", "--flow", "farneback", "-o", "{tmp}/o.mp4"], "--flow with --model applies to --carry"),
    (["{clip}", "--model", "{model}", "--no-scene-cuts", "-o", "{tmp}/o.mp4"], "--no-scene-cuts with --model applies"),
    (["{content}", "--model", "{model}", "--carry", "0.5", "-o", "{tmp}/o.png"], "--carry applies to a video CONTENT"),
    (["{clip}", "--style", STYLE, "--carry", "0.5", "-o", "{tmp}/o.mp4"], "the optimizer's frames start from the warped"),
    (["{clip}", "--model", "{model}", "--init", "network", "--style", STYLE, "--carry", "0.5", "-o", "{tmp}/o.mp4"],
     "the optimizer's frames start from the warped"),
    (["{content}", "--model", "{model}", "--style-audio", "{audio}", "-o", "{tmp}/o.png"], "a video with sound"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, data_folder, tiny_model, argv, needle):
    fill = {"{data}": str(data_folder), "{tmp}": str(tmp_path), "{model}": str(tiny_model),
            "{content}": str(MEDIA / "content" / "tubingen.jpg"), "{audio}": str(MEDIA / "audio" / "speech.wav"),
            "{clip}": str(MEDIA / "video" / "carphone.mp4")}
    args = [str(a) for a in argv]
    for key, value in fill.items():
        args = [a.replace(key, value) for a in args]
    before = sorted(p.name for p in tiny_model.iterdir())
    code, err = run_main(args, capsys)
    assert_one_line_error(code, err, needle)
    assert sorted(p.name for p in tiny_model.iterdir()) == before
    assert not (tmp_path / "o.png").exists()


def test_too_little_data_for_the_previews_is_refused_before_the_model_folder(capsys, tmp_path):
    code, err = run_main(["train", "--style", STYLE, "--data", MEDIA / "content" / "tubingen.jpg", "-o",
                          tmp_path / "m", "--size", "32", "--steps", "2", "--batch-size", "1"], capsys)
    assert_one_line_error(code, err, "the data gives 1 training item(s); --previews 4 would hold out all")
    assert not (tmp_path / "m").exists()


def test_a_folder_left_before_the_first_checkpoint_can_be_trained_into_again(tmp_path):
    """A run that failed or was killed before its first checkpoint leaves job.json, a flow cache and
    an empty checkpoints folder (or a cut-short save): a new run may start there; a finished
    checkpoint or model may not be overwritten."""
    from types import SimpleNamespace

    from jaxstyle.cli.train import check_model_dir, checkpoint_steps
    from jaxstyle.errors import UserError

    folder = tmp_path / "m"
    (folder / "checkpoints" / "5.orbax-checkpoint-tmp-123").mkdir(parents=True)
    (folder / "cache").mkdir()
    (folder / "job.json").write_text("{}")
    job = SimpleNamespace(output=folder, train=SimpleNamespace(resume=False, steps=10))
    assert checkpoint_steps(folder) == []
    check_model_dir(job)  # no error: nothing finished to lose
    (folder / "checkpoints" / "4").mkdir()
    assert checkpoint_steps(folder) == [4]
    with pytest.raises(UserError, match="--resume continues"):
        check_model_dir(job)



def test_resume_compares_what_the_training_used(tmp_path):
    """Still images make frame pairs only with synthetic motion: without it the temporal weight is
    no difference, with it every temporal setting is; the held-out previews count, not --previews."""
    from jaxstyle.cli.train import _fingerprint, check_model_dir

    folder = tmp_path / "m"
    (folder / "checkpoints" / "4").mkdir(parents=True)

    def job(**train):
        return TrainJob([Path(STYLE)], [Path(STYLE2)], folder, TrainConfig(steps=10, resume=True, **train),
                        StyleConfig().resolved())

    def trained(**train):
        (folder / "job.json").write_text(json.dumps(_fingerprint(job(**train)), default=str))

    trained(temporal_weight=5.0)
    check_model_dir(job(temporal_weight=0.0))  # no pairs: the weight does nothing
    trained(temporal_weight=1.0, synthetic_motion=0.5)
    with pytest.raises(UserError, match=r"--synthetic-motion 0.5 \(now 0.0\); --temporal-weight 1.0 \(now unused\)"):
        check_model_dir(job(temporal_weight=0.0))
    trained(preview_every=0)
    check_model_dir(job(preview_every=0, previews=7))  # none held out either way
    with pytest.raises(UserError, match=r"0 held-out preview item\(s\) \(now 4"):
        check_model_dir(job())


def test_a_training_from_before_a_setting_existed_still_resumes(tmp_path):
    """job.json written before --synthetic-motion existed does not hold it, and names its files by
    path (before their contents): it was trained with what it now defaults to, on the files at those
    paths, so --resume goes on; a changed setting is still refused."""
    from jaxstyle.cli.train import _fingerprint, check_model_dir

    folder = tmp_path / "m"
    (folder / "checkpoints" / "4").mkdir(parents=True)
    job = TrainJob([Path(STYLE)], [CLIP], folder, TrainConfig(steps=10, resume=True), StyleConfig().resolved())
    old = json.loads(json.dumps(_fingerprint(job), default=str))
    del old["train"]["synthetic_motion"]
    old["styles"], old["data"] = [str(Path(STYLE).resolve())], [str(CLIP.resolve())]
    old["loss"]["network"] = "auto"
    (folder / "job.json").write_text(json.dumps(old))
    check_model_dir(job)  # no error
    moved = dataclasses.replace(job, train=dataclasses.replace(job.train, synthetic_motion=0.5))
    with pytest.raises(UserError, match="other settings"):
        check_model_dir(moved)
