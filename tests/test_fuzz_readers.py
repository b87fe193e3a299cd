"""Seeded byte fuzzing of the dataset readers (.npy, .pc2, Maya .xml + .mc, .wav).

Each format gets a few hundred mutations of a small valid file: bit flips, byte overwrites,
truncations, appended bytes and changed header length fields. Whatever the mutation, a reader may
only return an array or raise `DataError`; and a file whose length disagrees with its header
(every truncation, every append, every changed length field) must be refused.
"""

from __future__ import annotations

import dataclasses
import pathlib
import struct
from typing import Callable

import numpy as np
import pytest
import soundfile

from a2f_jax.data import actor, audio, caches, check
from a2f_jax.errors import DataError

NUM_MUTATIONS = 300
KINDS = ("flip", "overwrite", "truncate", "append", "field")


@dataclasses.dataclass
class Format:
    name: str
    suffix: str  # of the mutated file
    raw: bytes  # a valid file
    fields: list[tuple[int, str]]  # (offset, struct format) of length fields that any change must break
    read: Callable[[pathlib.Path], object]  # every reader of the format, called on the mutated file
    sized: bool = True  # the header implies the file's length (not so for XML text)


def _frames(t: int = 3, v: int = 4) -> np.ndarray:
    return np.random.default_rng(7).normal(0.0, 1.0, (t, v, 3)).astype(np.float32)


def _npy_format(tmp: pathlib.Path) -> Format:
    caches.write_npy(tmp / "ref.npy", _frames())
    raw = (tmp / "ref.npy").read_bytes()
    # The header length (uint16 at 8) is a length field; shape digits are covered by flips/overwrites.
    return Format("npy", ".npy", raw, [(8, "<H")], lambda p: (caches.read_cache(p), caches.cache_num_verts(p)))


def _pc2_format(tmp: pathlib.Path) -> Format:
    caches.write_pc2(tmp / "ref.pc2", _frames())
    raw = (tmp / "ref.pc2").read_bytes()
    return Format("pc2", ".pc2", raw, [(16, "<i"), (28, "<i")], lambda p: (caches.read_cache(p), caches.cache_num_verts(p)))


def _mc_fields(raw: bytes) -> list[tuple[int, str]]:
    """Header size, then per frame block: block size and data length. (The channel name length is not
    one: 13..16 pad to the same 16 bytes.)"""
    fields, pos = [(4, ">i")], 8 + struct.unpack_from(">i", raw, 4)[0]
    while pos < len(raw):
        block = struct.unpack_from(">i", raw, pos + 4)[0]
        fields.append((pos + 4, ">i"))
        fields.append((raw.index(b"FVCA", pos) + 4, ">i"))
        pos += 8 + block
    return fields


def _mc_format(tmp: pathlib.Path) -> Format:
    caches.write_maya_cache(tmp / "ref.xml", _frames(), fps=30.0)
    raw = (tmp / "ref.mc").read_bytes()
    xml = (tmp / "ref.xml").read_text()

    def read(path: pathlib.Path) -> object:
        path.with_suffix(".xml").write_text(xml)
        return caches.read_cache(path.with_suffix(".xml"))

    return Format("mc", ".mc", raw, _mc_fields(raw), read)


def _xml_format(tmp: pathlib.Path) -> Format:
    """Mutations of the XML description (the .mc stays valid); no length fields in a text file."""
    caches.write_maya_cache(tmp / "ref.xml", _frames(), fps=30.0)
    mc = (tmp / "ref.mc").read_bytes()

    def read(path: pathlib.Path) -> object:
        path.with_suffix(".mc").write_bytes(mc)
        return caches.read_cache(path)

    return Format("xml", ".xml", (tmp / "ref.xml").read_bytes(), [], read, sized=False)


def _wav_format(tmp: pathlib.Path) -> Format:
    samples = (np.sin(np.arange(400) / 7.0) * 0.5).astype(np.float32)
    soundfile.write(tmp / "ref.wav", samples, 16000, subtype="PCM_16", format="WAV")
    raw = (tmp / "ref.wav").read_bytes()
    data_at = raw.index(b"data") + 4
    return Format("wav", ".wav", raw, [(4, "<I"), (data_at, "<I")], lambda p: (audio.read_wav(p), check.audio_seconds(p)))


