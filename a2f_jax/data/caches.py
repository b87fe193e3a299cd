"""Animation caches: shot discovery and the three on-disk formats (npy, Maya nCache, PointCache2).

Layout (docs/dataset_format.md): `<root>/<shot>/<shot>.{npy,xml(+mc),pc2}`; every format needs the
per-shot folder. Every reader returns positions as `[T, V, 3]`.

Maya nCache "OneFile" (docs/dataset_format.md) is an IFF-style big-endian file:
  header group  "FOR4" size  <size bytes: "CACH" "VRSN" 4 "0.1\\0" "STIM" 4 t0 "ETIM" 4 t1>
  per frame     "FOR4" size "MYCH" "TIME" 4 ticks
                  "CHNM" name_len name+pad  "SIZE" 4 n  ("FVCA"|"DVCA") byte_len  payload
The block size counts the bytes after its own field, so it starts with "MYCH". Decoding is always
big-endian (the original only swaps bytes on win/linux hosts).
"""

from __future__ import annotations

import ast
import dataclasses
import math
import os
import pathlib
import struct
import xml.etree.ElementTree as ET
from typing import Any, Sequence
from xml.sax.saxutils import quoteattr

import numpy as np

from a2f_jax.errors import DataError, describe
from a2f_jax.io_utils import atomic_path

PathLike = str | os.PathLike

CACHE_EXTENSIONS = (".npy", ".xml", ".pc2")  # lookup order of find_cache_file
MAYA_TICKS_PER_SECOND = 6000.0
MAYA_DEFAULT_CHANNEL = "head_meshShape"
PC2_SIGNATURE = b"POINTCACHE2\0"
PC2_HEADER = struct.Struct("<12siiffi")  # signature, version, num_verts, start_frame, sample_rate, num_frames
NPY_MAGIC = b"\x93NUMPY"
NPY_MAX_HEADER = 10000  # numpy's own default limit (np.lib.format max_header_size)


# ----------------------------------------------------------------------------------------------
# Discovery
# ----------------------------------------------------------------------------------------------


