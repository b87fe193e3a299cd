"""Cache formats against docs/dataset_format.md: discovery, npy, PointCache2, Maya nCache."""

from __future__ import annotations

import io
import pathlib
import struct
import zipfile

import numpy as np
import pytest

from a2f_jax.data import actor, caches
from a2f_jax.errors import DataError
from a2f_jax.preproc import sources

NAME = b"head_meshShape\0\0"  # name_len 15 (with NUL), padded to 16


def _frames(t: int = 4, v: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 10.0, (t, v, 3)).astype(np.float32)


def _xml(path: pathlib.Path, end: int, tpf: int = 200, channel_type: str = "FloatVectorArray", cache_type: str = "OneFile") -> None:
    path.write_text(
        '<?xml version="1.0"?>\n<Autodesk_Cache_File>\n'
        f'  <cacheType Type="{cache_type}" Format="mcc"/>\n'
        f'  <time Range="0-{end}"/>\n  <cacheTimePerFrame TimePerFrame="{tpf}"/>\n'
        '  <cacheVersion Version="2.0"/>\n  <Channels>\n'
        f'    <channel0 ChannelName="head_meshShape" ChannelType="{channel_type}" ChannelInterpretation="positions" '
        f'SamplingType="Regular" SamplingRate="{tpf}" StartTime="0" EndTime="{end}"/>\n'
        "  </Channels>\n</Autodesk_Cache_File>\n"
    )


def _hand_built_mc(frames: np.ndarray, tag: bytes = b"FVCA", tpf: int = 200) -> bytes:
    """The .mc bytes exactly as docs/dataset_format.md lays them out (the original writer's header, ETIM = 1)."""
    item = 4 if tag == b"FVCA" else 8
    fmt = ">f4" if tag == b"FVCA" else ">f8"
    n = frames.shape[1]
    out = b"FOR4" + struct.pack(">i", 40)
    out += b"CACH" + b"VRSN" + struct.pack(">i", 4) + b"0.1\0"
    out += b"STIM" + struct.pack(">ii", 4, 0) + b"ETIM" + struct.pack(">ii", 4, 1)
    for i, frame in enumerate(frames):
        out += b"FOR4" + struct.pack(">i", 60 + n * 3 * item)
        out += b"MYCH" + b"TIME" + struct.pack(">ii", 4, tpf * i)
        out += b"CHNM" + struct.pack(">i", 15) + NAME
        out += b"SIZE" + struct.pack(">ii", 4, n)
        out += tag + struct.pack(">i", n * 3 * item) + frame.astype(fmt).tobytes()
    return out


# ---------------------------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------------------------


def test_list_shots_python_string_order_skips_dot_files(tmp_path):
    for name in ["cp2_neutral", "cp10_neutral", "cp1_neutral", "eg1_neutral", ".DS_Store", ".hidden_dir"]:
        (tmp_path / name).mkdir()
    (tmp_path / "cp1_readme.txt").write_text("files count too")
    assert caches.list_shots(tmp_path) == ["cp10_neutral", "cp1_neutral", "cp1_readme.txt", "cp2_neutral", "eg1_neutral"]


def test_list_shots_missing_root(tmp_path):
    with pytest.raises(DataError, match="no such directory"):
        caches.list_shots(tmp_path / "nope")


def test_find_cache_file_priority_npy_then_xml_then_pc2(tmp_path):
    shot = tmp_path / "s1"
    shot.mkdir()
    (shot / "s1.pc2").write_bytes(b"")
    assert caches.find_cache_file(tmp_path, "s1").name == "s1.pc2"
    (shot / "s1.xml").write_text("<x/>")
    assert caches.find_cache_file(tmp_path, "s1").name == "s1.xml"
    (shot / "s1.npy").write_bytes(b"")
    assert caches.find_cache_file(tmp_path, "s1").name == "s1.npy"