def _wavex_format(tmp: pathlib.Path) -> Format:
    """WAVE_FORMAT_EXTENSIBLE, float, stereo: a 40-byte fmt chunk, then fact and PEAK chunks before the data."""
    samples = np.stack([np.sin(np.arange(300) / 5.0), np.cos(np.arange(300) / 3.0)], axis=1).astype(np.float32) * 0.5
    soundfile.write(tmp / "ref.wav", samples, 16000, subtype="FLOAT", format="WAVEX")
    raw = (tmp / "ref.wav").read_bytes()
    fields = [(4, "<I"), (raw.index(b"data") + 4, "<I"), (raw.index(b"fmt ") + 4, "<I")]
    return Format("wavex", ".wav", raw, fields, lambda p: (audio.read_wav(p), check.audio_seconds(p)))


def _npz_format(tmp: pathlib.Path) -> Format:
    """A plain npz (as jaw/eye animation and blendshape files); zip tolerates appended bytes, so only
    the escaping exceptions are checked."""
    np.savez(tmp / "ref.npz", s01=_frames(), s02=_frames(2, 3))
    return Format("npz", ".npz", (tmp / "ref.npz").read_bytes(), [], actor.load_npz, sized=False)


FORMATS = {
    "npy": _npy_format,
    "npz": _npz_format,
    "pc2": _pc2_format,
    "mc": _mc_format,
    "xml": _xml_format,
    "wav": _wav_format,
    "wavex": _wavex_format,
}


def _mutate(fmt: Format, rng: np.random.Generator) -> tuple[str, bytes]:
    raw = bytearray(fmt.raw)
    kind = KINDS[int(rng.integers(len(KINDS)))] if fmt.fields else KINDS[int(rng.integers(len(KINDS) - 1))]
    if kind == "flip":
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(len(raw)))
            raw[at] ^= 1 << int(rng.integers(8))
    elif kind == "overwrite":
        at = int(rng.integers(len(raw)))
        raw[at : at + 4] = rng.integers(0, 256, int(rng.integers(1, 5)), dtype=np.uint8).tobytes()
        raw = raw[: len(fmt.raw)]
    elif kind == "truncate":
        raw = raw[: int(rng.integers(len(raw)))]
    elif kind == "append":
        raw += rng.integers(0, 256, int(rng.integers(1, 65)), dtype=np.uint8).tobytes()
    else:
        at, code = fmt.fields[int(rng.integers(len(fmt.fields)))]
        old = struct.unpack_from(code, raw, at)[0]
        lo, hi = (0, 2**16) if code.endswith("H") else ((0, 2**32) if code.endswith("I") else (-(2**31), 2**31))
        choices = [old + 1, old - 1, old + 4, old - 4, old * 2, 0, lo, hi - 1, int(rng.integers(lo, hi))]
        valid = [c for c in choices if lo <= c < hi and c != old]
        new = valid[int(rng.integers(len(valid)))]
        struct.pack_into(code, raw, at, new)
    return kind, bytes(raw)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_only_data_errors_escape_and_no_length_mismatch_is_accepted(name, tmp_path):
    fmt = FORMATS[name](tmp_path)
    fmt.read(tmp_path / f"ref{fmt.suffix}")  # the unmutated file reads
    rng = np.random.default_rng([20251204, len(name)])
    escaped, accepted = [], []
    path = tmp_path / f"m{fmt.suffix}"
    for i in range(NUM_MUTATIONS):
        kind, raw = _mutate(fmt, rng)
        path.write_bytes(raw)
        try:
            fmt.read(path)
        except DataError:
            continue
        except Exception as err:  # noqa: BLE001 - anything else escaping is the failure this test looks for
            escaped.append(f"#{i} {kind}: {type(err).__name__}: {err}"[:200])
            continue
        if fmt.sized and kind in ("truncate", "append", "field") and raw != fmt.raw:
            accepted.append(f"#{i} {kind}: {len(raw)} bytes (valid file: {len(fmt.raw)})")
    assert not escaped, f"{len(escaped)} non-DataError exceptions, e.g.\n" + "\n".join(escaped[:10])
    assert not accepted, f"{len(accepted)} length-mismatched files accepted, e.g.\n" + "\n".join(accepted[:10])