def list_shots(root: PathLike) -> list[str]:
    """All entries of a cache root except dot-files, in Python string order (cp10 < cp1_ < cp2)."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise DataError(describe(root, None, "a cache directory with one entry per shot", "no such directory"))
    return sorted(entry for entry in os.listdir(root) if not entry.startswith("."))


def find_cache_file(root: PathLike, shot: str) -> pathlib.Path:
    """`<root>/<shot>/<shot>.npy`, else `.xml` (Maya, with its `.mc`), else `.pc2`: the first that exists."""
    folder = pathlib.Path(root) / shot
    for ext in CACHE_EXTENSIONS:
        candidate = folder / f"{shot}{ext}"
        if candidate.is_file():
            return candidate
    names = ", ".join(f"{shot}{ext}" for ext in CACHE_EXTENSIONS)
    found = sorted(os.listdir(folder)) if folder.is_dir() else "no such folder"
    raise DataError(describe(folder, f"shot {shot}", f"one of {names}", f"{found}"))


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------


def read_cache(path: PathLike) -> np.ndarray:
    """Read any supported cache as f32 [T, V, 3]; non-finite values are rejected.

    The original keeps an npy's stored dtype; we cast to f32 because every consumer works in f32
    (Maya and pc2 are f32 already).
    """
    path = pathlib.Path(path)
    ext = path.suffix
    if ext == ".npy":
        frames = read_npy(path)
    elif ext == ".xml":
        frames = read_maya_cache(path)
    elif ext == ".pc2":
        frames = read_pc2(path)
    else:
        raise DataError(describe(path, "extension", "one of .npy, .xml, .pc2", repr(ext)))
    frames = np.asarray(frames, dtype=np.float32)
    check_finite(frames, path)
    return frames


def check_finite(frames: np.ndarray, path: PathLike) -> None:
    """Raise DataError naming the first frame and vertex holding NaN/Inf."""
    finite = np.isfinite(frames)
    if finite.all():
        return
    first = np.argwhere(~finite)[0]
    where = f"frame {int(first[0])}" + (f", vertex {int(first[1])}" if frames.ndim > 2 else "")
    raise DataError(
        describe(path, where, "finite positions", f"{int((~finite).sum())} NaN/Inf values, first {frames[tuple(first)]}")
    )


def _check_positions_shape(shape: Sequence[int], path: PathLike) -> None:
    if len(shape) != 3 or shape[-1] != 3 or shape[0] == 0 or shape[1] == 0:
        raise DataError(describe(path, "shape", "[T, V, 3] with T >= 1 and V >= 1", f"{list(shape)}"))


@dataclasses.dataclass(frozen=True)
class NpyHeader:
    """The fields of a .npy header, checked against the size of the file (or zip member) holding it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int  # bytes before the array data

    @property
    def data_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def parse_npy_header(f: Any, size: int, where: PathLike) -> NpyHeader:
    """Parse the header of a .npy stream of `size` bytes and check that the data fills it exactly.

    np.load ignores trailing bytes and, on a bad magic, says to retry with allow_pickle; this says what
    is wrong instead. Object dtypes (pickles) are refused. Nothing is allocated from header counts.
    """
    head = f.read(12)
    if len(head) < 10 or head[:6] != NPY_MAGIC:
        raise DataError(describe(where, "magic", f"a .npy file starting with {NPY_MAGIC!r}", f"{bytes(head[:6])!r}"))
    version = (head[6], head[7])
    if version == (1, 0):
        header_len, start, encoding = struct.unpack_from("<H", head, 8)[0], 10, "latin1"
    elif version in ((2, 0), (3, 0)) and len(head) == 12:
        header_len, start = struct.unpack_from("<I", head, 8)[0], 12
        encoding = "latin1" if version == (2, 0) else "utf8"
    else:
        raise DataError(describe(where, "version", "a .npy format version 1.0, 2.0 or 3.0", f"{version[0]}.{version[1]}"))
    if header_len > NPY_MAX_HEADER or start + header_len > size:
        raise DataError(
            describe(where, "header length", f"at most {min(NPY_MAX_HEADER, size - start)} bytes", f"{header_len} bytes")
        )
    text = head[start : start + header_len]
    if header_len > len(text):
        text += f.read(header_len - len(text))
    try:
        fields = ast.literal_eval(bytes(text).decode(encoding))
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError) as err:
        raise DataError(describe(where, "header", "a Python dict literal", f"{type(err).__name__}: {err}")) from err
    if not isinstance(fields, dict) or set(fields) != {"descr", "fortran_order", "shape"}:
        raise DataError(describe(where, "header", "a dict with keys descr, fortran_order, shape", repr(fields)[:80]))
    shape, fortran = fields["shape"], fields["fortran_order"]
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise DataError(describe(where, "header shape", "a tuple of non-negative ints", repr(shape)[:80]))
    if not isinstance(fortran, bool):
        raise DataError(describe(where, "header fortran_order", "True or False", repr(fortran)[:80]))
    try:
        dtype = np.lib.format.descr_to_dtype(fields["descr"])
    except Exception as err:  # numpy raises many kinds on a malformed descr; all mean the same here
        raise DataError(describe(where, "header descr", "a numpy dtype descriptor", repr(fields["descr"])[:80])) from err
    if dtype.hasobject:
        raise DataError(describe(where, "header descr", "plain numbers (object arrays need pickles)", str(dtype)))
    header = NpyHeader(shape, dtype, fortran, start + header_len)
    expected = header.data_offset + header.data_bytes
    if size != expected:
        detail = "truncated" if size < expected else f"{size - expected} trailing bytes"
        raise DataError(
            describe(
                where,
                "size",
                f"{expected} bytes ({header.data_offset} header + {list(shape)} x {dtype.itemsize}-byte {dtype.str})",
                f"{size} bytes ({detail})",
            )
        )
    return header


def read_npy_header(path: PathLike) -> NpyHeader:
    """The checked header of a .npy file (see `parse_npy_header`)."""
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as f:
            return parse_npy_header(f, os.fstat(f.fileno()).st_size, path)
    except OSError as err:
        raise DataError(describe(path, None, "a readable .npy file", f"{type(err).__name__}: {err}")) from err


def load_npy(path: PathLike, mmap: bool = False) -> np.ndarray:
    """np.load (no pickles, optionally memory-mapped) of a .npy whose header matches its size exactly."""
    path = pathlib.Path(path)
    read_npy_header(path)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError, MemoryError) as err:
        raise DataError(describe(path, None, "a readable .npy array", f"{type(err).__name__}: {err}")) from err


