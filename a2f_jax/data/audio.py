"""Audio: reading, the "w2v" / "nva2f" preprocessing, per-frame windows and muted-shot noise.

Behaviour: docs/dataset_format.md "Audio", docs/training.md "Sampling". All of it is numpy (host side); the
arrays handed to training are f32.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import struct
from typing import Any

import numpy as np
import scipy.signal
import soundfile

from a2f_jax.errors import DataError, describe

SAMPLERATE = 16000
NORM_THRESHOLD = 0.01
PREPROC_METHODS = ("w2v", "nva2f")
NOISE_TYPES = (None, "mic", "gauss")
# WAVE format tags whose data is whole frames of block_align bytes (PCM, IEEE float, A-law, mu-law);
# compressed formats (ADPCM...) are left to libsndfile.
_FRAMED_FORMATS = {1: "PCM", 3: "IEEE float", 6: "A-law", 7: "mu-law"}
_EXTENSIBLE = 0xFFFE
# Errors soundfile/libsndfile raise on a file they cannot decode.
SOUNDFILE_ERRORS = (RuntimeError, soundfile.LibsndfileError, ValueError, TypeError, OSError, EOFError, MemoryError)


@dataclasses.dataclass
class AudioTrack:
    """Mono f32 samples, their rate, and the autocorrelation branch's divisor (`norm_factor`)."""

    data: np.ndarray  # [N] f32
    samplerate: int
    norm_factor: float = 1.0

    @property
    def seconds(self) -> float:
        return self.data.size / float(self.samplerate)


@dataclasses.dataclass(frozen=True)
class _Chunk:
    tag: bytes
    offset: int  # of its 8-byte header
    size: int  # as its header says (without the pad byte)

    @property
    def end(self) -> int:
        return self.offset + 8 + self.size


def _riff_chunks(f: Any, path: pathlib.Path, file_size: int, endian: str, riff_end: int) -> list[_Chunk]:
    """The sub-chunks of a RIFF/RIFX WAVE file; each must fit inside the RIFF size and the file."""
    chunks: list[_Chunk] = []
    pos = 12
    while pos + 8 <= riff_end:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            raise DataError(
                describe(path, "RIFF size", f"{riff_end} bytes (8 + the RIFF header's size)", f"{file_size} bytes (file truncated)")
            )
        chunk = _Chunk(head[:4], pos, struct.unpack(endian + "I", head[4:])[0])
        name = chunk.tag.decode("latin1")
        if chunk.end > file_size:
            raise DataError(
                describe(
                    path,
                    f"chunk {name!r} at byte {pos}",
                    f"{chunk.size} bytes of data (its header's size)",
                    f"{file_size - pos - 8} bytes present "
                    + ("(a streaming writer never filled the size in: re-encode the file)" if chunk.size == 0xFFFFFFFF else "(file truncated)"),
                )
            )
        if chunk.end > riff_end:
            raise DataError(
                describe(path, "RIFF size", f"a size covering chunk {name!r} (to byte {chunk.end})", f"{riff_end - 8}")
            )
        chunks.append(chunk)
        pos = chunk.end + (chunk.size & 1)  # odd-sized chunks are followed by one pad byte
    return chunks


def _check_riff_end(path: pathlib.Path, chunks: list[_Chunk], file_size: int, riff_end: int) -> None:
    """The RIFF size and the file size both end at the last chunk (with or without its pad byte)."""
    last = chunks[-1] if chunks else None
    ends = {12} if last is None else {last.end, last.end + (last.size & 1)}
    if riff_end not in ends:
        raise DataError(
            describe(path, "RIFF size", f"{max(ends) - 8} (its chunks end at byte {max(ends)})", f"{riff_end - 8} ({riff_end - max(ends)} bytes of junk)")
        )
    if file_size not in ends:
        raise DataError(
            describe(path, "file size", f"{riff_end} bytes (8 + the RIFF header's size)", f"{file_size} bytes ({file_size - riff_end} trailing bytes)")
        )


