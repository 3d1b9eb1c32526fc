"""Tests for jaxstyle.io.video (streaming video I/O through imageio-ffmpeg's ffmpeg).

All generated media is tiny (<= 64x48 px, <= 36 frames) so the file runs in a few seconds.
"""

from __future__ import annotations

import os
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from jaxstyle.errors import UserError
from jaxstyle.io import video as vio

from ..helpers import FF, MEDIA, packet_crcs

REAL = MEDIA / "video" / "realshort.mp4"


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def ff(*args: str) -> None:
    """Run the bundled ffmpeg quietly; fail the test if it fails."""
    res = subprocess.run(
        [FF, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert res.returncode == 0, res.stderr.decode()


def make_clip(
    path: Path,
    size: str = "32x24",
    rate: str = "30",
    seconds: float = 1.0,
    audio: bool = True,
    vcodec: tuple[str, ...] = ("-c:v", "libx264", "-pix_fmt", "yuv444p", "-preset", "ultrafast"),
    acodec: tuple[str, ...] = ("-c:a", "aac"),
    sample_rate: int = 44100,
) -> Path:
    args = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={sample_rate}"]
    args += ["-t", str(seconds), "-map", "0:v"]
    if audio:
        args += ["-map", "1:a", *acodec]
    args += [*vcodec, str(path)]
    ff(*args)
    return path


def audio_seconds(path: Path, stream: int = 0) -> float:
    """Decoded length of one audio stream, by counting PCM samples."""
    res = subprocess.run(
        [FF, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path),
         "-map", f"0:a:{stream}", "-ac", "1", "-ar", "48000", "-f", "s16le", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert res.returncode == 0, res.stderr.decode()
    return len(res.stdout) / 2 / 48000


def child_processes() -> list[tuple[int, str, str]]:
    """(pid, command name, state) of every child of this process, zombies included."""
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == me:
            out.append((int(entry), name, fields[0]))
    return out


def read_all(path: Path, info: vio.VideoInfo | None = None, **kw) -> np.ndarray:
    frames = list(vio.iter_frames(path, info, **kw))
    return np.stack(frames)


def write_all(path: Path, frames: np.ndarray, fps: Fraction, **kw) -> None:
    with vio.VideoWriter(path, frames.shape[2], frames.shape[1], fps, **kw) as vw:
        vw.write(frames)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def real_info() -> vio.VideoInfo:
    assert REAL.is_file(), f"missing test clip {REAL}"
    return vio.probe(REAL)


# ------------------------------------------------------------------------------------------------
# probing
# ------------------------------------------------------------------------------------------------


def test_probe_real_clip(real_info: vio.VideoInfo) -> None:
    info = real_info
    assert (info.width, info.height) == (320, 240)
    assert info.fps == Fraction(1501, 50)
    assert isinstance(info.fps, Fraction)
    assert info.frame_count == 36
    assert info.duration == pytest.approx(1.2, abs=0.01)
    assert not info.has_alpha and not info.is_still and not info.variable_frame_rate
    assert info.num_audio_streams == 1
    (a,) = info.audio
    assert (a.codec, a.sample_rate, a.channels) == ("aac", 48000, 1)
    assert vio.audio_streams(REAL) == info.audio
    with pytest.raises(Exception):
        info.width = 1  # type: ignore[misc]  # frozen


def test_probe_ntsc_rate_and_audio_streams(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "ntsc.mkv", rate="30000/1001", seconds=0.5)
    info = vio.probe(clip)
    assert info.fps == Fraction(30000, 1001)
    assert info.frame_count == 15
    assert (info.width, info.height) == (32, 24)
    assert [(a.codec, a.sample_rate, a.channels) for a in info.audio] == [("aac", 44100, 1)]


def test_still_image_and_alpha(tmp_path: Path) -> None:
    png = tmp_path / "still.png"
    ff("-f", "lavfi", "-i", "testsrc2=size=32x24", "-frames:v", "1", str(png))
    info = vio.probe(png)
    assert info.is_still and info.frame_count == 1 and not info.has_alpha
    frames = read_all(png, info)
    assert frames.shape == (1, 24, 32, 3)

    clear = tmp_path / "clear.png"  # fully transparent red
    ff("-f", "lavfi", "-i", "color=c=red@0.0:size=33x21,format=rgba", "-frames:v", "1", str(clear))
    info = vio.probe(clear)
    assert info.has_alpha
    assert np.allclose(read_all(clear, info), 0.0)  # over black by default
    assert np.allclose(read_all(clear, info, background=1.0), 1.0)


@pytest.mark.parametrize("kind", ["missing", "corrupt", "zero_frames", "audio_only", "empty"])
def test_bad_inputs_raise_user_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.mp4"
    if kind == "corrupt":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "zero_frames":
        path = tmp_path / "zero.y4m"  # a valid video stream header with no frames
        path.write_bytes(b"YUV4MPEG2 W32 H24 F30:1 Ip A1:1 C420jpeg\n")
    elif kind == "audio_only":
        path = tmp_path / "audio_only.m4a"
        ff("-f", "lavfi", "-i", "sine=duration=0.2", "-c:a", "aac", str(path))
    elif kind == "empty":
        path.write_bytes(b"")
    with pytest.raises(UserError) as exc:
        vio.probe(path)
    assert str(path) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_bad_segment_and_output_args(tmp_path: Path, real_info: vio.VideoInfo) -> None:
    with pytest.raises(UserError, match="at or past the end"):
        next(vio.iter_frames(REAL, real_info, start=5.0))
    # before the end, but nearer to it than to the last frame (a start goes to the nearest frame):
    # the message says so and names a start that works
    last = float(Fraction(real_info.frame_count - 1) / real_info.fps)
    late = (last + real_info.duration) / 2 + 0.001
    with pytest.raises(UserError, match=r"nearer the end .* than its last frame .*; use --start ") as caught:
        next(vio.iter_frames(REAL, real_info, start=late))
    suggested = float(str(caught.value).rsplit("--start ", 1)[1].split()[0])
    assert vio.expected_frame_count(real_info, suggested) == 1
    with pytest.raises(UserError):
        next(vio.iter_frames(REAL, real_info, duration=0.0))
    with pytest.raises(UserError):
        vio.VideoWriter(tmp_path / "out.xyz", 32, 24, Fraction(30))
    with pytest.raises(UserError):
        vio.VideoWriter(tmp_path / "no_such_dir" / "out.mp4", 32, 24, Fraction(30))
    with pytest.raises(UserError):
        vio.VideoWriter(tmp_path / "out.mp4", 32, 24, Fraction(30), audio_from=tmp_path / "nope.mp4")
    assert os.listdir(tmp_path) == []


def test_a_cut_short_mp4_is_refused_not_read_as_variable_rate(tmp_path: Path) -> None:
    # Index first (faststart), data cut in half: a stopped recording or a broken download.
    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    ff("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-t", "2", "-c:v", "libx264", "-movflags", "+faststart",
       str(whole))
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert vio.probe(whole).frame_count == 50 and not vio.probe(whole).variable_frame_rate
    with pytest.raises(UserError, match="is cut short.*only [0-9]+ frames are readable"):
        vio.probe(cut)


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------


def test_iter_frames_shapes_batches_and_scaling(real_info: vio.VideoInfo) -> None:
    frames = read_all(REAL, real_info)
    assert frames.shape == (36, 240, 320, 3)
    assert frames.dtype == np.float32
    assert 0.0 <= frames.min() and frames.max() <= 1.0 and frames.std() > 0.01

    batches = list(vio.iter_frames(REAL, real_info, batch=8))
    assert [b.shape[0] for b in batches] == [8, 8, 8, 8, 4]
    assert np.array_equal(np.concatenate(batches), frames)

    small = list(vio.iter_frames(REAL, real_info, size=(33, 21), batch=100))
    assert len(small) == 1 and small[0].shape == (36, 21, 33, 3)
    assert vio.expected_frame_count(real_info) == 36


def test_iter_frames_closed_early_leaves_no_process(real_info: vio.VideoInfo) -> None:
    before = {pid for pid, _, _ in child_processes()}
    gen = vio.iter_frames(REAL, real_info)
    next(gen)
    running = [c for c in child_processes() if c[0] not in before]
    assert any("ffmpeg" in name for _, name, _ in running), running
    gen.close()
    after = [c for c in child_processes() if c[0] not in before]
    assert after == [], f"leftover (possibly zombie) children: {after}"

    gen = vio.iter_frames(REAL, real_info, batch=4)
    next(gen)
    del gen  # garbage collection closes it too
    assert [c for c in child_processes() if c[0] not in before] == []


def test_segment_frames_are_aligned(tmp_path: Path) -> None:
    # Frame k is a flat gray of level 8k, so every frame can be identified after decoding.
    levels = np.arange(30, dtype=np.float32) * 8 / 255
    frames = np.broadcast_to(levels[:, None, None, None], (30, 24, 32, 3)).copy()
    clip = tmp_path / "gray.mp4"
    write_all(clip, frames, Fraction(30), quality=0)
    info = vio.probe(clip)
    assert info.frame_count == 30 and info.fps == 30

    got = read_all(clip, info, start=10 / 30, duration=5 / 30)
    assert got.shape[0] == 5 == vio.expected_frame_count(info, 10 / 30, 5 / 30)
    assert np.allclose(got.mean(axis=(1, 2, 3)), levels[10:15], atol=2 / 255)

    tail = read_all(clip, info, start=0.5)
    assert tail.shape[0] == 15 == vio.expected_frame_count(info, 0.5)
    assert np.allclose(tail.mean(axis=(1, 2, 3)), levels[15:], atol=2 / 255)


def test_variable_frame_rate_is_resampled_to_average_rate(tmp_path: Path) -> None:
    # 20 identifiable flat-gray frames (level 12k); retimed to 10 frames at 30 fps followed by
    # 10 frames at 10 fps, so reading at the average rate must drop early and repeat late frames.
    levels = np.arange(20, dtype=np.float32) * 12 / 255
    cfr = tmp_path / "gray.mp4"
    write_all(cfr, np.broadcast_to(levels[:, None, None, None], (20, 24, 32, 3)), Fraction(30), quality=0)
    vfr = tmp_path / "vfr.mp4"
    ff("-i", str(cfr), "-vf", "settb=1/1000,setpts='if(lt(N,10),N/30,1/3+(N-10)/10)/TB'",
       "-fps_mode", "passthrough", "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", str(vfr))
    info = vio.probe(vfr)
    assert info.variable_frame_rate
    assert info.frame_count == 20
    # last frame lasts its nominal 1/30 s: 1/3 + 9/10 + 1/30
    assert info.duration == pytest.approx(19 / 15, abs=0.002)
    assert float(info.fps) == pytest.approx(20 / info.duration, rel=0.002)
    frames = read_all(vfr, info)
    assert frames.shape[0] == vio.expected_frame_count(info) == round(info.duration * info.fps)
    idx = np.rint(frames.mean(axis=(1, 2, 3)) * 255 / 12).astype(int)
    assert np.all(np.diff(idx) >= 0), idx
    assert len(set(idx[idx < 10])) < 10, idx  # fast part: frames dropped
    assert np.bincount(idx[idx >= 10]).max() >= 2, idx  # slow part: frames repeated

    out = tmp_path / "cfr_out.mp4"
    write_all(out, frames, info.fps)
    back = vio.probe(out)
    assert not back.variable_frame_rate
    assert back.fps == info.fps and back.frame_count == frames.shape[0]


# ------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------


def test_round_trip_real_clip_with_audio(tmp_path: Path, real_info: vio.VideoInfo) -> None:
    out = tmp_path / "out.mp4"
    with vio.VideoWriter(out, real_info.width, real_info.height, real_info.fps, audio_from=REAL) as vw:
        for batch in vio.iter_frames(REAL, real_info, batch=8):
            vw.write(batch)
    info = vio.probe(out)
    assert (info.width, info.height, info.frame_count) == (320, 240, 36)
    assert info.fps == Fraction(1501, 50)
    assert [(a.codec, a.sample_rate, a.channels) for a in info.audio] == [("aac", 48000, 1)]
    assert abs(audio_seconds(out) - audio_seconds(REAL)) <= 1 / float(real_info.fps)
    # AAC fits in mp4, so it must have been copied bit for bit.
    assert packet_crcs(out, "0:a:0") == packet_crcs(REAL, "0:a:0")
    assert sorted(os.listdir(tmp_path)) == ["out.mp4"]


@pytest.mark.parametrize(
    "ext, vcodec, acodec",
    [
        (".mov", "h264", "aac"),
        (".mkv", "h264", "aac"),
        (".webm", "vp9", "opus"),
        (".avi", "mjpeg", "pcm_s16le"),
    ],
)
def test_containers_ntsc_rate_with_audio(tmp_path: Path, ext: str, vcodec: str, acodec: str) -> None:
    clip = make_clip(tmp_path / "in.mp4", rate="30000/1001", seconds=0.6, sample_rate=48000)
    info = vio.probe(clip)
    assert info.fps == Fraction(30000, 1001) and info.frame_count == 18
    out = tmp_path / f"out{ext}"
    write_all(out, read_all(clip, info), info.fps, audio_from=clip)
    got = vio.probe(out)
    assert (got.width, got.height, got.frame_count) == (32, 24, 18)
    assert got.fps == Fraction(30000, 1001)
    assert got.codec == vcodec
    assert [a.codec for a in got.audio] == [acodec]
    assert abs(audio_seconds(out) - audio_seconds(clip)) <= 1001 / 30000


def test_odd_size_keeps_exact_size(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "odd.mp4", size="33x21", seconds=0.3, audio=False)
    info = vio.probe(clip)
    assert (info.width, info.height) == (33, 21)
    frames = read_all(clip, info)
    assert frames.shape == (9, 21, 33, 3)
    for ext in (".mp4", ".webm"):
        out = tmp_path / f"odd_out{ext}"
        write_all(out, frames, info.fps)
        got = vio.probe(out)
        assert (got.width, got.height, got.frame_count) == (33, 21, 9)
        assert read_all(out, got).shape == (9, 21, 33, 3)
    assert vio.probe(tmp_path / "odd_out.mp4").pix_fmt == "yuv444p"


def test_pixel_aspect_and_language_are_kept(tmp_path: Path, real_info: vio.VideoInfo) -> None:
    """Anamorphic video (non-square pixels, as in the 'carphone' clip) displays at its own aspect
    only if the output carries the same pixel aspect; the video stream's language tag goes along."""
    assert real_info.language == "eng" and real_info.sample_aspect == 1
    src = tmp_path / "anamorphic.mp4"
    make_clip(src, size="32x24", seconds=0.2, vcodec=("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
                                                     "yuv444p", "-vf", "setsar=r=128/117:max=1000", "-metadata:s:v:0",
                                                     "language=fra"))
    info = vio.probe(src)
    assert (info.sample_aspect, info.language, info.width) == (Fraction(128, 117), "fra", 32)
    frames = read_all(src, info)
    for ext, audio_from in ((".mp4", src), (".mkv", None), (".webm", src)):  # with and without the audio mux
        out = tmp_path / f"out{ext}"
        write_all(out, frames, info.fps, audio_from=audio_from, sample_aspect=info.sample_aspect,
                  language=info.language)
        got = vio.probe(out)
        assert (got.language, got.width, got.height) == ("fra", 32, 24), ext
        if ext == ".webm":  # WebM stores a whole display width (35 px for 32 x 128/117): the nearest aspect
            assert got.sample_aspect == Fraction(35, 32)
        else:
            assert got.sample_aspect == Fraction(128, 117), ext
    write_all(tmp_path / "plain.mp4", frames, info.fps)
    assert vio.probe(tmp_path / "plain.mp4").sample_aspect == 1


def test_file_metadata_is_kept_but_not_the_muxers_own(tmp_path: Path) -> None:
    """A source's title, comment (over two lines) and creation time go into the output, with and
    without the audio mux; the source muxer's own tags (major_brand, ...) do not."""
    src = tmp_path / "tagged.mp4"
    make_clip(src, seconds=0.2, vcodec=("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p",
                                       "-metadata", "title=Hello, world: a=b", "-metadata", "comment=line one\nline two",
                                       "-metadata", "creation_time=2020-01-02T03:04:05.000000Z"))
    info = vio.probe(src)
    tags = dict(info.tags)
    assert tags["title"] == "Hello, world: a=b" and tags["comment"] == "line one\nline two"
    assert tags["major_brand"] == "isom"
    frames = read_all(src, info)
    for name, audio_from in (("out.mp4", None), ("out.mkv", src)):
        out = tmp_path / name
        write_all(out, frames, info.fps, audio_from=audio_from, tags=info.tags)
        got = {k.lower(): v for k, v in vio.probe(out).tags}
        assert got["title"] == "Hello, world: a=b" and got["comment"] == "line one\nline two", name
        assert got["creation_time"].startswith("2020-01-02T03:04:05"), name
    assert "major_brand" not in {k.lower() for k, _ in vio.probe(tmp_path / "out.mkv").tags}
    write_all(tmp_path / "plain.mp4", frames, info.fps)
    assert "title" not in dict(vio.probe(tmp_path / "plain.mp4").tags)


def test_no_audio_input_or_no_audio_option(tmp_path: Path, real_info: vio.VideoInfo) -> None:
    silent = make_clip(tmp_path / "silent.mp4", seconds=0.3, audio=False)
    info = vio.probe(silent)
    assert info.audio == ()
    out = tmp_path / "out.mp4"
    write_all(out, read_all(silent, info), info.fps, audio_from=silent)
    assert vio.probe(out).audio == ()

    frames = read_all(REAL, real_info, size=(32, 24), duration=0.2)
    out2 = tmp_path / "out2.mkv"
    write_all(out2, frames, real_info.fps, audio_from=None)
    assert vio.probe(out2).audio == ()


def test_gif_in_and_out(tmp_path: Path) -> None:
    gif = tmp_path / "in.gif"
    ff("-f", "lavfi", "-i", "testsrc2=size=32x24:rate=10", "-t", "1", str(gif))
    info = vio.probe(gif)
    assert (info.width, info.height, info.frame_count) == (32, 24, 10)
    assert info.fps == 10
    frames = read_all(gif, info)
    assert frames.shape == (10, 24, 32, 3)

    out = tmp_path / "out.gif"
    write_all(out, frames, info.fps, audio_from=REAL)  # gif never gets audio
    got = vio.probe(out)
    assert (got.width, got.height, got.frame_count) == (32, 24, 10)
    assert got.fps == 10 and got.audio == ()
    assert psnr(read_all(out, got), frames) > 20  # 256-colour palette

    out_mp4 = tmp_path / "from_gif.mp4"
    write_all(out_mp4, frames, info.fps, audio_from=gif)  # gif has no audio: none added
    got = vio.probe(out_mp4)
    assert got.frame_count == 10 and got.audio == ()


def test_segment_with_audio(tmp_path: Path, real_info: vio.VideoInfo) -> None:
    start, dur = 0.3, 0.5
    frames = read_all(REAL, real_info, start=start, duration=dur, size=(32, 24))
    assert frames.shape[0] == 15 == round(dur * float(real_info.fps))
    out = tmp_path / "seg.mp4"
    write_all(out, frames, real_info.fps, audio_from=REAL, audio_start=start, audio_duration=dur)
    info = vio.probe(out)
    assert info.frame_count == 15 and info.fps == Fraction(1501, 50)
    assert len(info.audio) == 1
    assert abs(audio_seconds(out) - dur) <= 1 / float(real_info.fps)


def test_multiple_audio_streams_all_mapped(tmp_path: Path) -> None:
    clip = tmp_path / "two.mkv"
    ff("-f", "lavfi", "-i", "testsrc2=size=32x24:rate=25",
       "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
       "-f", "lavfi", "-i", "sine=frequency=220:sample_rate=22050",
       "-t", "0.4", "-map", "0:v", "-map", "1:a", "-map", "2:a",
       "-c:v", "libx264", "-preset", "ultrafast", "-c:a:0", "aac", "-c:a:1", "pcm_s16le", str(clip))
    info = vio.probe(clip)
    assert [a.codec for a in info.audio] == ["aac", "pcm_s16le"]
    out = tmp_path / "two_out.mp4"
    write_all(out, read_all(clip, info), info.fps, audio_from=clip)
    got = vio.probe(out)
    # aac is copied, pcm cannot go into mp4 and is re-encoded to aac.
    assert [(a.codec, a.sample_rate) for a in got.audio] == [("aac", 44100), ("aac", 22050)]
    assert packet_crcs(out, "0:a:0") == packet_crcs(clip, "0:a:0")
    for i in range(2):
        assert abs(audio_seconds(out, i) - audio_seconds(clip, i)) <= 1 / 25


def test_written_frames_are_close_to_input(tmp_path: Path) -> None:
    h, w, n = 48, 64, 8
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = np.stack([
        np.stack([
            0.5 + 0.4 * np.sin((x + 2 * t) / 11.0),
            0.5 + 0.4 * np.cos((y - t) / 9.0),
            (x + y) / (w + h),
        ], axis=-1)
        for t in range(n)
    ]).astype(np.float32)
    out = tmp_path / "smooth.mp4"
    write_all(out, frames, Fraction(24), quality=18)
    back = read_all(out)
    assert back.shape == frames.shape
    values = [psnr(a, b) for a, b in zip(back, frames)]
    assert min(values) > 30, values


def test_exception_in_writer_keeps_existing_file(tmp_path: Path, real_info: vio.VideoInfo) -> None:
    out = tmp_path / "keep.mp4"
    original = os.urandom(1000)
    out.write_bytes(original)
    frame = np.full((24, 32, 3), 0.5, np.float32)
    with pytest.raises(RuntimeError, match="boom"):
        with vio.VideoWriter(out, 32, 24, Fraction(30), audio_from=REAL) as vw:
            vw.write(frame)
            vw.write(np.stack([frame, frame]))
            raise RuntimeError("boom")
    assert out.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == ["keep.mp4"]

    # A wrong frame shape is a programming error; it must not damage the file either.
    with pytest.raises(ValueError):
        with vio.VideoWriter(out, 32, 24, Fraction(30)) as vw:
            vw.write(np.zeros((24, 33, 3), np.float32))
    # Closing without frames fails the same way.
    with pytest.raises(ValueError):
        with vio.VideoWriter(out, 32, 24, Fraction(30)):
            pass
    assert out.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == ["keep.mp4"]

    # A successful write replaces it.
    write_all(out, np.stack([frame] * 3), Fraction(30))
    assert vio.probe(out).frame_count == 3
    assert sorted(os.listdir(tmp_path)) == ["keep.mp4"]


def test_mux_audio_keeps_video_bit_identical(tmp_path: Path) -> None:
    video = make_clip(tmp_path / "v.mp4", seconds=0.5, audio=True)
    wav = tmp_path / "a.wav"
    ff("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000:duration=0.5", "-ac", "2", str(wav))
    assert [(a.codec, a.channels) for a in vio.audio_streams(wav)] == [("pcm_s16le", 2)]

    out = tmp_path / "muxed.mp4"
    vio.mux_audio(video, wav, out)
    got = vio.probe(out)
    assert [(a.codec, a.channels) for a in got.audio] == [("aac", 2)]  # replaced, re-encoded
    assert packet_crcs(out, "0:v:0") == packet_crcs(video, "0:v:0")
    assert abs(audio_seconds(out) - 0.5) <= 1 / 30

    both = tmp_path / "both.mkv"
    vio.mux_audio(video, wav, both, keep_original_audio=True, languages=["fra"])
    assert [a.codec for a in vio.probe(both).audio] == ["aac", "pcm_s16le"]  # mkv takes pcm as is
    assert [a.language for a in vio.probe(both).audio] == [None, "fra"]  # (the added stream's tag)
    assert packet_crcs(both, "0:v:0") == packet_crcs(video, "0:v:0")

    # In place: out_path may be the video itself.
    vio.mux_audio(out, wav, out, audio_start=0.1, audio_duration=0.2)
    assert abs(audio_seconds(out) - 0.2) <= 1 / 30
    assert packet_crcs(out, "0:v:0") == packet_crcs(video, "0:v:0")

    with pytest.raises(UserError):
        vio.mux_audio(video, make_clip(tmp_path / "silent.mp4", seconds=0.2, audio=False), tmp_path / "x.mp4")
    with pytest.raises(UserError):
        vio.mux_audio(video, wav, tmp_path / "x.gif")
    assert not (tmp_path / "x.mp4").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def subtitle_text(path: Path, stream: int = 0) -> str:
    """One subtitle stream of ``path`` as SRT text."""
    res = subprocess.run([FF, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path),
                          "-map", f"0:s:{stream}", "-f", "srt", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout.decode()


def test_subtitles_are_kept_converted_or_noted(tmp_path: Path) -> None:
    """A source's text subtitles go into every output that can hold text (copied, or converted to
    mov_text / WebVTT), cut to the segment, with or without the audio; AVI and GIF keep none and
    the user is told before the work starts."""
    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,400\nfirst line\n\n2\n00:00:00,420 --> 00:00:00,580\nacross\n\n"
                   "3\n00:00:00,600 --> 00:00:01,000\nsecond line\n")
    plain = make_clip(tmp_path / "plain.mkv", seconds=1.0)
    src = tmp_path / "subbed.mkv"
    font = tmp_path / "font.ttf"  # an attachment, as a styled subtitle's fonts are (bytes are enough here)
    font.write_bytes(b"not really a font")
    ff("-i", str(plain), "-i", str(srt), "-map", "0", "-map", "1", "-c", "copy", "-c:s", "srt",
       "-metadata:s:s:0", "language=fra", "-metadata:s:s:0", "title=French, forced", "-disposition:s:0", "forced",
       "-metadata:s:v:0", "language=deu", "-attach", str(font), "-metadata:s:t", "mimetype=application/x-truetype-font",
       str(src))
    info = vio.probe(src)
    assert [(s.codec, s.language, s.title, s.dispositions) for s in info.subtitles] == [
        ("subrip", "fra", "French, forced", ("forced",))]
    frames = read_all(src, info)

    for name, codec, audio_from in (("o.mp4", "mov_text", src), ("o.mkv", "subrip", None),
                                    ("o.webm", "webvtt", src), ("o.mov", "mov_text", None)):
        out = tmp_path / name
        write_all(out, frames, info.fps, audio_from=audio_from, subtitles_from=src)
        got = vio.probe(out)
        assert [(s.codec, s.language) for s in got.subtitles] == [(codec, "fra")], name
        assert len(got.audio) == (1 if audio_from else 0), name
        text = subtitle_text(out)
        assert "first line" in text and "second line" in text, name
        assert vio.dropped_subtitles_note(src, out) is None

    # A segment from 0.5 s: the first line is before it, the one across its start is clipped, the
    # second is moved to the segment's time (with or without the audio).
    for name, audio_from in (("cut.mp4", src), ("cut.mkv", None)):
        cut = tmp_path / name
        write_all(cut, frames[15:], info.fps, audio_from=audio_from, audio_start=0.5, audio_duration=0.5,
                  subtitles_from=src, language=info.language)
        text = subtitle_text(cut)
        assert "first line" not in text, (name, text)
        assert "00:00:00,000 --> 00:00:00,080\nacross" in text, (name, text)
        assert "00:00:00,100 --> 00:00:00,500\nsecond line" in text, (name, text)
        got = vio.probe(cut)
        assert got.frame_count == 15 and got.language == "deu"
        # forced kept (MP4's muxer marks its first subtitle track default as well)
        assert [(s.language, "forced" in s.dispositions) for s in got.subtitles] == [("fra", True)], name
    assert vio.probe(tmp_path / "cut.mkv").subtitles[0].title == "French, forced"  # (MP4 keeps no stream title)
    for name in ("o.mkv", "cut.mkv"):  # Matroska takes the attached fonts along
        assert "Attachment: ttf" in subprocess.run([FF, "-hide_banner", "-i", str(tmp_path / name)],
                                                   capture_output=True, text=True).stderr, name

    # The --style-audio mux keeps the video file's own subtitles.
    wav = tmp_path / "a.wav"
    ff("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000:duration=1", str(wav))
    remuxed = tmp_path / "remuxed.mp4"
    vio.mux_audio(tmp_path / "o.mp4", wav, remuxed)
    assert [s.codec for s in vio.probe(remuxed).subtitles] == ["mov_text"]

    for name in ("o.avi", "o.gif"):
        out = tmp_path / name
        note = vio.dropped_subtitles_note(src, out)
        assert note is not None and "1 subtitle stream" in note and name in note
        write_all(out, frames, info.fps, audio_from=src, subtitles_from=src)
        assert vio.probe(out).subtitles == ()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_subtitle_plan_for_picture_subtitles_and_segments() -> None:
    """Picture subtitles only copy (Matroska), and not into a segment; text converts anywhere but AVI/GIF."""
    from jaxstyle.io.ffmpeg import SubtitleStreamInfo
    from jaxstyle.io.subtitles import dropped_note, subtitle_plan

    pgs, ass = SubtitleStreamInfo(0, "hdmv_pgs_subtitle"), SubtitleStreamInfo(1, "ass", "eng")
    assert subtitle_plan("matroska", [pgs, ass]) == ([(pgs, "copy"), (ass, "copy")], [])
    assert subtitle_plan("matroska", [pgs, ass], segment=True) == ([(ass, "ass")], [pgs])
    assert subtitle_plan("mp4", [pgs, ass]) == ([(ass, "mov_text")], [pgs])
    assert subtitle_plan("avi", [pgs, ass]) == ([], [pgs, ass])
    assert dropped_note("a.mkv", "b.mp4", "mp4", [pgs, ass]).endswith("(hdmv_pgs_subtitle) cannot be stored in b.mp4; "
                                                                        "a .mkv output keeps them")
    assert "not cut to a segment" in dropped_note("a.mkv", "b.mkv", "matroska", [pgs], segment=True)
    assert dropped_note("a.mkv", "b.mov", "mov", [pgs], segment=True).endswith(
        "; a .mkv output keeps them without --start/--duration")
    assert dropped_note("a.mkv", "b.webm", "webm", [ass]) is None


def test_cut_ass_shifts_clips_and_drops_events() -> None:
    from jaxstyle.io.subtitles import cut_ass

    script = ("[Script Info]\nScriptType: v4.00+\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, "
              "MarginR, MarginV, Effect, Text\n"
              "Dialogue: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,,before\n"
              "Dialogue: 0,0:00:02.50,0:00:03.50,Default,,0,0,0,,across, with a comma\n"
              "Dialogue: 0,0:01:03.25,0:01:04.00,Default,,0,0,0,,{\\i1}later{\\i0}\n"
              "Comment: 0,0:00:05.00,0:00:06.00,Default,,0,0,0,,a note\n"
              "Comment: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,,an earlier note\n"
              "Dialogue: 0,0:02:00.00,0:02:01.00,Default,,0,0,0,,after\n")
    got = cut_ass(script, start=3.0, duration=61.0)
    assert "before" not in got and "after" not in got
    assert "Dialogue: 0,0:00:00.00,0:00:00.50,Default,,0,0,0,,across, with a comma\n" in got
    assert "Dialogue: 0,0:01:00.25,0:01:01.00,Default,,0,0,0,,{\\i1}later{\\i0}\n" in got
    assert got.startswith("[Script Info]\nScriptType: v4.00+\n\n[Events]\n")
    assert "Comment: 0,0:00:02.00,0:00:03.00,Default,,0,0,0,,a note\n" in got and "an earlier note" not in got