def test_find_cache_file_requires_per_shot_folder(tmp_path):
    np.save(tmp_path / "s1.npy", _frames())  # directly in the root: not found, as the original
    with pytest.raises(DataError) as err:
        caches.find_cache_file(tmp_path, "s1")
    assert "s1.npy, s1.xml, s1.pc2" in str(err.value) and "no such folder" in str(err.value)


# ---------------------------------------------------------------------------------------------
# npy
# ---------------------------------------------------------------------------------------------


def test_npy_read_casts_to_f32(tmp_path):
    x = _frames().astype(np.float64)
    np.save(tmp_path / "a.npy", x)
    y = caches.read_cache(tmp_path / "a.npy")
    assert y.dtype == np.float32 and np.array_equal(y, x.astype(np.float32))
    assert caches.read_npy(tmp_path / "a.npy").dtype == np.float64  # as stored


def test_npy_wrong_shape(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 5, 2), np.float32))
    with pytest.raises(DataError, match=r"a\.npy \[shape\]: expected \[T, V, 3\].*found \[4, 5, 2\]"):
        caches.read_cache(tmp_path / "a.npy")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_cache_rejected(tmp_path, bad):
    x = _frames()
    x[2, 3, 1] = bad
    np.save(tmp_path / "a.npy", x)
    with pytest.raises(DataError) as err:
        caches.read_cache(tmp_path / "a.npy")
    msg = str(err.value)
    assert "a.npy" in msg and "frame 2, vertex 3" in msg and "NaN/Inf" in msg


def test_unknown_extension(tmp_path):
    with pytest.raises(DataError, match="one of .npy, .xml, .pc2"):
        caches.read_cache(tmp_path / "a.abc")


NPY_READERS = {
    "read_cache": caches.read_cache,
    "cache_num_verts": caches.cache_num_verts,
    "actor.load_array": actor.load_array,
    "sources.load_npy": lambda p: sources.load_npy(p, "SKIN_NEUTRAL_FPATH"),
}


@pytest.mark.parametrize("reader", sorted(NPY_READERS))
def test_npy_longer_or_shorter_than_its_header_rejected(tmp_path, reader):
    np.save(tmp_path / "a.npy", _frames())
    raw = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "long.npy").write_bytes(raw + b"\0" * 12)  # np.load alone ignores these
    with pytest.raises(DataError) as err:
        NPY_READERS[reader](tmp_path / "long.npy")
    assert f"long.npy [size]: expected {len(raw)} bytes (128 header + [4, 5, 3] x 4-byte <f4), found {len(raw) + 12} bytes (12 trailing bytes)" in str(err.value)
    (tmp_path / "short.npy").write_bytes(raw[:-4])
    with pytest.raises(DataError, match=rf"short\.npy \[size\]: expected {len(raw)} bytes .*found {len(raw) - 4} bytes \(truncated\)"):
        NPY_READERS[reader](tmp_path / "short.npy")


def test_npy_header_errors_are_ours_and_never_suggest_pickles(tmp_path):
    (tmp_path / "text.npy").write_bytes(b"1.0 2.0 3.0\n")
    with pytest.raises(DataError) as err:
        caches.read_cache(tmp_path / "text.npy")
    assert r"text.npy [magic]: expected a .npy file starting with b'\x93NUMPY', found b'1.0 2.'" in str(err.value)
    assert "pickle" not in str(err.value)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"obj\.npy \[header descr\]: expected plain numbers \(object arrays need pickles\), found object"):
        caches.read_npy(tmp_path / "obj.npy")
    np.save(tmp_path / "h.npy", _frames())
    raw = bytearray((tmp_path / "h.npy").read_bytes())
    raw[8:10] = struct.pack("<H", 60_000)  # header length beyond the file and numpy's limit
    (tmp_path / "h.npy").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"h\.npy \[header length\]: expected at most .* bytes, found 60000 bytes"):
        caches.cache_num_verts(tmp_path / "h.npy")


def test_npy_without_vertices_rejected(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 0, 3), np.float32))
    for read in (caches.read_cache, caches.cache_num_verts):
        with pytest.raises(DataError, match=r"a\.npy \[shape\]: expected \[T, V, 3\] with T >= 1 and V >= 1, found \[3, 0, 3\]"):
            read(tmp_path / "a.npy")


