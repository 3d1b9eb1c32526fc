"""Hardening: every bad input, busy output, odd photo and failing write gives one line and a non-zero
exit, before any work where it can be known, and no existing file changes."""

import dataclasses
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import jaxstyle.cli.image as image_job
from jaxstyle.io.files import OutputLock, temp_path
from jaxstyle.io.images import read_image, write_image
from jaxstyle.io.video import probe

from ..helpers import MEDIA, ROOT, SHALLOW, assert_one_line_error, cli_env, run_main

FAST = ["--iterations", "1", "--coarse-iterations", "1", "--start-size", "0", "--chunk", "1", "--quiet",
        "--network", "vgg16", *SHALLOW]
VFAST = [*FAST, "--video-iterations", "1", "--size", "24"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_second_job_to_the_same_output_refuses(capsys, images, tmp_path):
    out = tmp_path / "busy.png"
    out.write_bytes(b"the first job's")
    with OutputLock(out):  # a job that is writing it
        leftover = temp_path(out)
        leftover.write_bytes(b"the first job's temporary file")
        code, err = run_main([images["content"], "--style", images["style"], "-o", out, *FAST], capsys)
        assert_one_line_error(code, err, "another jaxstyle job", f"(pid {os.getpid()})", "busy.png")
        assert out.read_bytes() == b"the first job's" and leftover.exists()  # nothing of it touched
    leftover.unlink()


def test_a_frames_dir_is_held_by_one_job_and_kept_out_of_the_work_directory(capsys, images, tmp_path):
    """Two jobs writing one --frames-dir would overwrite and remove each other's frames; a --frames-dir
    in the work directory would go with it at the end."""
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "frame_000000.png").write_bytes(b"the first job's")
    video = [MEDIA / "video" / "realshort.mp4", "--style", images["style"], "-o", tmp_path / "v.mp4", *VFAST]
    with OutputLock(frames):  # a job that is writing into it
        assert_one_line_error(*run_main([*video, "--frames-dir", frames], capsys), "another jaxstyle job", "frames")
    assert (frames / "frame_000000.png").read_bytes() == b"the first job's" and not (tmp_path / "v.mp4").exists()
    for work, inside in [(tmp_path / "w", tmp_path / "w"), (tmp_path / "w2", tmp_path / "w2" / "frames")]:
        assert_one_line_error(*run_main([*video, "--work-dir", work, "--frames-dir", inside], capsys),
                              "inside the work directory")
        assert not work.exists() and not inside.exists()


def test_a_killed_jobs_lock_and_temporary_files_are_taken_over(capsys, images, tmp_path):
    out = tmp_path / "o.png"
    (tmp_path / ".o.png.jaxstyle-lock").write_text("999999999\n")  # no such process
    stale = [temp_path(out), temp_path(temp_path(out, "frames"))]
    for path in stale:
        path.write_bytes(b"left by a killed run")
    unrelated = tmp_path / ".o.png.notes"
    unrelated.write_text("mine")
    code, err = run_main([images["content"], "--style", images["style"], "-o", out, *FAST], capsys)
    assert code == 0, err
    assert "took over the lock" in err and "999999999" in err
    assert not any(p.exists() for p in stale) and unrelated.read_text() == "mine"
    assert not (tmp_path / ".o.png.jaxstyle-lock").exists()  # released


def test_outputs_get_ordinary_permissions(capsys, images, tmp_path):
    out, metrics = tmp_path / "o.png", tmp_path / "m.json"
    code, err = run_main([images["content"], "--style", images["style"], "-o", out, "--metrics-json", metrics, *FAST],
                         capsys)
    assert code == 0, err
    for path in (out, metrics):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask(), path
    os.chmod(out, 0o640)  # an overwrite keeps the file's own mode, as an ordinary write does
    write_image(out, np.zeros((4, 4, 3), np.float32))
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_an_output_that_is_a_link_stays_a_link(capsys, images, tmp_path):
    # As a plain write does: the link's target gets the new content, in the target's own folder
    # (the temporary file goes there, so the rename never crosses file systems).
    from fractions import Fraction

    from jaxstyle.io.audio import write_audio
    from jaxstyle.io.video import VideoWriter, probe

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    links = {}
    for name in ("o.png", "m.json", "a.wav", "v.mp4"):
        (elsewhere / name).write_bytes(b"old")
        links[name] = tmp_path / f"link_{name}"
        links[name].symlink_to(elsewhere / name)
    code, err = run_main([images["content"], "--style", images["style"], "-o", links["o.png"],
                          "--metrics-json", links["m.json"], *FAST], capsys)
    assert code == 0, err
    write_audio(links["a.wav"], np.zeros((800, 1), np.float32), 8000)
    with VideoWriter(links["v.mp4"], 32, 24, Fraction(10)) as writer:
        writer.write(np.zeros((2, 24, 32, 3), np.float32))
    for name, link in links.items():
        assert link.is_symlink() and (elsewhere / name).read_bytes() != b"old", name
    assert read_image(links["o.png"]).shape[-1] == 3 and probe(links["v.mp4"]).frame_count == 2
    assert sorted(p.name for p in elsewhere.iterdir()) == sorted(links)  # no temporary file left


