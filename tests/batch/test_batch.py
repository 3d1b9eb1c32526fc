"""Batch jobs: items from a JSONL file or a folder, shape buckets (one compile per bucket), the
results index, failures recorded while the rest go on, resuming, and outputs equal to single runs."""

import json
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from jaxstyle import imaging
from jaxstyle.batch import BatchItem, ResultsIndex, batchable, expand_folder, group_buckets, output_names, read_jobs
from jaxstyle.config import StyleConfig
from jaxstyle.io.images import image_size, read_image

from ..helpers import MEDIA, ROOT, SHALLOW, assert_one_line_error, cli_env, free_port, run_main

FAST = ["--iterations", "2", "--coarse-iterations", "1", "--start-size", "0", "--chunk", "2", *SHALLOW]


def _write(path, image):
    iio.imwrite(path, imaging.to_uint8(image))
    return path


@pytest.fixture()
def folder(tmp_path, media):
    """Four contents of two aspect ratios and mixed sizes (two working shapes at --size 40), two styles."""
    photo = read_image(media / "content" / "tubingen.jpg")
    contents = tmp_path / "contents"
    contents.mkdir()
    for name, (h, w) in {"a": (30, 40), "b": (60, 80), "c": (40, 30), "d": (45, 60)}.items():
        _write(contents / f"{name}.png", imaging.resize(photo, h, w))
    styles = [_write(tmp_path / "starry.png", imaging.resize(read_image(media / "styles" / "starry_night.jpg"), 40, 50)),
              _write(tmp_path / "wave.png", imaging.resize(read_image(media / "styles" / "shipwreck.jpg"), 36, 48))]
    return contents, styles


def test_jobs_file_lines_become_items_and_bad_lines_failed_items(tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join([
        json.dumps({"content": "a.png", "style": "s.png"}),
        "# a comment",
        "",
        json.dumps({"content": "b.mp4", "style": ["s.png", "t.png"], "output": "b.mkv", "options": "--size 64 --fps 12"}),
        "{not json",
        json.dumps({"content": "c.png"}),
        json.dumps({"content": "c.png", "style": "s.png", "colour": "red"}),
        json.dumps({"content": "d.png", "style": "s.png", "options": "--size \"64"}),
    ]))
    items = read_jobs(jobs)
    assert len(items) == 6 and [i.index for i in items] == list(range(6))
    assert items[5].problem == 'jobs.jsonl:8: "options": No closing quotation'
    assert items[0].content == tmp_path / "a.png" and items[0].styles == (tmp_path / "s.png",) and items[0].kind == "image"
    assert items[1].kind == "video" and items[1].options == ("--size", "64", "--fps", "12")
    assert items[2].problem.startswith("jobs.jsonl:5: not valid JSON")
    assert "\"style\"" in items[3].problem and "unknown key(s) colour" in items[4].problem
    # the options' input paths are relative to the jobs file too; their words stay words
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "jobs.jsonl").write_text("\ufeff" + json.dumps({"content": "a.png", "style": "s.png", "options": [
        "--content-mask", "m.png", "--style-mask=x.png,/abs/y.png", "--init", "noise", "--network", "vgg16",
        "--style-audio", "t.wav", "--size", "64"]}) + "\n" + json.dumps({"content": "b.png", "style": "s.png",
        "output": str(sub / "m.png"), "options": "--network ~/w.pth --content-m=c.png"}) + "\n")  # (a byte-order mark first, as some editors write)
    moved, masked = read_jobs(sub / "jobs.jsonl")
    assert moved.problem is None and moved.options == (
        "--content-mask", str(sub / "m.png"), f"--style-mask={sub / 'x.png'},/abs/y.png", "--init", "noise",
        "--network", "vgg16", "--style-audio", str(sub / "t.wav"), "--size", "64")
    assert masked.options == ("--network", "~/w.pth", f"--content-m={sub / 'c.png'}")  # (~: expanded where it loads)
    # an output that is a file another item's options read (its content mask) is refused too
    assert "is an input of jobs.jsonl:1" in output_names([moved, masked], sub / "out")[1].problem
    named = output_names(items, tmp_path / "out")
    assert named[0].output == tmp_path / "out" / "a_s.png" and named[1].output == tmp_path / "out" / "b.mkv"
    assert named[1].argv(["--preset", "fast"])[-6:] == ["--quiet", "--preset", "fast", "--size", "64", "--fps", "12"][-6:]