def test_npz_members_checked_and_zip_damage_is_a_data_error(tmp_path):
    np.savez(tmp_path / "ok.npz", s01=_frames(), s02=_frames(2, 3))
    assert sorted(actor.load_npz(tmp_path / "ok.npz")) == ["s01", "s02"]
    with zipfile.ZipFile(tmp_path / "long.npz", "w") as zf:  # a member with 8 bytes after its data
        buf = io.BytesIO()
        np.save(buf, _frames())
        zf.writestr("s01.npy", buf.getvalue() + b"\0" * 8)
    with pytest.raises(DataError, match=r"long\.npz member s01\.npy \[size\]: .*\(8 trailing bytes\)"):
        actor.load_npz(tmp_path / "long.npz")
    raw = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "torn.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"torn\.npz: expected a readable \.npz archive of plain arrays, found BadZipFile"):
        actor.load_npz(tmp_path / "torn.npz")


# ---------------------------------------------------------------------------------------------
# PointCache2
# ---------------------------------------------------------------------------------------------


def test_pc2_round_trip_and_header(tmp_path):
    x = _frames(6, 7)
    caches.write_pc2(tmp_path / "a.pc2", x)
    raw = (tmp_path / "a.pc2").read_bytes()
    assert struct.unpack("<12siiffi", raw[:32]) == (b"POINTCACHE2\0", 1, 7, 0.0, 1.0, 6)
    assert len(raw) == 32 + 6 * 7 * 12
    assert np.array_equal(np.frombuffer(raw[32:], "<f4").reshape(6, 7, 3), x)
    y = caches.read_cache(tmp_path / "a.pc2")
    assert y.dtype == np.float32 and np.array_equal(y, x)


def test_pc2_bad_signature_and_truncation(tmp_path):
    x = _frames(3, 4)
    caches.write_pc2(tmp_path / "a.pc2", x)
    raw = (tmp_path / "a.pc2").read_bytes()
    (tmp_path / "b.pc2").write_bytes(b"POINTCACHE3\0" + raw[12:])
    with pytest.raises(DataError, match="signature"):
        caches.read_pc2(tmp_path / "b.pc2")
    (tmp_path / "c.pc2").write_bytes(raw[:-5])
    with pytest.raises(DataError) as err:
        caches.read_pc2(tmp_path / "c.pc2")
    assert "c.pc2" in str(err.value) and f"{len(raw)} bytes" in str(err.value) and f"{len(raw) - 5} bytes" in str(err.value)


def test_pc2_longer_than_its_header_rejected(tmp_path):
    x = _frames(3, 4)
    caches.write_pc2(tmp_path / "a.pc2", x)
    raw = (tmp_path / "a.pc2").read_bytes()
    (tmp_path / "a.pc2").write_bytes(raw + b"\0" * 12)  # one vertex more than the header says
    expected = f"a.pc2 [payload]: expected {len(raw)} bytes (3 frames x 4 vertices x 3 f32 + header), found {len(raw) + 12} bytes (12 bytes too long)"
    for read in (caches.read_cache, caches.cache_num_verts):
        with pytest.raises(DataError) as err:
            read(tmp_path / "a.pc2")
        assert expected in str(err.value)
    (tmp_path / "a.pc2").write_bytes(raw[:-12])
    with pytest.raises(DataError, match=r"\(truncated\)"):
        caches.cache_num_verts(tmp_path / "a.pc2")  # the header-only path checks the size too


def test_pc2_inf_rejected(tmp_path):
    x = _frames(3, 4)
    x[0, 0, 0] = np.inf
    caches.write_pc2(tmp_path / "a.pc2", x)
    with pytest.raises(DataError, match="NaN/Inf"):
        caches.read_cache(tmp_path / "a.pc2")


# ---------------------------------------------------------------------------------------------
# Maya nCache
# ---------------------------------------------------------------------------------------------


