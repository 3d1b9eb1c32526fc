"""Audio path: STFT round trip, exact length/rate/channels, chunk joins, muxing, bad input.

Everything runs at tiny sizes (8-16 kHz, under 2 s, few filters and iterations) to stay fast on 2 cores.
"""

import json
import subprocess

import numpy as np
import pytest

from jaxstyle.audio import network, spectral
from jaxstyle.audio.stylize import AudioStylizer, stylize_audio
from jaxstyle.config import AudioConfig
from jaxstyle.io import audio as audio_io
from jaxstyle.io import video as video_io
from jaxstyle.io.ffmpeg import ffmpeg_exe

from ..helpers import assert_one_line_error, packet_crcs, run_main

TINY = ["--audio-iterations", "3", "--audio-filters", "16", "--audio-griffin-lim-iters", "4", "--quiet"]


def tone_mix(seconds: float, sr: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Harmonic tones with a moving pitch plus a little noise, [n, channels] float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    out = []
    for c in range(channels):
        f0 = 220.0 * (1.0 + 0.5 * (t / seconds)) * (1.0 + 0.25 * c)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        y = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
        out.append(0.2 * y + 0.01 * rng.standard_normal(t.shape))
    return np.stack(out, axis=1).astype(np.float32)


def noise_style(seconds: float, sr: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    y = rng.standard_normal(int(seconds * sr)).astype(np.float32)
    y = np.convolve(y, np.ones(4) / 4, mode="same") * 0.1  # low-passed noise: a different timbre
    return y[:, None]


@pytest.fixture()
def wavs(tmp_path):
    paths = {"content": tmp_path / "content.wav", "stereo": tmp_path / "stereo.flac", "style": tmp_path / "style.wav"}
    audio_io.write_audio(paths["content"], tone_mix(0.6, 8000), 8000)
    audio_io.write_audio(paths["stereo"], tone_mix(0.55, 16000, channels=2), 16000)
    audio_io.write_audio(paths["style"], noise_style(0.9, 11025), 11025)  # another rate: resampled on reading
    return paths


def test_stft_round_trip_and_exact_length():
    import jax.numpy as jnp

    for sr, length in ((8000, 4001), (22050, 22050), (44100, 1234 * 7 + 3)):
        n_fft, hop = spectral.stft_params(sr)
        assert n_fft // hop == 4
        y = np.random.default_rng(sr).standard_normal(length).astype(np.float32)
        spec = spectral.stft(jnp.asarray(y), n_fft, hop)
        assert spec.shape == (spectral.num_frames(length, hop), n_fft // 2 + 1)
        back = np.asarray(spectral.istft(spec, n_fft, hop, length))
        assert back.shape == (length,)
        assert np.max(np.abs(back - y)) < 1e-4
    assert spectral.stft_params(22050) == (2048, 512) and spectral.stft_params(44100) == (4096, 1024)


def test_griffin_lim_recovers_a_consistent_magnitude():
    import jax.numpy as jnp

    sr = 8000
    y = tone_mix(0.5, sr)[:, 0]
    n_fft, hop = spectral.stft_params(sr)
    mag = jnp.abs(spectral.stft(jnp.asarray(y), n_fft, hop))
    rough = spectral.stft(jnp.asarray(np.roll(y, 37) * 0.5), n_fft, hop)  # a wrong starting phase
    sc = lambda it: float(spectral.spectral_convergence_db(mag, spectral.griffin_lim(mag, rough, n_fft=n_fft, hop=hop,
                                                                           iterations=it, length=len(y)),
                                                      n_fft=n_fft, hop=hop))
    assert sc(30) < sc(0) - 6.0  # fast Griffin-Lim converges
    assert sc(30) < -12.0


def test_cli_audio_keeps_rate_channels_length(capsys, wavs, tmp_path):
    out, metrics = tmp_path / "out.wav", tmp_path / "m.json"
    code, err = run_main([wavs["stereo"], "--style-audio", wavs["style"], "-o", out, "--metrics-json", metrics, *TINY], capsys)
    assert code == 0, err
    y, sr = audio_io.read_audio(out)
    src, _ = audio_io.read_audio(wavs["stereo"])
    assert sr == 16000 and y.shape == src.shape  # exact samples, rate and channel count
    assert np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 0.99
    assert np.std(y[:, 0] - y[:, 1]) > 1e-3  # the channels stay distinct
    m = json.loads(metrics.read_text())
    for key in ("gram_distance_before", "gram_distance_after", "timbre_ratio", "chroma_correlation",
                "spectral_convergence_db", "peak_rss_mib", "wall_seconds", "loss_initial", "loss_final"):
        assert key in m and m[key] is not None, key
    assert m["gram_distance_after"] < m["gram_distance_before"]
    # mid/side and another output format
    out2 = tmp_path / "out.ogg"
    code, err = run_main([wavs["stereo"], "--style-audio", wavs["style"], "-o", out2, "--audio-stereo", "mid-side", *TINY], capsys)
    assert code == 0, err
    y2, sr2 = audio_io.read_audio(out2)
    assert sr2 == 16000 and y2.shape[1] == 2
    # a segment: --start/--duration cut the sound as they cut a video
    out3 = tmp_path / "seg.wav"
    code, err = run_main([wavs["stereo"], "--style-audio", wavs["style"], "-o", out3, "--start", "0.1", "--duration",
                          "0.3", "--metrics-json", metrics, *TINY], capsys)
    assert code == 0, err
    y3, sr3 = audio_io.read_audio(out3)
    assert sr3 == 16000 and y3.shape == (4800, 2)
    assert (json.loads(metrics.read_text())["start"], json.loads(metrics.read_text())["duration"]) == (0.1, 0.3)


def test_style_shorter_or_longer_and_transfer_moves_statistics():
    sr = 8000
    content = tone_mix(1.0, sr)
    settings = AudioConfig(variant="mel-stats", iterations=15, filters=32, griffin_lim_iters=8)
    for seconds in (0.4, 3.0):
        style = noise_style(seconds, sr)
        out, info = stylize_audio(content, style, sr, settings)
        assert out.shape == content.shape and np.all(np.isfinite(out))
        assert info["loss_final"]["style"] < 0.7 * info["loss_initial"]["style"]


def test_chunks_join_without_clicks():
    """Chunked = unchunked where no optimization happens; with optimization the joins are smooth."""
    sr = 8000
    content = tone_mix(6.0, sr)
    style = noise_style(1.0, sr)
    base = dict(variant="mel-gain", filters=16, griffin_lim_iters=8)
    st_one = AudioStylizer(sr, AudioConfig(chunk_seconds=10.0, iterations=0, **base))
    st_many = AudioStylizer(sr, AudioConfig(chunk_seconds=2.5, iterations=0, **base))
    x = st_one.logmag(content[:, 0] * 0.3)
    target = st_one.style_target(style[:, 0])
    one, info_one = st_one.optimize([x], target)
    many, info_many = st_many.optimize([x], target)
    assert info_one["chunks"] == 1 and info_many["chunks"] >= 4
    assert info_many["overlap_frames"] >= max(network.VARIANTS["mel-gain"].widths)
    np.testing.assert_allclose(many[0], one[0], atol=1e-4)  # stitching is exact
    # With the style loss on, chunks stay close to the single run away from the edges, and the
    # stitched spectrogram changes no faster across a join than elsewhere.
    s1 = AudioStylizer(sr, AudioConfig(chunk_seconds=10.0, iterations=20, **base))
    s2 = AudioStylizer(sr, AudioConfig(chunk_seconds=2.5, iterations=20, **base))
    (a,), _ = s1.optimize([x], target)
    (b,), info = s2.optimize([x], target)
    inner = slice(10, len(x) - 10)
    rel = np.linalg.norm(a[inner] - b[inner]) / np.linalg.norm(a[inner] - x[inner])
    assert rel < 0.5, rel
    flux = np.linalg.norm(np.diff(b, axis=0), axis=1)
    stride = info["chunk_frames"] - info["overlap_frames"]
    joins = [s + info["overlap_frames"] // 2 for s in range(stride, len(x) - info["overlap_frames"], stride)]
    near = max(flux[j - 3:j + 3].max() for j in joins)
    assert near < 3.0 * np.median(flux) + np.percentile(flux, 95), (near, np.median(flux))


def test_mux_keeps_video_stream_bit_identical(tmp_path, media):
    src = media / "video" / "realshort.mp4"
    content, sr = audio_io.read_audio(src)
    out = content[::-1] * 0.5  # any new sound track (the stylization itself is tested above)
    wav = tmp_path / "styled.wav"
    audio_io.write_audio(wav, out, sr)
    dst = tmp_path / "muxed.mp4"
    video_io.mux_audio(src, wav, dst)
    assert packet_crcs(dst, "0:v:0") == packet_crcs(src, "0:v:0")
    back, sr2 = audio_io.read_audio(dst)
    assert sr2 == sr and abs(back.shape[0] - content.shape[0]) <= 2048  # AAC frames round the end


def test_bad_inputs_one_line(capsys, wavs, tmp_path, media):
    out = tmp_path / "o.wav"
    # unreadable audio file
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF" + bytes(range(256)) * 4)
    code, err = run_main([junk, "--style-audio", wavs["style"], "-o", out], capsys)
    assert_one_line_error(code, err, "junk.wav", "not a readable audio or video file")
    code, err = run_main([wavs["content"], "--style-audio", junk, "-o", out], capsys)
    assert_one_line_error(code, err, "junk.wav", "not a readable audio or video file")
    # an .m4a cut short (its index first, half its data): refused, not stylized in part
    m4a, cut = tmp_path / "whole.m4a", tmp_path / "cut.m4a"
    audio_io.write_audio(m4a, tone_mix(2.0, 8000), 8000)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", m4a, "-c", "copy", "-movflags", "+faststart", cut], check=True)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    code, err = run_main([cut, "--style-audio", wavs["style"], "-o", out], capsys)
    assert_one_line_error(code, err, "cut.m4a is cut short")
    # silent file (no NaN, a clear message)
    silent = tmp_path / "silent.wav"
    audio_io.write_audio(silent, np.zeros((8000, 1), np.float32), 8000)
    code, err = run_main([silent, "--style-audio", wavs["style"], "-o", out], capsys)
    assert_one_line_error(code, err, "silent")
    code, err = run_main([wavs["content"], "--style-audio", silent, "-o", out], capsys)
    assert_one_line_error(code, err, "silent")
    # 0.1 s
    short = tmp_path / "short.wav"
    audio_io.write_audio(short, tone_mix(0.1, 8000), 8000)
    code, err = run_main([short, "--style-audio", wavs["style"], "-o", out], capsys)
    assert_one_line_error(code, err, "too short")
    code, err = run_main([wavs["content"], "--style-audio", wavs["style"], "-o", out, "--start", "0.5"], capsys)
    assert_one_line_error(code, err, "selected segment is too short")
    code, err = run_main([wavs["content"], "--style-audio", wavs["style"], "-o", out, "--start", "1000"], capsys)
    assert_one_line_error(code, err, "--start 1000s is at or past the end")
    # video options that a sound file does not take
    code, err = run_main([wavs["content"], "--style-audio", wavs["style"], "-o", out, "--quality", "10",
                          "--no-audio"], capsys)
    assert_one_line_error(code, err, "--no-audio, --quality apply to a video CONTENT only, and")
    assert "is a sound file" in err
    # a format that would mix the channels down (or resample) is refused before the work
    three = tmp_path / "three.wav"
    audio_io.write_audio(three, tone_mix(0.6, 8000, channels=3), 8000)
    code, err = run_main([three, "--style-audio", wavs["style"], "-o", tmp_path / "o.mp3"], capsys)
    assert_one_line_error(code, err, "a .mp3 file holds at most 2 channels at 8000-48000 Hz (not every rate between), "
                          "and the sound has 3 channel(s) at 8000 Hz")
    odd_rate = tmp_path / "odd_rate.wav"  # (an encoder would resample 37800 Hz to 32000 Hz)
    audio_io.write_audio(odd_rate, tone_mix(0.6, 37800), 37800)
    code, err = run_main([odd_rate, "--style-audio", wavs["style"], "-o", tmp_path / "o.m4a"], capsys)
    assert_one_line_error(code, err, "and the sound has 1 channel(s) at 37800 Hz")
    assert not (tmp_path / "o.mp3").exists()
    # the image optimizer's flags do not reach a sound; the --audio-* flags need a sound to stylize
    code, err = run_main([wavs["content"], "--style-audio", wavs["style"], "-o", out, "--size", "32",
                          "--iterations", "5", "--seed", "3"], capsys)
    assert_one_line_error(code, err, "--size, --iterations apply to images and video frames, and")
    code, err = run_main([media / "video" / "realshort.mp4", "--style", media / "styles" / "starry_night.jpg",
                          "-o", tmp_path / "v.mp4", *TINY], capsys)
    assert_one_line_error(code, err, "--audio-iterations, --audio-filters, --audio-griffin-lim-iters apply to a "
                          "sound being stylized only", "and no --style-audio is given")
    # audio content without --style-audio, with an image --style, output onto an input
    code, err = run_main([wavs["content"], "-o", out], capsys)
    assert_one_line_error(code, err, "--style-audio")
    code, err = run_main([wavs["content"], "--style", media / "styles" / "starry_night.jpg", "-o", out], capsys)
    assert_one_line_error(code, err, "--style-audio")
    code, err = run_main([wavs["content"], "--style-audio", wavs["style"], "-o", wavs["style"]], capsys)
    assert_one_line_error(code, err, "same file")
    assert not out.exists()
    # --style-audio on a video without an audio stream
    silent_video = tmp_path / "noaudio.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(media / "video" / "realshort.mp4"), "-an",
                    "-c:v", "copy", str(silent_video)], check=True)
    code, err = run_main([silent_video, "--style", media / "styles" / "starry_night.jpg", "--style-audio",
                          wavs["style"], "-o", tmp_path / "v.mp4"], capsys)
    assert_one_line_error(code, err, "no audio stream")
    # neither --style nor an audio content
    code, err = run_main([silent_video, "-o", tmp_path / "v.mp4"], capsys)
    assert_one_line_error(code, err, "--style")