def test_folder_times_styles_and_colliding_names(tmp_path):
    (tmp_path / "x").mkdir()
    for name in ("p.jpg", "q.png", "notes.txt"):
        (tmp_path / "x" / name).write_bytes(b"")
    items = expand_folder(str(tmp_path / "x"), ["s1.png", "s2.png"])
    assert [(i.content.name, i.styles[0].name) for i in items] == [("p.jpg", "s1.png"), ("p.jpg", "s2.png"),
                                                                   ("q.png", "s1.png"), ("q.png", "s2.png")]
    same = [BatchItem(0, tmp_path / "1" / "a.png", (tmp_path / "s.png",)),
            BatchItem(1, tmp_path / "2" / "a.png", (tmp_path / "s.png",)),
            BatchItem(2, tmp_path / "3" / "b.png", (tmp_path / "s.png",), output=tmp_path / "o" / "a_s.png")]
    named = output_names(same, tmp_path / "o")
    assert [n.output.name for n in named[:2]] == ["a_s.png", "a_s-2.png"]
    assert "also an earlier item's output" in named[2].problem
    # an output that is another item's input (whichever runs first) or its own, and a generated
    # name that would be an input
    reads = [BatchItem(0, tmp_path / "in" / "a.png", (tmp_path / "s.png",), output=tmp_path / "in" / "b.png",
                       where="jobs.jsonl:1"),
             BatchItem(1, tmp_path / "in" / "b.png", (tmp_path / "s.png",), where="jobs.jsonl:2"),
             BatchItem(2, tmp_path / "in" / "c.png", (tmp_path / "s.png",), output=tmp_path / "s.png", where="jobs.jsonl:3"),
             BatchItem(3, tmp_path / "o" / "d_s.png", (tmp_path / "s.png",), where="jobs.jsonl:4"),
             BatchItem(4, tmp_path / "in" / "d.png", (tmp_path / "s.png",), where="jobs.jsonl:5")]
    named = output_names(reads, tmp_path / "o")
    assert named[0].problem == f"jobs.jsonl:1: output {tmp_path / 'in' / 'b.png'} is an input of jobs.jsonl:2"
    assert named[1].problem is None and "is an input of jobs.jsonl:1" in named[2].problem
    assert named[3].problem is None and named[4].output.name == "d_s-2.png" and named[4].problem is None
    # long content and style names make a name the file system takes, still one per pair
    long = [BatchItem(0, tmp_path / ("é" * 100 + ".png"), (tmp_path / ("s" * 100 + ".png"),)),
            BatchItem(1, tmp_path / ("é" * 100 + ".png"), (tmp_path / ("s" * 101 + ".png"),))]
    names = [n.output.name for n in output_names(long, tmp_path / "o")]
    assert names[0] != names[1] and all(len(name.encode()) <= 124 and name.endswith(".png") for name in names)


def test_buckets_group_by_shape_and_settings_and_split_by_size():
    cfg = StyleConfig().resolved()
    other = StyleConfig(style_weight=3.0).resolved()
    entries = [((30, 40), cfg, "a"), ((40, 30), cfg, "b"), ((30, 40), cfg, "c"), ((30, 40), other, "d"),
               ((30, 40), cfg, "e")]
    buckets = group_buckets(entries, max_items=2)
    assert [(b.name, b.items) for b in buckets] == [("40x30", ["a", "c"]), ("40x30", ["e"]), ("30x40", ["b"]),
                                                    ("40x30", ["d"])]
    assert batchable(cfg, 30, 40, 1) and not batchable(cfg, 30, 40, 2)
    assert not batchable(StyleConfig(init="noise").resolved(), 30, 40, 1)
    assert not batchable(StyleConfig(preserve_colors="luminance").resolved(), 30, 40, 1)


