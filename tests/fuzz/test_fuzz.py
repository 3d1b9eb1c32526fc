"""Fuzzing the CLI: random flag combinations, malformed and truncated media (made here), and
interrupts at random moments. Whatever happens, the exit code is 0, 2 (the input) or 130 (an
interrupt), nothing prints a traceback, and no existing file changes when the exit is not 0.

CI runs a fixed set of examples (hypothesis derandomized); ``pytest tests/fuzz --fuzz-scale 25``
runs 25 times as many with a random seed.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

import imageio.v3 as iio
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxstyle import imaging
from jaxstyle.cli import build_parser
from jaxstyle.cli import applies
from jaxstyle.io import audio as audio_io
from jaxstyle.io.images import read_image

from ..helpers import FF, MEDIA, ROOT, cli_env, run_main

SCALE = int(os.environ.get("JAXSTYLE_FUZZ_SCALE", "1"))
SENTINEL = b"an existing file that a failed run must not change"
# appended after the random flags: whatever they ask, the work stays tiny (argparse keeps the last)
# (each content kind refuses the flags it would ignore, so each gets its own)
_PICTURE_BOUND = ["--size", "32", "--iterations", "1", "--coarse-iterations", "1", "--start-size", "0", "--chunk", "1",
                  "--tile-iterations", "1", "--tile-coarse-iterations", "1"]
BOUND = {"image": [*_PICTURE_BOUND, "--quiet"], "video": [*_PICTURE_BOUND, "--video-iterations", "1", "--quiet"],
         "audio": ["--audio-iterations", "1", "--audio-griffin-lim-iters", "2", "--quiet"]}
# never fuzzed: the inputs and outputs (set by each test), and multi-host start-up (it waits for peers)
FIXED = {"-h", "--help", "--style", "-s", "--style-audio", "--output", "-o", "--metrics-json", "--coordinator",
         "--num-processes", "--process-id"}


def examples(n: int):
    return settings(max_examples=n * SCALE, derandomize=SCALE == 1, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Small real inputs, and the bad ones the flags may point at."""
    folder = tmp_path_factory.mktemp("fuzz")
    content = imaging.resize(read_image(MEDIA / "content" / "tubingen.jpg"), 27, 35)
    style = imaging.resize(read_image(MEDIA / "styles" / "starry_night.jpg"), 30, 48)
    paths = {"content": folder / "content.png", "style": folder / "style.jpg", "text": folder / "notes.txt",
             "clip": folder / "clip.mp4", "wav": folder / "tone.wav", "style_wav": folder / "noise.wav"}
    iio.imwrite(paths["content"], imaging.to_uint8(content))
    iio.imwrite(paths["style"], imaging.to_uint8(style))
    iio.imwrite(folder / "content.jpg", imaging.to_uint8(content))
    iio.imwrite(folder / "content.gif", imaging.to_uint8(content))
    paths["text"].write_text("not an image")
    subprocess.run([FF, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=32x24:rate=10", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000",
                    "-t", "0.8", "-c:v", "libx264", "-pix_fmt", "yuv444p", "-preset", "ultrafast", "-c:a", "aac",
                    "-shortest", str(paths["clip"])], check=True)
    t = np.arange(8000) / 8000.0
    audio_io.write_audio(paths["wav"], (0.3 * np.sin(2 * np.pi * 330 * t))[:, None], 8000)
    audio_io.write_audio(paths["style_wav"], 0.2 * np.random.default_rng(0).standard_normal((8000, 1)), 8000)
    return paths


def _ignored_by(kind: str) -> set[str]:
    """The flags a content of ``kind`` refuses as ignored (tested in tests/cli): not fuzzed on it."""
    every = argparse.Namespace(**{action.dest: None for action in build_parser()._actions})
    return {*applies.unused_video_options(every, kind), *applies.unused_sound_flags(every, kind, False),
            *applies.unused_picture_flags(every, kind)}


def _values(files, kind: str):
    """Values a flag may get: valid ones, wrong types, out-of-range and non-finite numbers, bad paths."""
    numbers = ["-5", "0", "1", "2", "3", "1000000", "1e3", "nan", "abc", "99999999999999999999"]
    floats = ["nan", "inf", "-inf", "-1", "0", "0.5", "1", "2.5", "1e30", "1e-30", "abc"]
    lists = {"--content-layers": ["relu4_2", "relu2_1,relu3_1", "relu9_9", "conv1_1,pool2", ",", ""],
             "--style-layers": ["relu1_1", "relu2_1,relu3_1", "relu9_9", "pool1,relu5_1", ",", "relu1_1,relu1_1"],
             "--style-layer-weights": ["1", "0.5,0.5", "nan,1", "-1", "1,2,3,4,5", "a,b"],
             "--style-weights": ["1", "0.5,0.5", "0", "-1", "nan", "1,2"],
             "--long-term": ["1", "1,2", "2", "0,1", "1,100000", "x"],
             "--style-mask": [str(files["style"]), "/nonexistent.png", str(files["text"])]}
    paths = {"--init": ["content", "noise", "style", str(files["style"]), "/nonexistent.png", str(files["text"])],
             "--network": ["vgg16", "vgg19", "random-vgg16", "auto", "/nonexistent.npz", "nonsense",
                           str(files["text"])],
             "--content-mask": [str(files["content"]), "/nonexistent.png", str(files["text"])],
             "--frames-dir": [str(files["content"].parent / "frames"), str(files["text"]), "/proc/frames"],
             "--work-dir": [str(files["content"].parent / "work"), str(files["text"]), "/proc/work"]}
    out = {}
    for action in build_parser()._actions:
        flag = action.option_strings[-1] if action.option_strings else None
        if not flag or set(action.option_strings) & (FIXED | _ignored_by(kind)):
            continue
        if action.nargs == 0:
            out[flag] = [None]
        elif action.choices:
            out[flag] = [*action.choices, "bogus"]
        elif flag in lists or flag in paths:
            out[flag] = lists.get(flag) or paths[flag]
        elif action.type is int:
            out[flag] = numbers
        elif action.type is float:
            out[flag] = floats
        else:
            out[flag] = ["x", ""]
    return out


