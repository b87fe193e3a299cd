"""Audio: reading and preprocessing (docs/dataset_format.md, docs/training.md), frame windows, muted-shot noise."""

from __future__ import annotations

import math
import pathlib
import struct

import numpy as np
import pytest
import scipy.signal
import soundfile

from a2f_jax.data import audio, check
from a2f_jax.errors import DataError


def _sine(freq: float, sr: int, seconds: float) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def _dominant_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spec) * sr / x.size)


# ---------------------------------------------------------------------------------------------
# Frame windows
# ---------------------------------------------------------------------------------------------


def test_frame_windows_centre_sample_and_zero_padding():
    sr, fps = 16000, 30.0
    track = np.arange(1, 16000 + 1, dtype=np.float32)  # 1 s, sample k holds k + 1
    w = audio.frame_windows(track, num_frames=30, fps=fps)
    assert w.shape == (30, 8320) and w.dtype == np.float32
    for i in (0, 7, 29):
        c = round((i + 0.5) / fps * sr)
        assert w[i, 4160] == c + 1  # the window's centre (buffer_ofs = 4160) is the frame centre
        lo = c - 4160
        expected = np.array([k + 1 if 0 <= k < 16000 else 0 for k in range(lo, lo + 8320)], np.float32)
        assert np.array_equal(w[i], expected)
    # Frame 0: centre 267, so the first 4160 - 267 samples lie before the track.
    assert np.all(w[0, : 4160 - 267] == 0) and w[0, 4160 - 267] == 1
    # Last frame: centre 15733, the window runs past the end (16000) and is zero there.
    assert w[29, 4160 + (16000 - 1 - 15733)] == 16000 and np.all(w[29, 4160 + (16000 - 15733) :] == 0)


def test_frame_windows_offset_and_first_frame():
    track = np.arange(1, 32001, dtype=np.float32)
    base = audio.frame_windows(track, 5, 30.0)
    shifted = audio.frame_windows(track, 5, 30.0, offset=0.01)  # +160 samples
    assert np.array_equal(shifted[:, 4160], base[:, 4160] + 160)
    later = audio.frame_windows(track, 3, 30.0, first_frame=2)
    assert np.array_equal(later, base[2:5])
    # An audio offset of k frames equals the window of frame i + k.
    assert np.array_equal(audio.frame_windows(track, 3, 30.0, offset=2 / 30.0)[:, 4160], base[2:5, 4160])


def test_frame_windows_round_half_even():
    # sr = 1, fps = 1: centres at exactly 0.5, 1.5, 2.5, 3.5 -> 0, 2, 2, 4 (Python round).
    track = np.arange(10, 20, dtype=np.float32)
    w = audio.frame_windows(track, 4, fps=1.0, size=1, samplerate=1, buffer_ofs=0)
    assert w[:, 0].tolist() == [10.0, 12.0, 12.0, 14.0]


def test_segment_is_inclusive():
    track = np.arange(1, 1001, dtype=np.float32)
    seg = audio.segment(track, 0.01, 0.02, samplerate=16000)  # samples 160..320 inclusive
    assert seg.size == 161 and seg[0] == 161 and seg[-1] == 321
    tail = audio.segment(track, 0.06, 0.07, samplerate=16000)  # 960..1120, zero past 999
    assert tail.size == 161 and tail[39] == 1000 and np.all(tail[40:] == 0)


# ---------------------------------------------------------------------------------------------
# Reading and resampling
# ---------------------------------------------------------------------------------------------


def test_stereo_48k_is_mono_16k(tmp_path):
    left = _sine(440.0, 48000, 0.5)
    stereo = np.stack([left, 0.5 * left], axis=1)
    soundfile.write(tmp_path / "s.wav", stereo, 48000, subtype="PCM_16")
    track = audio.load_track(tmp_path / "s.wav", "w2v")
    assert track.samplerate == 16000 and track.data.dtype == np.float32
    assert track.data.size == math.ceil(24000 / 3)
    assert abs(_dominant_hz(track.data, 16000) - 440.0) < 3.0
    mono = 0.75 * left[::3]
    core = slice(100, -100)
    assert np.max(np.abs(track.data[core] - mono[core])) < 2e-3  # averaged channels, 16-bit PCM
    assert track.norm_factor == pytest.approx(float(np.max(np.abs(track.data))))