def _check_wave_format(path: pathlib.Path, f: Any, endian: str, fmt: _Chunk, data: _Chunk) -> None:
    """For uncompressed formats: block_align matches channels x sample bytes and the data is whole frames."""
    if fmt.size < 16:
        raise DataError(describe(path, "fmt chunk size", "at least 16 bytes", f"{fmt.size}"))
    f.seek(fmt.offset + 8)
    body = f.read(min(fmt.size, 40))
    tag, channels, _rate, _byte_rate, block_align, bits = struct.unpack_from(endian + "HHIIHH", body)
    if tag == _EXTENSIBLE and len(body) >= 26:
        tag = struct.unpack_from(endian + "H", body, 24)[0]  # the sub-format GUID starts with the format tag
    if tag not in _FRAMED_FORMATS:
        return
    frame_bytes = channels * ((bits + 7) // 8)
    if channels == 0 or bits == 0 or block_align != frame_bytes:
        raise DataError(
            describe(
                path,
                "fmt block_align",
                f"{frame_bytes} bytes ({channels} channels x {bits}-bit {_FRAMED_FORMATS[tag]}), at least 1 channel",
                f"{block_align}",
            )
        )
    if data.size % block_align:
        raise DataError(
            describe(
                path,
                "data chunk size",
                f"a whole number of {block_align}-byte frames",
                f"{data.size} bytes ({data.size // block_align} frames + {data.size % block_align} bytes)",
            )
        )


def check_wav_layout(path: str | os.PathLike) -> None:
    """Check a RIFF (or RIFX) WAVE file's chunk sizes against the file: libsndfile silently shortens a
    truncated data chunk and ignores trailing bytes. Other formats are left to soundfile."""
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return
            endian = "<" if head[:4] == b"RIFF" else ">"
            riff_end = 8 + struct.unpack(endian + "I", head[4:8])[0]
            chunks = _riff_chunks(f, path, file_size, endian, riff_end)
            _check_riff_end(path, chunks, file_size, riff_end)
            found = {c.tag: c for c in reversed(chunks)}  # the first of each tag
            for tag in (b"fmt ", b"data"):
                if tag not in found:
                    raise DataError(describe(path, "chunks", f"a {tag.decode().strip()!r} chunk", f"{[c.tag.decode('latin1') for c in chunks]}"))
            _check_wave_format(path, f, endian, found[b"fmt "], found[b"data"])
    except OSError as err:
        raise DataError(describe(path, None, "a readable audio file", f"{type(err).__name__}: {err}")) from err


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """soundfile read as f32 (integer PCM scaled to [-1, 1)), channels averaged to mono.

    A WAV whose chunk sizes disagree with the file is refused (`check_wav_layout`)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(describe(path, None, "an audio file", "no such file"))
    check_wav_layout(path)
    try:
        data, samplerate = soundfile.read(path, dtype="float32", always_2d=False)
    except SOUNDFILE_ERRORS as err:
        raise DataError(describe(path, None, "a readable audio file (WAV)", f"{type(err).__name__}: {err}")) from err
    if data.ndim > 1:
        data = np.mean(data, axis=1, dtype=np.float32)  # the original averages channels (np.average)
    if data.size == 0:
        raise DataError(describe(path, "samples", "at least one audio sample", "an empty track"))
    if not np.all(np.isfinite(data)):
        raise DataError(describe(path, "samples", "finite samples", "NaN/Inf"))
    return np.ascontiguousarray(data, dtype=np.float32), int(samplerate)


def norm_factor(data: np.ndarray, threshold: float = NORM_THRESHOLD) -> float:
    """max|x| if it exceeds the threshold, else 1.0 (quiet tracks are not amplified)."""
    peak = float(max(data.max(), -data.min())) if data.size else 0.0  # max|x| without an |x| copy of the track
    return max(peak, 1.0e-8) if peak > threshold else 1.0


def normalize(data: np.ndarray, threshold: float = NORM_THRESHOLD) -> np.ndarray:
    """Divide by max|x| when that exceeds the threshold ("nva2f")."""
    peak = float(np.max(np.abs(data))) if data.size else 0.0
    if peak > threshold:
        return (data / np.float32(max(peak, 1.0e-8))).astype(np.float32)
    return data


def resample_poly_nva2f(data: np.ndarray, old_rate: int, new_rate: int) -> np.ndarray:
    """The original's polyphase rule: up/down approximated at 1/1000 (44.1k -> 16k is 363/1001)."""
    if old_rate == new_rate:
        return data
    ratio = float(new_rate) / old_rate
    up = max(int(round(min(ratio, 1) * 1000)), 1)
    down = max(int(round(up / ratio)), 1)
    return scipy.signal.resample_poly(data.astype(np.float32), up, down).astype(np.float32)


def _sinc_kernel(orig: int, new: int, width_zeros: int = 6, rolloff: float = 0.99) -> tuple[np.ndarray, int]:
    """Hann-windowed sinc bank [new, 2*width + orig] as torchaudio builds it (in f32, like the input)."""
    base = min(orig, new) * rolloff
    width = math.ceil(width_zeros * orig / base)
    idx = np.arange(-width, width + orig, dtype=np.float32)[None, :] / np.float32(orig)
    t = np.arange(0, -new, -1, dtype=np.float32)[:, None] / np.float32(new) + idx
    t = t * np.float32(base)
    t = np.clip(t, -width_zeros, width_zeros).astype(np.float32)
    window = np.cos(t * np.float32(math.pi / width_zeros / 2)) ** 2
    t = t * np.float32(math.pi)
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(t == 0, np.float32(1.0), np.sin(t) / t)
    kernel = kernel * (window * np.float32(base / orig))
    return kernel.astype(np.float32), width


def resample_sinc(data: np.ndarray, old_rate: int, new_rate: int) -> np.ndarray:
    """torchaudio.functional.resample defaults (sinc_interp_hann, width 6, rolloff 0.99), in numpy.

    Rates are reduced by their gcd; output length ceil(new * N / orig).
    """
    if old_rate == new_rate:
        return np.asarray(data, np.float32)  # no copy of a float32 track (long clips: memory)
    g = math.gcd(int(old_rate), int(new_rate))
    orig, new = int(old_rate) // g, int(new_rate) // g
    kernel, width = _sinc_kernel(orig, new)
    length = data.size
    padded = np.concatenate(
        [np.zeros(width, np.float32), data.astype(np.float32), np.zeros(width + orig, np.float32)]
    )
    num_steps = (padded.size - kernel.shape[1]) // orig + 1
    frames = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape[1])[::orig][:num_steps]
    out = (frames @ kernel.T).reshape(-1)  # [steps, new] -> interleaved phases
    target = math.ceil(new * length / orig)
    return np.ascontiguousarray(out[:target], dtype=np.float32)


