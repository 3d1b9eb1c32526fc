"""CLI: each bad input gives one clear line and exit code 2 (no traceback, no overwritten file);
odd inputs (grayscale, RGBA, 16-bit, odd sizes) work; the output keeps the content's exact size."""

import json
import os
from pathlib import Path
import shutil
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from jaxstyle.nets import weights
from ..helpers import MEDIA, ROOT, SHALLOW, assert_one_line_error, run_main

FAST = ["--iterations", "2", "--coarse-iterations", "1", "--start-size", "0", "--chunk", "2", "--quiet", *SHALLOW]


def test_missing_content(capsys, images, tmp_path):
    code, err = run_main([tmp_path / "nope.jpg", "--style", images["style"], "-o", tmp_path / "o.png"], capsys)
    assert_one_line_error(code, err, "nope.jpg", "does not exist")


def test_missing_style(capsys, images, tmp_path):
    code, err = run_main([images["content"], "--style", tmp_path / "nostyle.png", "-o", tmp_path / "o.png"], capsys)
    assert_one_line_error(code, err, "nostyle.png")


def test_unreadable_and_unsupported_inputs(capsys, images, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    code, err = run_main([corrupt, "--style", images["style"], "-o", tmp_path / "o.png"], capsys)
    assert_one_line_error(code, err, "corrupt.png")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    code, err = run_main([images["content"], "--style", text, "-o", tmp_path / "o.png"], capsys)
    assert_one_line_error(code, err, "notes.txt")
    code, err = run_main([images["content"], "--style", tmp_path, "-o", tmp_path / "o.png"], capsys)
    assert_one_line_error(code, err, "not a file")
    no_extension = tmp_path / "clip"  # a video saved without its extension
    shutil.copy(MEDIA / "video" / "realshort.mp4", no_extension)
    for extra in (["-o", tmp_path / "o.mp4"], ["--duration", "0.1"]):
        assert_one_line_error(*run_main([no_extension, "--style", images["style"], *extra], capsys),
                              "is not an image", "rename it")
    cut_gif = tmp_path / "cut.gif"  # (ffprobe takes a broken GIF for a still image)
    cut_gif.write_bytes(b"GIF89a\x10\x00\x10\x00" + bytes(range(32)))  # (fixed bytes: random ones can claim a huge size)
    for out in ("o.gif", "o.png"):
        assert_one_line_error(*run_main([cut_gif, "--style", images["style"], "-o", tmp_path / out], capsys),
                              "cannot read", "not a readable GIF")
    from jaxstyle.io.video import is_video_content
    mp4_as_gif = tmp_path / "clip.gif"  # another format under a .gif name goes to ffmpeg, as it did
    shutil.copy(MEDIA / "video" / "realshort.mp4", mp4_as_gif)
    assert is_video_content(mp4_as_gif)


def test_unsupported_output_format(capsys, images, tmp_path):
    code, err = run_main([images["content"], "--style", images["style"], "-o", tmp_path / "out.xyz"], capsys)
    assert_one_line_error(code, err, "unsupported output format")
    code, err = run_main([images["content"], "--style", images["style"], "-o", tmp_path], capsys)
    assert_one_line_error(code, err, "is a directory")
    code, err = run_main([images["content"], "--style", images["style"], "-o", ""], capsys)
    assert_one_line_error(code, err, "the output path (-o) is empty")
    # a name the file system would refuse, found before the work (and in any other path, as it is written)
    code, err = run_main([images["content"], "--style", images["style"], "-o", tmp_path / ("a" * 240 + ".png")], capsys)
    assert_one_line_error(code, err, "is too long (244 bytes; the outputs here take at most")
    code, err = run_main([images["content"], "--style", images["style"], "-o", tmp_path / "o.png",
                          "--metrics-json", tmp_path / ("m" * 260 + ".json")], capsys)
    assert_one_line_error(code, err, "the file name is too long")
    assert not (tmp_path / "o.png").exists()


def test_output_equal_to_input_is_refused_and_untouched(capsys, images):
    before = images["content"].read_bytes()
    code, err = run_main([images["content"], "--style", images["style"], "-o", images["content"]], capsys)
    assert_one_line_error(code, err, "same file as the input")
    assert images["content"].read_bytes() == before
    before = images["style"].read_bytes()
    code, err = run_main([images["content"], "--style", images["style"], "-o", images["style"]], capsys)
    assert_one_line_error(code, err, "same file")
    assert images["style"].read_bytes() == before


def test_weights_checksum_mismatch(capsys, images, tmp_path, monkeypatch):

    wdir = tmp_path / "w"
    out = weights.save_params(weights.random_params("vgg16"), "vgg16", preprocessing="torch", source="t",
                              source_sha256="0", directory=wdir)
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0x01
    out.write_bytes(bytes(data))
    monkeypatch.setenv("JAXSTYLE_WEIGHTS_DIR", str(wdir))
    code, err = run_main([images["content"], "--style", images["style"], "-o", tmp_path / "o.png",
                          "--network", "vgg16", *FAST], capsys)
    assert_one_line_error(code, err, "checksum")
    assert not (tmp_path / "o.png").exists()


def test_bad_flag_values_are_one_line(capsys, images, tmp_path):
    code, err = run_main([images["content"], "--style", images["style"], "--optimizer", "newton"], capsys)
    assert_one_line_error(code, err, "optimizer")
    code, err = run_main([images["content"], "--style", images["style"], "--size", "4"], capsys)
    assert_one_line_error(code, err, "--size")
    code, err = run_main([images["content"], "--style", images["style"], "--style", images["style"],
                          "--style-weights", "1,2,3", "-o", tmp_path / "o.png", *FAST], capsys)
    assert_one_line_error(code, err, "style weights")
    code, err = run_main([images["content"], "--style", images["style"], "--tile-coarse-iterations", "-1"], capsys)
    assert_one_line_error(code, err, "--tile-coarse-iterations")
    code, err = run_main([images["content"], "--style", images["style"], "--start-size", "-1"], capsys)
    assert_one_line_error(code, err, "--start-size")
    code, err = run_main([images["content"], "--style", images["style"], "--quality", "10", "--start", "1"], capsys)
    assert_one_line_error(code, err, "--start applies to a video or sound CONTENT only; --quality applies to a "
                                     "video CONTENT only, and")
    assert "is an image" in err
    code, err = run_main([images["content"], "--style", images["style"], "--temporal-weight", "5", "--overlap",
                          "3", "--audio-iterations", "4"], capsys)
    assert_one_line_error(code, err, "--temporal-weight, --overlap apply to a video CONTENT only, and")
    code, err = run_main([images["content"], "--style", images["style"], "--audio-iterations", "4"], capsys)
    assert_one_line_error(code, err, "--audio-iterations applies to a sound being stylized only", "is an image")
    thin = tmp_path / "thin.png"  # 2000x12: --size 32 would make it 32x1; the hint counts from 2000x12
    iio.imwrite(thin, np.full((12, 2000, 3), 128, np.uint8))
    code, err = run_main([thin, "--style", images["style"], "-o", tmp_path / "t.png", "--size", "32"], capsys)
    assert_one_line_error(code, err, "--size 2667 or more")


def test_nan_loss_keeps_last_finite_image_beside_the_output(capsys, images, tmp_path):
    out = tmp_path / "nan.png"
    out.write_bytes(b"an earlier result")
    code, err = run_main([images["content"], "--style", images["style"], "-o", out, "--optimizer", "sgd",
                          "--learning-rate", "1e30", *FAST], capsys)
    assert_one_line_error(code, err, "NaN", "kept the last finite image", "nan.last-finite.png")
    assert out.read_bytes() == b"an earlier result"  # a failed run changes no existing file
    img = iio.imread(tmp_path / "nan.last-finite.png")
    assert img.shape == (27, 35, 3)


@pytest.mark.parametrize("kind", ["gray", "rgba", "16bit", "odd", "gif"])
def test_odd_inputs_keep_exact_size(capsys, images, tmp_path, kind):
    rng = np.random.default_rng(0)
    base = iio.imread(images["content"])  # 27x35 RGB uint8
    path = tmp_path / f"in_{kind}.{'gif' if kind == 'gif' else 'png'}"
    if kind == "gif":  # a still GIF is an image, not a one-frame video
        iio.imwrite(path, base[None])
        assert iio.imread(path).shape[0] == 1
    elif kind == "gray":
        iio.imwrite(path, base.mean(-1).astype(np.uint8))
    elif kind == "rgba":
        alpha = rng.integers(0, 256, base.shape[:2], dtype=np.uint8)
        iio.imwrite(path, np.dstack([base, alpha]))
    elif kind == "16bit":
        iio.imwrite(path, (base.mean(-1) * 257).astype(np.uint16))  # 16-bit grayscale PNG
        assert iio.imread(path).dtype == np.uint16
    else:
        iio.imwrite(path, base[:25, :33])
    metrics = tmp_path / f"m_{kind}.json"
    out = tmp_path / f"out_{kind}.png"
    code, err = run_main([path, "--style", images["style"], "-o", out, "--metrics-json", metrics, *FAST], capsys)
    assert code == 0, err
    expected = (25, 33) if kind == "odd" else (27, 35)
    assert iio.imread(out).shape == expected + (3,)
    data = json.loads(metrics.read_text())
    for key in ("initial", "final", "scales", "iterations", "wall_seconds", "compile_seconds", "network", "devices"):
        assert key in data, key
    assert data["iterations"] == 2 and "vgg16" in data["network"]


def test_size_flag_and_subprocess_entry_points(images, tmp_path):
    """`python cli.py` and `python -m jaxstyle` are the same CLI; errors there are one line too."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for entry in (["cli.py"], ["-m", "jaxstyle"]):
        proc = subprocess.run([sys.executable, *entry, str(tmp_path / "missing.png"), "--style",
                               str(images["style"])], cwd=ROOT, env=env, capture_output=True, text=True)
        assert proc.returncode == 2
        assert proc.stderr.strip().count("\n") == 0 and "missing.png" in proc.stderr
        assert "Traceback" not in proc.stderr
    # A message or help that names a command names the one the user typed.
    proc = subprocess.run([sys.executable, "-m", "jaxstyle", str(images["content"]), "--model", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "'python -m jaxstyle train'" in proc.stderr, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "jaxstyle", "--help"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and "'python -m jaxstyle train ...'" in proc.stdout and "cli.py" not in proc.stdout
    out = tmp_path / "sized.png"
    proc = subprocess.run([sys.executable, "cli.py", str(images["content"]), "--style", str(images["style"]),
                           "-o", str(out), "--size", "32", *FAST], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert iio.imread(out).shape == (25, 32, 3)
    assert "network: vgg16" in proc.stderr


def test_weights_commands(capsys, tmp_path, monkeypatch, images):
    monkeypatch.setenv("JAXSTYLE_WEIGHTS_DIR", str(tmp_path / "w"))
    code, _ = run_main(["weights", "list"], capsys)
    assert code == 0
    monkeypatch.setenv("JAXSTYLE_VGG19_URL", "http://127.0.0.1:9/vgg19-dcbb9e9d.pth")
    code, err = run_main(["weights", "fetch", "vgg19"], capsys)
    assert_one_line_error(code, err, "weights port")
    code, err = run_main(["weights", "port", tmp_path / "none.pth"], capsys)
    assert_one_line_error(code, err, "does not exist")
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "junk.pth").write_bytes(b"\x80\x02junk" * 20)
    for name, needle in [("empty.pth", "is empty"), ("junk.pth", "not a PyTorch state dict")]:
        assert_one_line_error(*run_main(["weights", "port", tmp_path / name], capsys), needle)
        assert_one_line_error(*run_main([images["content"], "--style", images["style"], "-o", tmp_path / "o.png",
                                         "--network", tmp_path / name], capsys), needle)


def test_tile_size_below_the_receptive_field(capsys, images, tmp_path):
    """Coupled tiles need the receptive field on both sides of a block: one line naming the way out."""
    out = tmp_path / "o.png"
    code, err = run_main([images["content"], "--style", images["style"], "-o", out, "--size", "100",
                          "--tile-size", "64", "--network", "vgg16", *FAST, "--style-layers", "relu1_1,relu5_1"], capsys)
    assert_one_line_error(code, err, "--tile-size 64", "at least 144 px", "--tile-mode independent")
    assert not out.exists()


def test_a_given_iterations_on_tiled_frames_is_noted(capsys):
    """Tiled frames take --tile-iterations at their last scales: a --iterations given is said to go unused."""
    import argparse

    from jaxstyle.cli.common import note_tiled_iterations
    from jaxstyle.config import StyleConfig, TileConfig

    config = StyleConfig(tiles=TileConfig(size=64, mode="independent", overlap=16)).resolved()
    note_tiled_iterations(argparse.Namespace(iterations=5), config, 80, 100)
    assert "not --iterations" in capsys.readouterr().err
    for iterations, h in [(None, 80), (5, 60)]:  # not given, or a frame under the tile size
        note_tiled_iterations(argparse.Namespace(iterations=iterations), config, h, h)
        assert capsys.readouterr().err == ""

    # the --tile-* flags given for frames that are never tiled go unused: said once (--tile-size is
    # what decides, so it is not among them)
    given = argparse.Namespace(**{"tiles.mode": "independent", "tiles.iterations": 3, "tiles.size": 64})
    note_tiled_iterations(given, config, 60, 60)
    assert capsys.readouterr().err.strip() == (
        "note: 60x60 frames are not above --tile-size 64, so they are not tiled: --tile-mode, --tile-iterations "
        "change nothing")
    note_tiled_iterations(given, config, 80, 100)
    assert capsys.readouterr().err == ""
    off = StyleConfig(tiles=TileConfig(size=0)).resolved()
    note_tiled_iterations(argparse.Namespace(**{"tiles.rounds": 3}), off, 60, 60)
    assert capsys.readouterr().err.strip() == "note: tiling is off (--tile-size 0): --tile-rounds changes nothing"


def test_frames_dir_frames_replace_the_folders_only_when_the_run_succeeds(tmp_path):
    """--frames-dir's frames go to a hidden staging folder: published on success, dropped on any
    failure or interrupt (the folder's earlier frames untouched), a killed run's staging removed."""
    from jaxstyle.cli.common import STAGED_FRAMES_PREFIX, staged_frames

    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "frame_000000.png").write_bytes(b"earlier run")
    (folder / "notes.txt").write_text("mine")
    (folder / (STAGED_FRAMES_PREFIX + "killed")).mkdir()  # a killed run's
    with pytest.raises(KeyboardInterrupt):
        with staged_frames(str(folder)) as staging:
            assert staging.startswith(str(folder / STAGED_FRAMES_PREFIX))
            (Path(staging) / "frame_000000.png").write_bytes(b"this run")
            raise KeyboardInterrupt
    assert sorted(p.name for p in folder.iterdir()) == ["frame_000000.png", "notes.txt"]
    assert (folder / "frame_000000.png").read_bytes() == b"earlier run"
    with staged_frames(str(folder)) as staging:
        for t in range(2):
            (Path(staging) / f"frame_{t:06d}.png").write_bytes(b"this run")
    assert sorted(p.name for p in folder.iterdir()) == ["frame_000000.png", "frame_000001.png", "notes.txt"]
    assert (folder / "frame_000000.png").read_bytes() == b"this run"
    with staged_frames(None) as staging:
        assert staging is None