def test_results_index_keeps_the_last_record_and_survives_a_cut_line(tmp_path):
    out = tmp_path / "o.png"
    out.write_bytes(b"x")
    index = ResultsIndex(tmp_path)
    index.append({"item": 0, "key": "k", "status": "failed", "output": str(out)})
    index.append({"item": 1, "key": "k", "status": "ok", "output": str(tmp_path / "missing.png")})
    index.append({"item": 0, "key": "k", "status": "ok", "output": str(out)})
    with open(index.path, "a") as handle:
        handle.write('{"item": 2, "sta')  # a kill in the middle of a line
    again = ResultsIndex(tmp_path)
    assert again.finished(0, "k") and not again.finished(0, "other") and not again.finished(1, "k")
    kept = again.compact([2, 1, 0])
    assert [r["item"] for r in kept] == [1, 0] and len(again.path.read_text().splitlines()) == 2


def test_image_size_reads_the_header_with_exif_orientation(tmp_path):
    from PIL import Image
    path = tmp_path / "turned.jpg"
    image = Image.fromarray(np.zeros((20, 30, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(path, exif=exif)
    assert image_size(path) == (30, 20) == read_image(path).shape[:2]


def test_a_batch_job_buckets_records_failures_resumes_and_matches_single_runs(capsys, tmp_path, folder):
    contents, styles = folder
    out = tmp_path / "out"
    argv = ["batch", "--contents", contents, "--styles", ",".join(map(str, styles)), "--out-dir", out, "--size", "40",
            *FAST, "--quiet"]
    code, err = run_main(argv, capsys)
    assert code == 0, err
    # a, b, d are 4:3 (40x30), c is 3:4: two buckets of shapes, 8 items, one compile per bucket
    assert "8 image(s) in 2 bucket(s) (40x30 x6, 30x40 x2)" in err, err
    assert "8 done, 0 failed" in err and "2 compile(s)" in err, err
    records = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert [r["item"] for r in records] == list(range(8)) and {r["status"] for r in records} == {"ok"}
    assert all(np.isfinite(r["metrics"]["final"]["total"]) for r in records)
    assert read_image(out / "b_starry.png").shape == (30, 40, 3) and read_image(out / "c_wave.png").shape == (40, 30, 3)

    # the same item as a command of its own gives the same picture (each frame has its own optimizer)
    single = tmp_path / "single.png"
    code, err = run_main([contents / "b.png", "--style", styles[0], "-o", single, "--size", "40", *FAST, "--quiet"],
                         capsys)
    assert code == 0, err
    diff = np.abs(iio.imread(single).astype(int) - iio.imread(out / "b_starry.png").astype(int))
    assert diff.max() <= 2, diff.max()

    # a rerun does nothing again; a new broken item fails alone, with its reason, and the job says so
    (contents / "e.png").write_bytes(b"not a png")
    code, err = run_main(argv, capsys)
    assert_one_line_error(code, err, "2 of 10 item(s) failed", "index.jsonl")
    assert "8 item(s) already done" in err, err
    records = {r["item"]: r for r in map(json.loads, (out / "index.jsonl").read_text().splitlines())}
    assert len(records) == 10 and records[8]["status"] == "failed" and "cannot read" in records[8]["error"]
    assert not (out / "e_starry.png").exists()


def test_a_jobs_file_with_a_video_a_blend_and_bad_items(capsys, tmp_path, folder):
    contents, styles = folder
    jobs = tmp_path / "jobs.jsonl"
    clip = MEDIA / "video" / "realshort.mp4"
    jobs.write_text("\n".join(json.dumps(line) for line in [
        {"content": str(contents / "a.png"), "style": [str(s) for s in styles], "options": "--style-weights 3,1"},
        {"content": str(clip), "style": str(styles[0]), "output": "clip.mp4",
         "options": ["--duration", "0.2", "--video-iterations", "1", "--size", "24"]},
        {"content": str(contents / "a.png"), "style": str(tmp_path / "missing.png")},
        {"content": str(contents / "a.png"), "style": str(styles[0]), "options": "--size -5"},
        {"content": str(contents / "a.png"), "style": str(styles[0]), "options": "--quality 30"},
        # an item's files are its keys: options that name files would go where the index does not say
        {"content": str(contents / "a.png"), "style": str(styles[0]), "output": "b.png",
         "options": ["-o", str(tmp_path / "elsewhere.png"), "--style", str(styles[1]), "--metrics", "m.json"]},
        {"content": str(MEDIA / "audio" / "speech.wav"), "style": str(styles[0])},  # a picture for a sound
    ]))
    out = tmp_path / "out"
    code, err = run_main(["batch", jobs, "--out-dir", out, "--size", "40", *FAST, "--quiet"], capsys)
    # (the video item logs its "stability error" line, so only the last line is checked here)
    assert code == 2 and "Traceback" not in err and err.strip().splitlines()[-1].startswith(
        "jaxstyle: error: 5 of 7 item(s) failed"), err
    records = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "ok", "failed", "failed", "failed", "failed", "failed"], records
    assert "speech.wav is a sound file, and its style" in records[6]["error"]
    assert records[5]["error"].startswith("--output, --style, --metrics-json in \"options\": an item's files")
    assert not (tmp_path / "elsewhere.png").exists() and not (out / "b.png").exists()
    assert "missing.png does not exist" in records[2]["error"] and "--size" in records[3]["error"]
    # the job's --video-iterations was for its video; an image item's own video flag is refused
    assert records[4]["error"] == "--quality applies to a video CONTENT only, and a.png is an image"
    assert records[1]["metrics"]["frames"] == 6 and (out / "clip.mp4").is_file()
    assert read_image(out / "a_starry_blend.png").shape == (30, 40, 3)
    assert not list(out.glob(".jaxstyle-batch-metrics"))


@pytest.mark.parametrize("argv,needle", [
    (["--out-dir", "{tmp}/o"], "give either a JOBS.jsonl"),
    (["{tmp}/none.jsonl", "--out-dir", "{tmp}/o"], "does not exist"),
    (["--contents", "{tmp}", "--styles", "{tmp}/s.png", "--out-dir", "{tmp}/o", "--output", "x.png"], "per item"),
    (["--contents", "{tmp}", "--styles", "{tmp}/s.png", "--out-dir", "{tmp}/o", "--out", "x.png"], "per item"),
    (["--contents", "{tmp}", "--styles", "{tmp}/s.png", "--out-dir", "{tmp}"], "a rerun would stylize the outputs"),
    (["--contents", "{tmp}", "--styles", "{tmp}/s.png", "--out-dir", "{tmp}/o", "--frames-dir", "{tmp}/f"],
     "--frames-dir applies to one item's files"),
    (["--contents", "{tmp}", "--model", "{tmp}/m", "--out-dir", "{tmp}/o", "--iterations", "5"],
     "--iterations applies to the optimizer"),
    (["--contents", "{tmp}", "--styles", "{tmp}/s.png", "--out-dir", "{tmp}/o", "--iterations", "-1"], "--iterations"),
    (["--contents", "{tmp}/empty", "--styles", "{tmp}/s.png", "--out-dir", "{tmp}/o"], "no image, video or sound"),
    (["--contents", "{tmp}", "--styles", "{tmp}/s.png,{tmp}/none.png", "--out-dir", "{tmp}/o"], "none.png does not exist"),
])
def test_bad_job_flags_end_the_job_before_any_item(capsys, tmp_path, argv, needle):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a.png").write_bytes(b"")  # (a content file name: the job ends before reading it)
    (tmp_path / "s.png").write_bytes(b"")
    code, err = run_main(["batch", *[a.format(tmp=tmp_path) for a in argv]], capsys)
    assert_one_line_error(code, err, needle)


def test_video_flags_for_a_job_without_a_video_end_it_before_any_item(capsys, tmp_path, folder):
    contents, styles = folder
    out = tmp_path / "out"
    code, err = run_main(["batch", "--contents", contents, "--styles", styles[0], "--out-dir", out,
                          "--quality", "30", "--keep-work"], capsys)
    assert_one_line_error(code, err, "--quality, --keep-work apply to a video CONTENT only, and the job has no video")
    code, err = run_main(["batch", "--contents", contents, "--styles", styles[0], "--out-dir", out,
                          "--start", "1"], capsys)  # (a sound would take it; the job has none)
    assert_one_line_error(code, err, "--start applies to a video or sound CONTENT only, and the job has no video or sound")
    code, err = run_main(["batch", "--contents", contents, "--styles", styles[0], "--out-dir", out,
                          "--audio-iterations", "3"], capsys)
    assert_one_line_error(code, err, "--audio-iterations applies to a sound being stylized only", "the job has no sound")
    assert not out.exists()


def _batch_process(argv, devices: int, log):
    env = cli_env(devices)
    return subprocess.Popen([sys.executable, "-m", "jaxstyle", "batch", *map(str, argv)], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(log, "w"))


def test_two_processes_share_every_bucket_and_match_one_process(capsys, tmp_path, folder, vgg16):
    """2 processes with 2 fake devices each: each bucket's images are split over them and optimized
    as one program over the 4 devices; outputs and index equal a one-process job (this process's
    8 fake devices)."""
    contents, styles = folder
    job = ["--contents", contents, "--styles", ",".join(map(str, styles)), "--size", "40", *FAST, "--quiet"]
    port = free_port()
    procs = [_batch_process([*job, "--out-dir", tmp_path / "multi", "--coordinator", f"127.0.0.1:{port}",
                             "--num-processes", "2", "--process-id", str(i)], 2, tmp_path / f"p{i}.log")
             for i in range(2)]
    code, err = run_main(["batch", *job, "--out-dir", tmp_path / "single"], capsys)  # meanwhile, in this process
    for proc in procs:
        proc.wait(timeout=300)
    logs = [(tmp_path / name).read_text() for name in ("p0.log", "p1.log")]
    assert code == 0 and [p.returncode for p in procs] == [0, 0], (err, logs)
    assert "8 image(s) in 2 bucket(s)" in logs[0] and "2 processes" in logs[0] and "8 done, 0 failed" in logs[0]
    records = [json.loads(line) for line in (tmp_path / "multi" / "index.jsonl").read_text().splitlines()]
    assert [r["item"] for r in records] == list(range(8)) and {r["status"] for r in records} == {"ok"}
    assert not list((tmp_path / "multi").glob("index.p*.jsonl"))  # the parts were merged
    assert {r["metrics"]["devices"] for r in records} == {4}
    names = sorted(p.name for p in (tmp_path / "single").glob("*.png"))
    diffs = [int(np.abs(iio.imread(tmp_path / "multi" / n).astype(int) - iio.imread(tmp_path / "single" / n).astype(int))
                 .max()) for n in names]
    print(f"two processes vs one, per image: max difference {diffs} levels")
    assert len(names) == 8 and max(diffs) <= 1, diffs


def test_an_item_that_fills_the_disk_records_the_disk_not_an_internal_error():
    import errno

    from jaxstyle.cli.batch import _reason
    assert _reason(OSError(errno.ENOSPC, "No space left on device", "o/a.png")) == \
        "cannot write o/a.png: no space left on the device"
    assert _reason(OSError(errno.ENAMETOOLONG, "File name too long", "o/" + "a" * 300)).startswith(
        "the file name is too long: o/aaa")
    assert _reason(OSError(errno.EBADF, "Bad file descriptor")).startswith("internal error:")