def preprocess(data: np.ndarray, samplerate: int, method: str = "w2v", new_samplerate: int | None = SAMPLERATE) -> AudioTrack:
    """Apply "w2v" (sinc resample, no normalisation, norm_factor set) or "nva2f" (normalise, polyphase)."""
    if method == "nva2f":
        data = normalize(data.astype(np.float32))
        if new_samplerate is not None:
            data = resample_poly_nva2f(data, samplerate, new_samplerate)
            samplerate = new_samplerate
        return AudioTrack(data, samplerate, 1.0)
    if method == "w2v":
        if new_samplerate is not None:
            data = resample_sinc(data, samplerate, new_samplerate)
            samplerate = new_samplerate
        return AudioTrack(np.asarray(data, np.float32), samplerate, norm_factor(data))
    raise DataError(describe("AUDIO_PREPROC_METHOD", None, f"one of {PREPROC_METHODS}", repr(method)))


def load_track(path: str | os.PathLike, method: str = "w2v", samplerate: int | None = SAMPLERATE) -> AudioTrack:
    """Read a wav and preprocess it as training does (`read_and_preproc_audio_track`)."""
    data, rate = read_wav(path)
    return preprocess(data, rate, method, samplerate)


def load_audio(path: str | os.PathLike, method: str = "w2v", samplerate: int = SAMPLERATE) -> np.ndarray:
    """f32 [N] samples at `samplerate` (16 kHz), preprocessed by `method`."""
    return load_track(path, method, samplerate).data


# ----------------------------------------------------------------------------------------------
# Windows
# ----------------------------------------------------------------------------------------------


def sec_to_sample(seconds: np.ndarray | float, samplerate: int = SAMPLERATE) -> np.ndarray:
    """round(s * sr) with round-half-to-even, as Python's round."""
    return np.rint(np.asarray(seconds, dtype=np.float64) * samplerate).astype(np.int64)