def test_w2v_16k_untouched_and_quiet_norm_factor(tmp_path):
    x = (0.005 * np.sin(np.arange(1600) / 5.0)).astype(np.float32)
    soundfile.write(tmp_path / "q.wav", x, 16000, subtype="FLOAT")
    track = audio.load_track(tmp_path / "q.wav", "w2v")
    assert np.array_equal(track.data, x)  # no resampling, no normalisation
    assert track.norm_factor == 1.0  # peak below 0.01


def test_nva2f_44k1_normalises_and_uses_363_over_1001(tmp_path):
    x = _sine(300.0, 44100, 0.4)
    soundfile.write(tmp_path / "n.wav", x, 44100, subtype="FLOAT")
    track = audio.load_track(tmp_path / "n.wav", "nva2f")
    expected = scipy.signal.resample_poly(x / np.max(np.abs(x)), 363, 1001).astype(np.float32)
    assert track.samplerate == 16000 and track.norm_factor == 1.0
    np.testing.assert_allclose(track.data, expected, atol=1e-6)


def test_unknown_method(tmp_path):
    with pytest.raises(DataError, match="AUDIO_PREPROC_METHOD"):
        audio.preprocess(np.zeros(10, np.float32), 16000, "mfcc")


@pytest.mark.parametrize("rates", [(48000, 16000), (44100, 16000), (22050, 16000), (8000, 16000)])
def test_sinc_resample_matches_direct_formula(rates):
    """Output sample n = sum_i x[i] h((i/orig - n/new) base) base/orig, h = Hann-windowed sinc (6 zeros)."""
    old, new = rates
    x = np.random.default_rng(0).normal(size=600).astype(np.float32)
    y = audio.resample_sinc(x, old, new)
    g = math.gcd(old, new)
    o, n_ = old // g, new // g
    assert y.size == math.ceil(n_ * x.size / o)
    base = min(o, n_) * 0.99
    i = np.arange(x.size)
    for n in (0, 1, y.size // 3, y.size // 2 + 1, y.size - 1):
        t = np.clip((i / o - n / n_) * base, -6, 6)
        h = np.where(t == 0, 1.0, np.sin(np.pi * t) / np.where(t == 0, 1.0, np.pi * t)) * np.cos(np.pi * t / 12) ** 2
        ref = float(np.sum(x * h * base / o))
        # The kernel is built in f32 as torchaudio builds it for f32 input: ~1e-5 from the f64 formula.
        assert abs(float(y[n]) - ref) < 1e-4, (n, float(y[n]), ref)


FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures" / "data"


@pytest.mark.parametrize("rate", [48000, 44100, 22050, 8000])
def test_sinc_resample_matches_torchaudio(rate):
    """Outputs of torchaudio.functional.resample (torchaudio 2.11, torch 2.13; make_torchaudio_resample.py)."""
    with np.load(FIXTURES / "torchaudio_resample.npz") as ref:
        x, expected = ref[f"x_{rate}"], ref[f"y_{rate}"]
    y = audio.resample_sinc(x, rate, 16000)
    assert y.shape == expected.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=0, atol=5e-7)  # f32 summation order only


def test_corrupt_empty_and_missing_wav(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(DataError, match=r"bad\.wav \[chunk 'junk' at byte 12\]: expected 1802401130 bytes .*found 4 bytes"):
        audio.load_audio(tmp_path / "bad.wav")
    (tmp_path / "noise.wav").write_bytes(b"not a wav at all")
    with pytest.raises(DataError, match=r"noise\.wav: expected a readable audio file"):
        audio.load_audio(tmp_path / "noise.wav")
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000, subtype="PCM_16")
    with pytest.raises(DataError, match=r"empty\.wav \[samples\]: expected at least one audio sample, found an empty track"):
        audio.load_audio(tmp_path / "empty.wav")
    with pytest.raises(DataError, match=r"missing\.wav: expected an audio file, found no such file"):
        audio.load_audio(tmp_path / "missing.wav")


def _wav(path: pathlib.Path, samples: int = 1000, channels: int = 1, **kw) -> bytes:
    x = np.zeros((samples, channels), np.float32) + 0.25
    soundfile.write(path, x, 16000, **{"subtype": "PCM_16", "format": "WAV", **kw})
    return path.read_bytes()