@pytest.mark.parametrize("extra,needle", [
    (["-o", "/proc/x.png"], "cannot write into /proc"),
    (["--metrics-json", "/proc/m.json"], "--metrics-json"),
    (["--size", "100000"], "largest --size that fits"),
    (["--content-weight", "nan"], "--content-weight must be a finite number"),
    (["--style-weight", "-1"], "--style-weight must be >= 0"),
    (["--scale-factor", "nan"], "--scale-factor must be a finite number"),
    (["--temporal-weight", "inf"], "--temporal-weight must be a finite number"),
    (["--learning-rate", "-0.5"], "--learning-rate must be > 0"),
])
def test_bad_values_and_paths_fail_before_any_work(capsys, images, tmp_path, monkeypatch, extra, needle):
    def no_work(*a, **k):
        raise AssertionError("the work started")

    monkeypatch.setattr(image_job.schedules, "stylize", no_work)
    argv = [images["content"], "--style", images["style"], *FAST]
    if "-o" not in extra:
        argv += ["-o", tmp_path / "o.png"]
    assert_one_line_error(*run_main([*argv, *extra], capsys), needle)


def test_video_paths_and_values_fail_before_any_work(capsys, images, tmp_path):
    clip = MEDIA / "video" / "realshort.mp4"
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for extra, needle in [(["-o", "/proc/x.mp4"], "cannot write into /proc"),
                          (["--frames-dir", a_file], "--frames-dir"), (["--work-dir", a_file], "--work-dir"),
                          (["--quality", "99"], "--quality"), (["--start", "nan"], "--start"),
                          (["--duration", "-1"], "--duration"),
                          (["--style-audio", MEDIA / "audio" / "rain_texture.wav", "--duration", "0.1"], "too short")]:
        argv = [clip, "--style", images["style"], *VFAST, *extra]
        if "-o" not in extra:
            argv += ["-o", tmp_path / "v.mp4"]
        assert_one_line_error(*run_main(argv, capsys), needle)
        assert not (tmp_path / "v.mp4").exists() and not (tmp_path / ".v.mp4.jaxstyle-work").exists()
    assert a_file.read_text() == "x"


def test_an_input_named_as_a_frame_in_the_frames_dir_is_refused(capsys, images, tmp_path):
    """The run writes frame_NNNNNN.png into --frames-dir and removes those past its frames: an input
    there under such a name would be overwritten or deleted."""
    frames = tmp_path / "frames"
    frames.mkdir()
    style = frames / "frame_000050.png"
    shutil.copy(images["style"], style)
    argv = [MEDIA / "video" / "realshort.mp4", "--style", style, "-o", tmp_path / "v.mp4", "--frames-dir", frames, *VFAST]
    assert_one_line_error(*run_main(argv, capsys), "frame_000050.png", "--frames-dir")
    assert style.read_bytes() == Path(images["style"]).read_bytes() and not (tmp_path / "v.mp4").exists()
    link = tmp_path / "style.png"  # a link elsewhere to such a file: the same file
    link.symlink_to(style)
    argv[argv.index(style)] = link
    assert_one_line_error(*run_main(argv, capsys), "style.png", "--frames-dir")
    assert style.read_bytes() == Path(images["style"]).read_bytes()


def test_gif_output_says_the_sound_is_dropped(capsys, images, tmp_path):
    out = tmp_path / "v.gif"
    code, err = run_main([MEDIA / "video" / "realshort.mp4", "--style", images["style"], "-o", out, "--duration", "0.2",
                          *VFAST], capsys)
    assert code == 0, err
    assert "GIF has no sound track" in err and out.exists()