def test_maya_round_trip_bit_exact_f32(tmp_path):
    x = _frames(7, 11)
    x[0, 0] = [np.float32(1e-40), -0.0, np.finfo(np.float32).max]  # denormal, signed zero, max
    caches.write_maya_cache(tmp_path / "s" / "s.xml", x, fps=30.0)
    y = caches.read_cache(tmp_path / "s" / "s.xml")
    assert y.dtype == np.float32
    assert y.tobytes() == x.tobytes()


def test_maya_round_trip_f64_downcast(tmp_path):
    x = np.random.default_rng(1).normal(size=(3, 4, 3))
    caches.write_maya_cache(tmp_path / "d.xml", x, fps=24.0, dtype=np.float64)
    assert b"DVCA" in (tmp_path / "d.mc").read_bytes()
    assert 'ChannelType="DoubleVectorArray"' in (tmp_path / "d.xml").read_text()
    assert np.array_equal(caches.read_maya_cache(tmp_path / "d.xml"), x.astype(np.float32))


def test_maya_writer_byte_layout_field_by_field(tmp_path):
    """Our writer against docs/dataset_format.md, field by field (ETIM: the real end tick, see write_maya_cache)."""
    x = _frames(3, 2)
    caches.write_maya_cache(tmp_path / "w.xml", x, fps=30.0)
    raw = (tmp_path / "w.mc").read_bytes()
    assert raw[:4] == b"FOR4" and struct.unpack(">i", raw[4:8])[0] == 40
    assert raw[8:24] == b"CACHVRSN" + struct.pack(">i", 4) + b"0.1\0"
    assert raw[24:36] == b"STIM" + struct.pack(">ii", 4, 0)
    assert raw[36:48] == b"ETIM" + struct.pack(">ii", 4, 400)  # (3 - 1) * 6000 / 30
    pos = 48
    for i in range(3):
        block = raw[pos : pos + 8 + 60 + 2 * 12]
        assert block[:4] == b"FOR4"
        assert struct.unpack(">i", block[4:8])[0] == 60 + 2 * 12
        assert block[8:16] == b"MYCHTIME"
        assert struct.unpack(">ii", block[16:24]) == (4, 200 * i)
        assert block[24:28] == b"CHNM" and struct.unpack(">i", block[28:32])[0] == 15 and block[32:48] == NAME
        assert block[48:52] == b"SIZE" and struct.unpack(">ii", block[52:60]) == (4, 2)
        assert block[60:64] == b"FVCA" and struct.unpack(">i", block[64:68])[0] == 24
        assert np.array_equal(np.frombuffer(block[68:92], ">f4").reshape(2, 3), x[i])
        pos += len(block)
    assert pos == len(raw)
    # Apart from ETIM, the bytes equal the hand-built layout of the original writer.
    hand = _hand_built_mc(x)
    assert raw[:36] == hand[:36] and raw[48:] == hand[48:]
    xml = (tmp_path / "w.xml").read_text()
    for needle in ['Type="OneFile"', 'Range="0-400"', 'TimePerFrame="200"', 'Version="2.0"', 'ChannelName="head_meshShape"',
                   'ChannelType="FloatVectorArray"', 'SamplingRate="200"', 'EndTime="400"']:
        assert needle in xml


@pytest.mark.parametrize("tag", [b"FVCA", b"DVCA"])
def test_maya_reader_hand_built_fixture(tmp_path, tag):
    x = np.arange(2 * 3 * 3, dtype=np.float64).reshape(2, 3, 3) * 0.25 - 1.5
    (tmp_path / "h.mc").write_bytes(_hand_built_mc(x, tag))
    _xml(tmp_path / "h.xml", end=200, channel_type="FloatVectorArray" if tag == b"FVCA" else "DoubleVectorArray")
    y = caches.read_cache(tmp_path / "h.xml")
    assert y.shape == (2, 3, 3) and y.dtype == np.float32
    assert np.array_equal(y, x.astype(np.float32))