def _chunks(raw: bytes) -> dict[bytes, tuple[int, int]]:
    """tag -> (offset of its header, size) of a RIFF file's sub-chunks."""
    out, pos = {}, 12
    while pos + 8 <= len(raw):
        size = struct.unpack_from("<I", raw, pos + 4)[0]
        out.setdefault(raw[pos : pos + 4], (pos, size))
        pos += 8 + size + (size & 1)
    return out


def test_truncated_wav_names_header_size_and_bytes_present(tmp_path):
    raw = _wav(tmp_path / "a.wav")
    at, size = _chunks(raw)[b"data"]
    (tmp_path / "a.wav").write_bytes(raw[:-100])  # libsndfile would decode the 950 samples left
    for read in (audio.load_audio, check.audio_seconds):
        with pytest.raises(DataError) as err:
            read(tmp_path / "a.wav")
        assert f"a.wav [chunk 'data' at byte {at}]: expected {size} bytes of data (its header's size), found {size - 100} bytes present (file truncated)" in str(err.value)


def test_wav_longer_than_its_riff_size_rejected(tmp_path):
    raw = _wav(tmp_path / "a.wav")
    (tmp_path / "a.wav").write_bytes(raw + b"\0" * 10)
    with pytest.raises(DataError, match=rf"a\.wav \[file size\]: expected {len(raw)} bytes \(8 \+ the RIFF header's size\), found {len(raw) + 10} bytes \(10 trailing bytes\)"):
        audio.read_wav(tmp_path / "a.wav")


def test_wav_data_must_be_whole_frames(tmp_path):
    raw = bytearray(_wav(tmp_path / "a.wav", samples=100, channels=2))  # 4-byte frames
    at, size = _chunks(bytes(raw))[b"data"]
    struct.pack_into("<I", raw, at + 4, size - 2)
    struct.pack_into("<I", raw, 4, len(raw) - 8 - 2)
    (tmp_path / "a.wav").write_bytes(bytes(raw[:-2]))  # consistent sizes, but half a frame at the end
    with pytest.raises(DataError, match=r"a\.wav \[data chunk size\]: expected a whole number of 4-byte frames, found 398 bytes \(99 frames \+ 2 bytes\)"):
        audio.read_wav(tmp_path / "a.wav")


def test_odd_chunk_pad_byte_tolerated_but_nothing_more(tmp_path):
    raw = _wav(tmp_path / "a.wav", samples=101, subtype="PCM_U8")  # 101-byte data chunk
    assert _chunks(raw)[b"data"][1] == 101
    body = raw[12:] if len(raw) % 2 == 0 else raw[12:] + b"\0"  # with its pad byte
    for extra, tail in ((b"", b""), (b"\0", b""), (b"", b"\0")):  # pad counted in the RIFF size or not
        data = body[: len(body) - 1] + extra
        riff = b"RIFF" + struct.pack("<I", 4 + len(data)) + b"WAVE" + data + tail
        (tmp_path / "b.wav").write_bytes(riff)
        assert audio.read_wav(tmp_path / "b.wav")[0].shape == (101,)
    (tmp_path / "b.wav").write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body + b"\0")
    with pytest.raises(DataError, match=r"b\.wav \[file size\]: .*\(1 trailing bytes\)"):
        audio.read_wav(tmp_path / "b.wav")


def test_extensible_wav_checked_and_other_formats_left_to_soundfile(tmp_path):
    raw = _wav(tmp_path / "x.wav", samples=300, channels=3, subtype="FLOAT", format="WAVEX")
    assert struct.unpack_from("<H", raw, 20)[0] == 0xFFFE
    assert audio.read_wav(tmp_path / "x.wav")[0].shape == (300,)
    (tmp_path / "x.wav").write_bytes(raw[:-6])
    with pytest.raises(DataError, match=r"x\.wav \[chunk 'data' at byte \d+\]: expected 3600 bytes of data .*found 3594 bytes present"):
        audio.read_wav(tmp_path / "x.wav")
    soundfile.write(tmp_path / "f.flac", np.zeros(160, np.float32) + 0.25, 16000)
    assert audio.read_wav(tmp_path / "f.flac")[0].shape == (160,)