def read_npy(path: PathLike) -> np.ndarray:
    """A checked .npy (see `load_npy`); dtype as stored, shape checked to be [T, V, 3]."""
    path = pathlib.Path(path)
    frames = load_npy(path)
    if not np.issubdtype(frames.dtype, np.floating):
        raise DataError(describe(path, "dtype", "a float array", f"{frames.dtype}"))
    _check_positions_shape(frames.shape, path)
    return frames


def _check_pc2_header(path: pathlib.Path, head: bytes, size: int) -> tuple[int, int]:
    """(num_frames, num_verts) of a PointCache2 header, checked against the file size."""
    if len(head) < PC2_HEADER.size:
        raise DataError(describe(path, "header", f"{PC2_HEADER.size} bytes", f"{len(head)} bytes"))
    signature, _version, num_verts, _start, _rate, num_frames = PC2_HEADER.unpack_from(head, 0)
    if signature != PC2_SIGNATURE:
        raise DataError(describe(path, "signature", repr(PC2_SIGNATURE), repr(signature)))
    if num_verts <= 0 or num_frames <= 0:
        raise DataError(
            describe(path, "header", "positive num_verts and num_frames", f"num_verts={num_verts}, num_frames={num_frames}")
        )
    expected = PC2_HEADER.size + num_frames * num_verts * 12
    if size != expected:
        detail = "truncated" if size < expected else f"{size - expected} bytes too long"
        raise DataError(
            describe(
                path,
                "payload",
                f"{expected} bytes ({num_frames} frames x {num_verts} vertices x 3 f32 + header)",
                f"{size} bytes ({detail})",
            )
        )
    return num_frames, num_verts


def read_pc2(path: PathLike) -> np.ndarray:
    """PointCache2 (little-endian): 32-byte header, then f32 values frame-major, vertex, xyz; the
    file must be exactly as long as the header says."""
    path = pathlib.Path(path)
    raw = path.read_bytes()
    num_frames, num_verts = _check_pc2_header(path, raw[: PC2_HEADER.size], len(raw))
    data = np.frombuffer(raw, dtype="<f4", count=num_frames * num_verts * 3, offset=PC2_HEADER.size)
    return data.astype(np.float32).reshape(num_frames, num_verts, 3)