def test_maya_truncated_mc(tmp_path):
    x = _frames(3, 4)
    caches.write_maya_cache(tmp_path / "t.xml", x, fps=30.0)
    raw = (tmp_path / "t.mc").read_bytes()
    (tmp_path / "t.mc").write_bytes(raw[:-10])
    with pytest.raises(DataError) as err:
        caches.read_cache(tmp_path / "t.xml")
    msg = str(err.value)
    assert "t.mc" in msg and "frame 2 FVCA payload" in msg and "48 more bytes" in msg and "38" in msg and "truncated" in msg


def test_maya_xml_mc_frame_count_mismatch(tmp_path):
    x = _frames(3, 4)
    (tmp_path / "m.mc").write_bytes(_hand_built_mc(x))
    _xml(tmp_path / "m.xml", end=9 * 200)  # the XML describes 10 frames
    with pytest.raises(DataError) as err:
        caches.read_cache(tmp_path / "m.xml")
    msg = str(err.value)
    assert "m.xml" in msg and "expected 10 frames" in msg and "found 3 frames in m.mc" in msg


def test_maya_xml_mc_type_mismatch(tmp_path):
    x = _frames(2, 4)
    (tmp_path / "m.mc").write_bytes(_hand_built_mc(x, b"FVCA"))
    _xml(tmp_path / "m.xml", end=200, channel_type="DoubleVectorArray")
    with pytest.raises(DataError, match=r"m\.xml \[ChannelType\]: expected DoubleVectorArray data \(DVCA\).*found FVCA"):
        caches.read_cache(tmp_path / "m.xml")


def test_maya_buffer_size_mismatch(tmp_path):
    raw = bytearray(_hand_built_mc(_frames(1, 4)))
    at = raw.index(b"FVCA") + 4
    raw[at : at + 4] = struct.pack(">i", 40)
    (tmp_path / "b.mc").write_bytes(bytes(raw))
    _xml(tmp_path / "b.xml", end=0)
    with pytest.raises(DataError, match=r"expected 48 bytes \(4 points x 3 x 4\), found 40"):
        caches.read_cache(tmp_path / "b.xml")


def test_maya_bad_tags_type_and_missing_mc(tmp_path):
    x = _frames(2, 3)
    raw = bytearray(_hand_built_mc(x))
    raw[raw.index(b"MYCH") : raw.index(b"MYCH") + 4] = b"XXXX"
    (tmp_path / "a.mc").write_bytes(bytes(raw))
    _xml(tmp_path / "a.xml", end=200)
    with pytest.raises(DataError, match=r"expected b'MYCH', found b'XXXX'"):
        caches.read_cache(tmp_path / "a.xml")
    _xml(tmp_path / "c.xml", end=200, cache_type="OneFilePerFrame")
    with pytest.raises(DataError, match="'OneFile'"):
        caches.read_cache(tmp_path / "c.xml")
    _xml(tmp_path / "d.xml", end=200)
    with pytest.raises(DataError, match=r"d\.mc.*no such file"):
        caches.read_cache(tmp_path / "d.xml")


@pytest.mark.parametrize("extra", [b"\0", b"\0\0", b"FOR"])
def test_maya_trailing_bytes_rejected(tmp_path, extra):
    caches.write_maya_cache(tmp_path / "t.xml", _frames(3, 4), fps=30.0)
    raw = (tmp_path / "t.mc").read_bytes()
    (tmp_path / "t.mc").write_bytes(raw + extra)
    with pytest.raises(DataError) as err:
        caches.read_cache(tmp_path / "t.xml")
    assert f"t.mc [frame 3 block at byte {len(raw)}]: expected the end of the file or a frame block, found {len(extra)} trailing bytes" in str(err.value)