def _flags(files, kind: str):
    table = _values(files, kind)
    pair = st.sampled_from(sorted(table)).flatmap(lambda f: st.tuples(st.just(f), st.sampled_from(table[f])))
    return st.lists(pair, max_size=5)


def _argv(pairs):
    argv = []
    for flag, value in pairs:
        argv += [flag] if value is None else [flag, value]
    return argv


def _check(code: int, err: str, out, allowed=(0, 2)):
    assert code in allowed, (code, err)
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    if code == 2:
        assert lines and lines[-1].startswith("jaxstyle: error:"), err
        assert sum("error" in line.lower() for line in lines) == 1, err
    if code == 130:
        assert lines[-1] == "jaxstyle: interrupted", err
    if code == 143:
        assert lines[-1] == "jaxstyle: terminated", err
    if code != 0:
        assert out.read_bytes() == SENTINEL, "a failed run changed an existing file"


def test_random_flags_on_an_image(capsys, files, tmp_path_factory, vgg16):
    out_dir = tmp_path_factory.mktemp("flags")

    @examples(24)
    @given(pairs=_flags(files, "image"))
    def run(pairs):
        out = out_dir / "out.png"
        out.write_bytes(SENTINEL)
        code, err = run_main([files["content"], "--style", files["style"], *_argv(pairs), *BOUND["image"], "-o", out],
                             capsys)
        _check(code, err, out)
        if code == 0:
            assert iio.imread(out).shape[-1] == 3

    run()


def test_random_flags_on_a_video(capsys, files, tmp_path_factory, vgg16):
    out_dir = tmp_path_factory.mktemp("vflags")

    @examples(3)
    @given(pairs=_flags(files, "video"))
    def run(pairs):
        out = out_dir / "out.mp4"
        out.write_bytes(SENTINEL)
        argv = [files["clip"], "--style", files["style"], *_argv(pairs), *BOUND["video"], "--size", "24", "--passes", "1",
                "-o", out]
        code, err = run_main(argv, capsys)
        _check(code, err, out)

    run()


def _mutated(data: bytes, how: str, where: float, junk: bytes) -> bytes:
    if how == "empty":
        return b""
    cut = int(len(data) * where)
    if how == "truncated":
        return data[:cut]
    return data[:cut] + junk + data[cut + len(junk):]  # bytes overwritten in the middle


@pytest.mark.parametrize("kind", ["png", "jpg", "gif", "mp4", "wav"])
def test_malformed_media(capsys, files, tmp_path_factory, vgg16, kind):
    source = {"png": files["content"], "jpg": files["content"].with_suffix(".jpg"),
              "gif": files["content"].with_suffix(".gif"), "mp4": files["clip"], "wav": files["wav"]}[kind]
    data = source.read_bytes()
    out_dir = tmp_path_factory.mktemp(f"media_{kind}")

    @examples(5)
    @given(how=st.sampled_from(["empty", "truncated", "overwritten"]), where=st.floats(0.0, 0.99),
           junk=st.binary(min_size=1, max_size=64), as_style=st.booleans())
    def run(how, where, junk, as_style):
        bad = out_dir / f"bad.{kind}"
        bad.write_bytes(_mutated(data, how, where, junk))
        if kind == "wav":
            out = out_dir / "out.wav"
            argv = [files["wav"], "--style-audio", bad] if as_style else [bad, "--style-audio", files["style_wav"]]
        else:
            out = out_dir / ("out.mp4" if kind == "mp4" else "out.png")
            argv = [bad, "--style", files["style"]] if not as_style or kind == "mp4" else \
                [files["content"], "--style", bad]
        out.write_bytes(SENTINEL)
        bound = BOUND["audio"] if kind == "wav" else [*BOUND["video" if kind == "mp4" else "image"], "--size", "24"]
        code, err = run_main([*argv, *bound, "-o", out], capsys)
        _check(code, err, out)

    run()


def test_interrupts_at_random_moments(files, tmp_path_factory, vgg16):
    out_dir = tmp_path_factory.mktemp("interrupts")
    env = cli_env(1)

    @examples(4)
    @given(delay=st.floats(0.0, 7.0), video=st.booleans())
    def run(delay, video):
        out = out_dir / ("out.mp4" if video else "out.png")
        out.write_bytes(SENTINEL)
        source = files["clip"] if video else files["content"]
        proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), str(source), "--style", str(files["style"]),
                                 *BOUND["video" if video else "image"], "--iterations", "4", "--network", "vgg16", "-o", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
        if proc.returncode == -signal.SIGINT:  # before the interpreter had started: the shell's 130, no line
            assert err == "" and out.read_bytes() == SENTINEL
            return
        _check(proc.returncode, err, out, allowed=(0, 130))

    run()


def test_sigterm_ends_a_job_like_an_interrupt(files, tmp_path):
    """kill, timeout and docker stop send SIGTERM: the one line, exit 143, the existing output and
    no lock or temporary file left behind."""
    out = tmp_path / "out.png"
    out.write_bytes(SENTINEL)
    proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), str(files["content"]), "--style", str(files["style"]),
                             *BOUND["image"], "--iterations", "100000", "--chunk", "10", "--network", "vgg16",
                             "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(1), cwd=ROOT)
    time.sleep(6)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    _check(proc.returncode, err, out, allowed=(143,))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