def parse_maya_xml(xml_path: PathLike) -> dict:
    """The fields of a Maya cache description that we use or check."""
    xml_path = pathlib.Path(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as err:
        raise DataError(describe(xml_path, None, "a Maya cache XML description", f"{type(err).__name__}: {err}")) from err
    info: dict = {"type": "", "range": None, "time_per_frame": None, "version": "", "channels": []}
    elem = root.find("cacheType")
    if elem is not None:
        info["type"] = elem.get("Type", "")
    elem = root.find("time")
    if elem is not None:
        start, _, end = elem.get("Range", "0-0").partition("-")
        try:
            info["range"] = (int(start), int(end))
        except ValueError as err:
            raise DataError(describe(xml_path, "time@Range", "'<start>-<end>' in ticks", repr(elem.get("Range")))) from err
    elem = root.find("cacheTimePerFrame")
    if elem is not None:
        try:
            info["time_per_frame"] = int(elem.get("TimePerFrame", "0"))
        except ValueError as err:
            raise DataError(describe(xml_path, "TimePerFrame", "an integer", repr(elem.get("TimePerFrame")))) from err
    elem = root.find("cacheVersion")
    if elem is not None:
        info["version"] = elem.get("Version", "")
    channels = root.find("Channels")
    if channels is not None:
        for channel in channels:
            if channel.tag.startswith("channel"):
                info["channels"].append(
                    {
                        "name": channel.get("ChannelName", ""),
                        "type": channel.get("ChannelType", ""),
                        "sampling_rate": channel.get("SamplingRate", ""),
                    }
                )
    return info


class _McReader:
    """Sequential big-endian reads over the bytes of a .mc file; short reads raise a precise DataError."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.raw = path.read_bytes()
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.raw):
            raise DataError(
                describe(
                    self.path,
                    f"{what} at byte {self.pos}",
                    f"{n} more bytes",
                    f"{len(self.raw) - self.pos} (file truncated, {len(self.raw)} bytes in all)",
                )
            )
        chunk = self.raw[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def tag(self, expected: Sequence[bytes], what: str) -> bytes:
        at = self.pos
        found = self.take(4, what)
        if found not in expected:
            raise DataError(
                describe(self.path, f"{what} at byte {at}", " or ".join(repr(e) for e in expected), repr(found))
            )
        return found

    def int32(self, what: str) -> int:
        return struct.unpack(">i", self.take(4, what))[0]


def read_maya_cache(xml_path: PathLike) -> np.ndarray:
    """Maya nCache OneFile (.xml + sibling .mc) -> f32 [T, V, 3]; FVCA and DVCA both become f32.

    Every CHNM record is one frame (single-channel caches, as the original). Beyond the original
    we cross-check the XML against the binary: frame count from time@Range/TimePerFrame, channel
    data type, and a constant vertex count.
    """
    xml_path = pathlib.Path(xml_path)
    info = parse_maya_xml(xml_path)
    if info["type"] != "OneFile":
        raise DataError(describe(xml_path, "cacheType@Type", "'OneFile'", repr(info["type"])))
    mc_path = xml_path.with_suffix(".mc")
    if not mc_path.is_file():
        raise DataError(describe(mc_path, None, f"the binary data of {xml_path.name}", "no such file"))
    reader = _McReader(mc_path)
    reader.tag((b"FOR4",), "file header tag")
    header_size = reader.int32("file header size")
    header = reader.take(header_size, "file header")
    if header[:4] != b"CACH":
        raise DataError(describe(mc_path, "file header group type at byte 8", repr(b"CACH"), repr(header[:4])))

    frames: list[np.ndarray] = []
    tags_seen: set[bytes] = set()
    while reader.pos < len(reader.raw):  # every byte after the header belongs to a frame block
        left = len(reader.raw) - reader.pos
        if left < 8:
            raise DataError(
                describe(mc_path, f"frame {len(frames)} block at byte {reader.pos}", "the end of the file or a frame block", f"{left} trailing bytes")
            )
        _read_frame_block(reader, frames, tags_seen)
    if not frames:
        raise DataError(describe(mc_path, None, "at least one frame", "no frame data"))
    counts = {f.shape[0] for f in frames}
    if len(counts) != 1:
        raise DataError(describe(mc_path, "SIZE", "the same point count in every frame", f"{sorted(counts)}"))

    _check_xml_against_mc(xml_path, info, len(frames), tags_seen)
    return np.stack(frames, axis=0)


def _read_frame_block(reader: _McReader, frames: list[np.ndarray], tags_seen: set[bytes]) -> None:
    """One "FOR4" frame block: its channels are appended to `frames`; its size field must match its contents."""
    what = f"frame {len(frames)}"
    block_at = reader.pos
    reader.tag((b"FOR4",), f"{what} block tag")
    block_size = reader.int32(f"{what} block size")
    block_end = reader.pos + block_size
    reader.tag((b"MYCH",), f"{what} group type")
    reader.tag((b"TIME",), f"{what} time tag")
    _expect_field_size(reader, 4, f"{what} time size")
    reader.int32(f"{what} time value")
    while reader.pos < block_end:
        what = f"frame {len(frames)}"
        reader.tag((b"CHNM",), f"{what} channel name tag")
        name_len = reader.int32(f"{what} channel name length")
        reader.take((name_len + 3) & ~3, f"{what} channel name")
        reader.tag((b"SIZE",), f"{what} size tag")
        _expect_field_size(reader, 4, f"{what} size field size")
        at = reader.pos
        num_points = reader.int32(f"{what} point count")
        if num_points <= 0:
            raise DataError(describe(reader.path, f"{what} point count at byte {at}", "a positive count", f"{num_points}"))
        data_tag = reader.tag((b"FVCA", b"DVCA"), f"{what} data tag")
        byte_len = reader.int32(f"{what} data length")
        item = 4 if data_tag == b"FVCA" else 8
        if byte_len != num_points * 3 * item:
            raise DataError(
                describe(
                    reader.path,
                    f"{what} {data_tag.decode()} length",
                    f"{num_points * 3 * item} bytes ({num_points} points x 3 x {item})",
                    f"{byte_len}",
                )
            )
        payload = reader.take(byte_len, f"{what} {data_tag.decode()} payload")
        dtype = ">f4" if data_tag == b"FVCA" else ">f8"
        frames.append(np.frombuffer(payload, dtype=dtype).astype(np.float32).reshape(num_points, 3))
        tags_seen.add(data_tag)
    if reader.pos != block_end:
        raise DataError(
            describe(
                reader.path,
                f"frame block at byte {block_at} size",
                f"{reader.pos - block_at - 8} bytes (its contents, ending at byte {reader.pos})",
                f"{block_size} (ending at byte {block_end})",
            )
        )


def _expect_field_size(reader: _McReader, size: int, what: str) -> None:
    at = reader.pos
    found = reader.int32(what)
    if found != size:
        raise DataError(describe(reader.path, f"{what} at byte {at}", f"{size}", f"{found}"))


def _check_xml_against_mc(xml_path: pathlib.Path, info: dict, num_frames: int, tags_seen: set[bytes]) -> None:
    start_end, tpf = info["range"], info["time_per_frame"]
    rates = [c["sampling_rate"] for c in info["channels"] if c["sampling_rate"].isdecimal()]
    step = int(rates[0]) if rates else tpf
    if start_end is not None and step:
        span = start_end[1] - start_end[0]
        expected = span / step + 1
        # Ticks are integers: 6000/fps is rounded to `step`, and frame times are rounded one by one,
        # so the described span fits any step within half a tick of the stored one.
        lo, hi = (num_frames - 1) * (step - 0.5) - 0.5, (num_frames - 1) * (step + 0.5) + 0.5
        if not lo <= span <= hi:
            raise DataError(
                describe(
                    xml_path,
                    "time@Range / SamplingRate",
                    f"{expected:g} frames as described by the XML (Range {start_end[0]}-{start_end[1]}, "
                    f"{step} ticks per sample)",
                    f"{num_frames} frames in {xml_path.with_suffix('.mc').name}",
                )
            )
    types = {c["type"] for c in info["channels"]} - {""}
    tag_for_type = {"FloatVectorArray": b"FVCA", "DoubleVectorArray": b"DVCA"}
    for channel_type in types:
        tag = tag_for_type.get(channel_type)
        if tag is not None and tags_seen and tags_seen != {tag}:
            raise DataError(
                describe(
                    xml_path,
                    "ChannelType",
                    f"{channel_type} data ({tag.decode()}) in {xml_path.with_suffix('.mc').name}",
                    ", ".join(sorted(t.decode() for t in tags_seen)),
                )
            )


def cache_num_verts(path: PathLike) -> int:
    """Vertex count of a cache, reading as little as the format allows (headers checked against sizes)."""
    path = pathlib.Path(path)
    if path.suffix == ".npy":
        header = read_npy_header(path)
        if not np.issubdtype(header.dtype, np.floating):
            raise DataError(describe(path, "dtype", "a float array", f"{header.dtype}"))
        _check_positions_shape(header.shape, path)
        return int(header.shape[1])
    if path.suffix == ".pc2":
        with open(path, "rb") as f:
            head = f.read(PC2_HEADER.size)
            size = os.fstat(f.fileno()).st_size
        return _check_pc2_header(path, head, size)[1]
    return int(read_cache(path).shape[1])


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


def write_npy(path: PathLike, frames: np.ndarray) -> None:
    frames = np.asarray(frames)
    _check_positions_shape(frames.shape, path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, frames)


def write_pc2(path: PathLike, frames: np.ndarray, sample_rate: float = 1.0, start_frame: float = 0.0) -> None:
    """PointCache2 writer (version 1), f32 little-endian; atomic."""
    frames = np.asarray(frames)
    _check_positions_shape(frames.shape, path)
    num_frames, num_verts = frames.shape[:2]
    header = PC2_HEADER.pack(PC2_SIGNATURE, 1, num_verts, float(start_frame), float(sample_rate), num_frames)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(np.ascontiguousarray(frames, dtype="<f4").tobytes())


def _maya_xml(channel_name: str, channel_type: str, end_time: int, time_per_frame: int) -> str:
    name = quoteattr(channel_name)
    return (
        '<?xml version="1.0"?>\n'
        "<Autodesk_Cache_File>\n"
        '  <cacheType Type="OneFile" Format="mcc"/>\n'
        f'  <time Range="0-{end_time}"/>\n'
        f'  <cacheTimePerFrame TimePerFrame="{time_per_frame}"/>\n'
        '  <cacheVersion Version="2.0"/>\n'
        "  <extra>maya 2018 x64</extra>\n"
        "  <extra>a2f-jax</extra>\n"
        "  <Channels>\n"
        f'    <channel0 ChannelName={name} ChannelType="{channel_type}" ChannelInterpretation="positions" '
        f'SamplingType="Regular" SamplingRate="{time_per_frame}" StartTime="0" EndTime="{end_time}"/>\n'
        "  </Channels>\n"
        "</Autodesk_Cache_File>\n"
    )


def write_maya_cache(
    xml_path: PathLike,
    frames: np.ndarray,
    fps: float,
    channel_name: str = MAYA_DEFAULT_CHANNEL,
    dtype: np.dtype | type = np.float32,
) -> None:
    """Write a OneFile Maya cache (`<name>.xml` + `<name>.mc`) of [T, V, 3] positions.

    dtype f32 writes FVCA ("FloatVectorArray"), f64 writes DVCA ("DoubleVectorArray"). Times are
    Maya ticks (6000/s), frame i at round(i * 6000 / fps). Unlike the original, which hard-codes
    ETIM = 1, the header's ETIM is the real end time, as Maya writes it. The .mc is written before
    the .xml so a discoverable .xml always has its data.
    """
    xml_path = pathlib.Path(xml_path)
    if xml_path.suffix != ".xml":
        raise DataError(describe(xml_path, "extension", "'.xml'", repr(xml_path.suffix)))
    frames = np.asarray(frames)
    _check_positions_shape(frames.shape, xml_path)
    if fps <= 0:
        raise DataError(describe(xml_path, "fps", "a positive frame rate", f"{fps}"))
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        data_tag, channel_type, be_dtype = b"FVCA", "FloatVectorArray", ">f4"
    elif dtype == np.float64:
        data_tag, channel_type, be_dtype = b"DVCA", "DoubleVectorArray", ">f8"
    else:
        raise DataError(describe(xml_path, "dtype", "float32 or float64", f"{dtype}"))
    num_frames, num_points = frames.shape[:2]
    frame_time = MAYA_TICKS_PER_SECOND / fps
    end_time = int(round((num_frames - 1) * frame_time))
    time_per_frame = int(round(frame_time))

    name = channel_name.encode("ascii") + b"\0"
    padded_name = name + b"\0" * (-len(name) % 4)
    payload_len = num_points * 3 * dtype.itemsize
    block_size = 4 + 12 + 8 + len(padded_name) + 12 + 8 + payload_len

    chunks = [
        b"FOR4",
        struct.pack(">i", 40),
        b"CACH" + b"VRSN" + struct.pack(">i", 4) + b"0.1\0",
        b"STIM" + struct.pack(">ii", 4, 0),
        b"ETIM" + struct.pack(">ii", 4, end_time),
    ]
    data = np.ascontiguousarray(frames, dtype=be_dtype)
    for i in range(num_frames):
        chunks += [
            b"FOR4",
            struct.pack(">i", block_size),
            b"MYCH",
            b"TIME" + struct.pack(">ii", 4, int(round(frame_time * i))),
            b"CHNM" + struct.pack(">i", len(name)) + padded_name,
            b"SIZE" + struct.pack(">ii", 4, num_points),
            data_tag + struct.pack(">i", payload_len),
            data[i].tobytes(),
        ]
    with atomic_path(xml_path.with_suffix(".mc")) as tmp:
        tmp.write_bytes(b"".join(chunks))
    with atomic_path(xml_path) as tmp:
        tmp.write_text(_maya_xml(channel_name, channel_type, end_time, time_per_frame))


def write_cache(path: PathLike, frames: np.ndarray, fps: float = 30.0) -> None:
    """Write by extension: .npy, .xml (Maya, f32, ticks from fps), .pc2."""
    path = pathlib.Path(path)
    if path.suffix == ".npy":
        write_npy(path, frames)
    elif path.suffix == ".xml":
        write_maya_cache(path, frames, fps)
    elif path.suffix == ".pc2":
        write_pc2(path, frames)
    else:
        raise DataError(describe(path, "extension", "one of .npy, .xml, .pc2", repr(path.suffix)))