def test_maya_field_sizes_and_block_sizes_must_match(tmp_path):
    x = _frames(2, 4)
    raw = bytearray(_hand_built_mc(x))
    at = raw.index(b"TIME") + 4
    raw[at : at + 4] = struct.pack(">i", 8)  # a TIME value of 8 bytes would shift everything after it
    (tmp_path / "a.mc").write_bytes(bytes(raw))
    _xml(tmp_path / "a.xml", end=200)
    with pytest.raises(DataError, match=rf"a\.mc \[frame 0 time size at byte {at}\]: expected 4, found 8"):
        caches.read_cache(tmp_path / "a.xml")
    raw = bytearray(_hand_built_mc(x))
    second = raw.index(b"FOR4", 8 + 40 + 8)
    raw[second + 4 : second + 8] = struct.pack(">i", struct.unpack(">i", raw[second + 4 : second + 8])[0] - 12)
    (tmp_path / "b.mc").write_bytes(bytes(raw))
    _xml(tmp_path / "b.xml", end=200)
    with pytest.raises(DataError, match=rf"b\.mc \[frame block at byte {second} size\]: expected 108 bytes .*, found 96"):
        caches.read_cache(tmp_path / "b.xml")


def test_maya_no_frames(tmp_path):
    (tmp_path / "e.mc").write_bytes(_hand_built_mc(np.zeros((0, 3, 3))))
    _xml(tmp_path / "e.xml", end=0)
    with pytest.raises(DataError, match="at least one frame"):
        caches.read_cache(tmp_path / "e.xml")


def test_cache_num_verts_all_formats(tmp_path):
    x = _frames(2, 9)
    caches.write_cache(tmp_path / "a.npy", x)
    caches.write_cache(tmp_path / "a.pc2", x)
    caches.write_cache(tmp_path / "a.xml", x)
    assert [caches.cache_num_verts(tmp_path / f"a{e}") for e in (".npy", ".pc2", ".xml")] == [9, 9, 9]


# ---------------------------------------------------------------------------------------------
# Files written by the original framework's own writers (fixtures/data/make_original_caches.py)
# ---------------------------------------------------------------------------------------------

ORIGINAL = pathlib.Path(__file__).resolve().parent / "fixtures" / "data" / "original_caches"


def test_reads_caches_written_by_the_original():
    with np.load(ORIGINAL / "expected.npz") as expected:
        dvca, fvca, pc2 = expected["dvca"], expected["fvca"], expected["pc2"]
    assert np.array_equal(caches.read_cache(ORIGINAL / "dvca.xml"), dvca.astype(np.float32))
    assert np.array_equal(caches.read_cache(ORIGINAL / "fvca.xml"), fvca)
    assert np.array_equal(caches.read_cache(ORIGINAL / "cache.pc2"), pc2)


@pytest.mark.parametrize("name,fps,dtype", [("dvca", 30.0, np.float64), ("fvca", 24.0, np.float32)])
def test_writer_bytes_equal_the_originals_except_etim(tmp_path, name, fps, dtype):
    with np.load(ORIGINAL / "expected.npz") as expected:
        frames = expected[name]
    caches.write_maya_cache(tmp_path / f"{name}.xml", frames, fps, dtype=dtype)
    ours, theirs = (tmp_path / f"{name}.mc").read_bytes(), (ORIGINAL / f"{name}.mc").read_bytes()
    end_tick = round((len(frames) - 1) * 6000 / fps)
    assert ours[36:48] == b"ETIM" + struct.pack(">ii", 4, end_tick)  # the original writes 1 here
    assert theirs[36:48] == b"ETIM" + struct.pack(">ii", 4, 1)
    assert ours[:36] == theirs[:36] and ours[48:] == theirs[48:]
    info_ours, info_theirs = caches.parse_maya_xml(tmp_path / f"{name}.xml"), caches.parse_maya_xml(ORIGINAL / f"{name}.xml")
    assert info_ours == info_theirs


def test_pc2_writer_bytes_equal_the_originals(tmp_path):
    with np.load(ORIGINAL / "expected.npz") as expected:
        caches.write_pc2(tmp_path / "c.pc2", expected["pc2"])
    assert (tmp_path / "c.pc2").read_bytes() == (ORIGINAL / "cache.pc2").read_bytes()