def test_an_internal_error_is_one_line_naming_its_log(capsys, images, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def broken(*a, **k):
        raise RuntimeError("something inside went wrong")

    monkeypatch.setattr(image_job.schedules, "stylize", broken)
    code, err = run_main([images["content"], "--style", images["style"], "-o", tmp_path / "o.png", *FAST], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and "Traceback" not in err
    assert lines[-1].startswith("jaxstyle: internal error: RuntimeError: something inside went wrong")
    log = lines[-1].rsplit("the traceback is in ", 1)[1]
    assert log.startswith(str(tmp_path / "cache")) and "Traceback" in open(log).read()


def test_photos_cmyk_16bit_and_exif(tmp_path):
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=95)  # red in CMYK
    np.testing.assert_allclose(read_image(tmp_path / "cmyk.jpg")[2, 3], [1, 0, 0], atol=0.02)
    deep = np.zeros((6, 8, 3), np.uint16)
    deep[..., 0], deep[..., 1], deep[..., 2] = 1000, 40000, 65535
    cv2.imwrite(str(tmp_path / "rgb16.png"), deep[..., ::-1])
    np.testing.assert_allclose(read_image(tmp_path / "rgb16.png")[0, 0] * 65535, [1000, 40000, 65535], atol=0.5)
    photo = Image.new("RGB", (8, 4), (255, 0, 0))
    photo.paste((0, 0, 255), (0, 0, 2, 4))   # blue on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6                          # "rotate 90 degrees clockwise to display"
    photo.save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    shown = read_image(tmp_path / "phone.jpg")
    assert shown.shape == (8, 4, 3)
    assert shown[0, 1, 2] > 0.8 and shown[0, 1, 0] < 0.2  # the left edge is now the top


def _cli(args, limit_kib=None, timeout=300):
    """The CLI in a child process; ``limit_kib`` caps the size of every file it writes (``ulimit -f``,
    as a full disk: a write past it fails with EFBIG, SIGXFSZ being ignored)."""
    env = cli_env(1)
    cmd = [sys.executable, str(ROOT / "cli.py"), *map(str, args)]
    if limit_kib:  # (the tests' compilation cache could not be written under the limit either)
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        cmd = ["bash", "-c", f"ulimit -f {limit_kib}; trap '' XFSZ; exec \"$@\"", "bash", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


def test_a_full_disk_during_the_writes(images, tmp_path, vgg16):  # (the weights are converted beforehand)
    """A file-size limit (as a full disk): one line, no partial output, an existing file kept; a
    video's work directory stays resumable and the resumed run finishes the same video."""
    out = tmp_path / "o.png"
    out.write_bytes(b"an earlier result")
    run = _cli([images["content"], "--style", images["style"], "-o", out, "--size", "160", *FAST], limit_kib=2)
    assert_one_line_error(run.returncode, run.stderr, "cannot write", "larger than allowed")
    assert out.read_bytes() == b"an earlier result" and not list(tmp_path.glob(".o.png.*"))
    clip = MEDIA / "video" / "realshort.mp4"
    video = [clip, "--style", images["style"], "--duration", "0.4", *VFAST]
    # a flow file of the work directory does not fit (the resumed run's frames equal an uninterrupted
    # run's: tests/video/test_video.py checks resuming itself)
    broken = _cli([*video, "-o", tmp_path / "v.mp4"], limit_kib=6)
    assert_one_line_error(broken.returncode, broken.stderr, "cannot write", "flows")
    assert not (tmp_path / "v.mp4").exists() and (tmp_path / ".v.mp4.jaxstyle-work" / "manifest.json").is_file()
    resumed = _cli([*video, "-o", tmp_path / "v.mp4", "--resume"])
    # scene-cut detection computes every flow before the first step, so no step was checkpointed yet
    assert resumed.returncode == 0 and "resuming the work directory" in resumed.stderr, resumed.stderr
    assert probe(tmp_path / "v.mp4").frame_count == 12
    # the final encode itself fails (the frames, flows and checkpoints fit under the limit)
    out = tmp_path / "w.mp4"
    out.write_bytes(b"an earlier video")
    broken = _cli([*video, "-o", out], limit_kib=12)
    assert_one_line_error(broken.returncode, broken.stderr, "w.mp4", "larger than allowed")
    assert out.read_bytes() == b"an earlier video" and not list(tmp_path.glob(".w.mp4.*.mp4"))
    resumed = _cli([*video, "-o", out, "--resume"])
    assert resumed.returncode == 0 and "resuming at step" in resumed.stderr, resumed.stderr


@pytest.mark.parametrize("extra,needle", [
    (["--size", "100000"], "largest --size that fits"),
    (["--size", "8"], "--size must be at least 16"),
    (["--out-dir", "{file}"], "is a file, not a directory"),
])
def test_example_checks_before_writing(capsys, tmp_path, extra, needle):
    """``example``'s flags are checked before it writes anything (its content and style included)."""
    (tmp_path / "file").write_text("x")
    extra = [a.replace("{file}", str(tmp_path / "file")) for a in extra]
    out = tmp_path / "ex"
    argv = ["example", "--quiet", *(["--out-dir", str(out)] if "--out-dir" not in extra else []), *extra]
    assert_one_line_error(*run_main(argv, capsys), needle)
    assert not out.exists() and (tmp_path / "file").read_text() == "x"


def test_memory_hint_names_frames_per_device_when_fewer_frames_fit(monkeypatch):
    """A batch that does not fit, whose frames would one by one, is told the --frames-per-device that
    fits (not a smaller --size); a short clip is planned with its own lane count."""
    from jaxstyle.config import StyleConfig
    from jaxstyle.errors import UserError
    from jaxstyle.schedules import memory
    from jaxstyle.video import frames_at_once

    config = StyleConfig(size=512, frames_per_device=16).resolved()
    need_4 = memory.estimate_bytes(StyleConfig(size=512, frames_per_device=4).resolved(), 512, 512, frames=4, devices=1)
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: int(need_4) + 1)  # 4 frames fit, 5 do not
    with pytest.raises(UserError, match=r"16 frames of 512x512 .* use --frames-per-device 4 "):
        memory.check_memory(config, 512, 512, frames=16, devices=1)
    memory.check_memory(config, 512, 512, frames=1, devices=1)  # one frame fits: no error
    assert frames_at_once(2, config, 1, 1) == 1        # 2 frames give one lane, however many are asked
    assert frames_at_once(200, config, 1, 1) == 16
    assert frames_at_once(200, dataclasses.replace(config, video=dataclasses.replace(config.video, sequential=True)),
                          1, 1) == 1