def padded_windows(audio: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
    """[len(starts), size] slices audio[s : s + size], zero outside the track."""
    starts = np.asarray(starts, dtype=np.int64)
    audio = np.asarray(audio, dtype=np.float32)
    if starts.size == 0:
        return np.zeros((0, size), dtype=np.float32)
    # Copy just the span the windows cover (zeros outside the track), then take strided views (no [T, size]
    # index array); a few windows of a long track never copy the whole track.
    lo, hi = int(starts.min()), int(starts.max()) + size
    padded = np.zeros(hi - lo, dtype=np.float32)
    a, b = max(lo, 0), min(hi, audio.size)
    if b > a:
        padded[a - lo : b - lo] = audio[a:b]
    views = np.lib.stride_tricks.sliding_window_view(padded, size)
    return views[starts - lo].copy()


def frame_windows(
    audio: np.ndarray,
    num_frames: int,
    fps: float,
    size: int = 8320,
    offset: float = 0.0,
    samplerate: int = SAMPLERATE,
    buffer_ofs: int | None = None,
    first_frame: int = 0,
) -> np.ndarray:
    """[T, size] regression windows: frame i centred at (i + 0.5) / fps + offset seconds.

    Centre sample c = round-half-even(t * sr); window [c - buffer_ofs, c - buffer_ofs + size),
    buffer_ofs = size // 2 (4160 for 8320), zero-padded outside the track. Frames are
    first_frame .. first_frame + num_frames - 1.
    """
    buffer_ofs = size // 2 if buffer_ofs is None else buffer_ofs
    frames = np.arange(first_frame, first_frame + num_frames, dtype=np.float64)
    t = (frames + 0.5) / fps  # same float ops as the original: t, then t + shift, then * sr
    centres = sec_to_sample(t + offset, samplerate)
    return padded_windows(np.asarray(audio, dtype=np.float32), centres - buffer_ofs, size)


def segment(audio: np.ndarray, t0: float, t1: float, samplerate: int = SAMPLERATE) -> np.ndarray:
    """Diffusion segment: samples round(t0 * sr) .. round(t1 * sr) inclusive, zero-padded."""
    a, b = int(sec_to_sample(t0, samplerate)), int(sec_to_sample(t1, samplerate))
    return padded_windows(np.asarray(audio, dtype=np.float32), np.array([a]), b - a + 1)[0]


# ----------------------------------------------------------------------------------------------
# Muted-shot noise
# ----------------------------------------------------------------------------------------------


def muted_noise(
    kind: str | None, num_samples: int, scale: float, rng: np.random.Generator, samplerate: int = SAMPLERATE
) -> np.ndarray:
    """Noise for muted clips (`generate_audio_noise`), float64 like the original; cast after scaling.

    "mic": random-phase spectrogram, per-bin log magnitude N(39 exp(-f/300) - 121 dB, 5.85 dB)
    for ceil((N - 256) / 128) + 3 STFT columns, inverted with scipy istft (Hann, nperseg 256).
    RNG draws (columns of magnitudes, then all phases) follow the original's order.
    "gauss": N(0, 1) * scale. None: zeros.
    """
    if kind is None:
        return np.zeros(num_samples, dtype=np.float32)
    if kind == "gauss":
        return rng.normal(0.0, 1.0, num_samples) * scale
    if kind == "mic":
        nperseg = 256
        num_bins = nperseg // 2 + 1
        num_cols = math.ceil((num_samples - nperseg) / (nperseg - nperseg // 2)) + 3
        freqs = np.linspace(0, samplerate // 2, num_bins)
        log_mean = 39.0 * np.exp(-freqs / 300.0) - 121.0
        log_mag = rng.normal(loc=log_mean, scale=5.85, size=(num_cols, num_bins))  # row t == the loop's draw t
        magnitude = np.sqrt(np.power(10.0, log_mag / 10.0)).T  # [bins, cols]
        phase = rng.random(size=(num_bins, num_cols)) * 2 * np.pi
        _, samples = scipy.signal.istft(magnitude * np.exp(1j * phase), samplerate)
        return samples[:num_samples] * scale
    raise DataError(describe("AUG_MUTED_AUDIO_NOISE_TYPE", None, "None, 'mic' or 'gauss'", repr(kind)))


def muted_windows(
    num_windows: int,
    size: int,
    kind: str | None,
    scale: float,
    local_scale_range: tuple[float, float] | None,
    rng: np.random.Generator,
    samplerate: int = SAMPLERATE,
) -> np.ndarray:
    """[S, size] f32 regression inputs of a muted sample: one local scale, then one noise per window."""
    if kind is None:
        return np.zeros((num_windows, size), dtype=np.float32)
    local = 1.0 if local_scale_range is None else rng.uniform(*local_scale_range)
    windows = [muted_noise(kind, size, scale, rng, samplerate) * local for _ in range(num_windows)]
    return np.stack(windows).astype(np.float32)


def muted_segment(
    num_samples: int,
    kind: str | None,
    scale: float,
    local_scale_range: tuple[float, float] | None,
    rng: np.random.Generator,
    samplerate: int = SAMPLERATE,
) -> np.ndarray:
    """[N] f32 diffusion input of a muted clip: one continuous noise at scale * local scale."""
    if kind is None:
        return np.zeros(num_samples, dtype=np.float32)
    local = 1.0 if local_scale_range is None else rng.uniform(*local_scale_range)
    return muted_noise(kind, num_samples, scale * local, rng, samplerate).astype(np.float32)