# ---------------------------------------------------------------------------------------------
# Muted-shot noise
# ---------------------------------------------------------------------------------------------


def _mic_reference(n: int, sr: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """The original's noise algorithm (docs/training.md "Regression samples") written as a per-column loop (the original's draw order)."""
    cols = math.ceil((n - 256) / 128) + 3
    f = np.linspace(0, sr // 2, 129)
    mags = []
    for _ in range(cols):
        db = rng.normal(loc=39.0 * np.exp(-f / 300.0) - 121.0, scale=5.85)
        mags.append(10.0 ** (db / 20.0))
    phase = rng.random(size=(129, cols)) * 2 * np.pi
    _, y = scipy.signal.istft(np.stack(mags).T * np.exp(1j * phase), sr)
    return y[:n] * scale


def test_mic_noise_matches_loop_reference_and_rng_order():
    a = audio.muted_noise("mic", 8320, 0.1, np.random.default_rng(5))
    b = _mic_reference(8320, 16000, 0.1, np.random.default_rng(5))
    assert a.shape == (8320,)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-20)


def test_mic_noise_statistics():
    x = audio.muted_noise("mic", 16000 * 4, 1.0, np.random.default_rng(0))
    f, psd = scipy.signal.welch(x, fs=16000, nperseg=256)
    low, high = psd[(f > 0) & (f <= 200)].mean(), psd[f >= 2000].mean()
    assert low / high > 100.0  # 39 dB boost near 0 Hz decaying with 300 Hz
    assert 1e-7 < np.sqrt(np.mean(x**2)) < 1e-4  # about -121 dB per bin: a very quiet hiss


def test_gauss_noise_statistics_and_none():
    x = audio.muted_noise("gauss", 50000, 0.1, np.random.default_rng(0))
    assert abs(x.mean()) < 2e-3 and abs(x.std() - 0.1) < 2e-3
    assert np.array_equal(audio.muted_noise(None, 7, 0.1, np.random.default_rng(0)), np.zeros(7))
    with pytest.raises(DataError, match="'mic' or 'gauss'"):
        audio.muted_noise("pink", 7, 0.1, np.random.default_rng(0))


def test_muted_windows_draw_local_scale_first():
    w = audio.muted_windows(2, 8320, "mic", 0.1, (0.0, 1.0), np.random.default_rng(3))
    rng = np.random.default_rng(3)
    local = rng.uniform(0.0, 1.0)
    first = audio.muted_noise("mic", 8320, 0.1, rng) * local
    second = audio.muted_noise("mic", 8320, 0.1, rng) * local
    assert w.shape == (2, 8320) and w.dtype == np.float32
    np.testing.assert_array_equal(w, np.stack([first, second]).astype(np.float32))
    seg = audio.muted_segment(1000, "gauss", 0.1, (0.5, 0.5), np.random.default_rng(0))
    assert seg.dtype == np.float32 and seg.size == 1000


# ---------------------------------------------------------------------------------------------
# Outputs of the original's own audio code (fixtures/data/make_original_audio.py)
# ---------------------------------------------------------------------------------------------


def _original() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "original_audio.npz") as data:
        return {k: data[k] for k in data.files}


def test_muted_noise_bit_exact_with_original():
    ref = _original()
    np.testing.assert_array_equal(audio.muted_noise("mic", 8320, 0.1, np.random.default_rng(11)), ref["mic_8320"])
    np.testing.assert_array_equal(audio.muted_noise("mic", 3001, 0.1, np.random.default_rng(12)), ref["mic_3001"])
    np.testing.assert_array_equal(audio.muted_noise("gauss", 1000, 0.1, np.random.default_rng(13)), ref["gauss_1000"])


def test_nva2f_and_windows_bit_exact_with_original():
    ref = _original()
    track = audio.preprocess(ref["nva2f_in_44100"], 44100, "nva2f")
    np.testing.assert_array_equal(track.data, ref["nva2f_out_16000"])
    windows = audio.frame_windows(ref["windows_audio"], 30, 30.0, offset=0.013)
    np.testing.assert_array_equal(windows[[0, 15, 29]], ref["windows_offset_0.013"])
