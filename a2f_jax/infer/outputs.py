"""Inference outputs written chunk by chunk, so a clip of any length holds at most one chunk of positions.

`<name>_{skin,tongue,jaw,eye}.npy` and Maya caches `<name>_{skin,tongue}.xml/.mc`: both formats put the frame
count in their header, which is known before the first frame (T = int(N/16000·fps)), so frames are appended to
temporary files as they are predicted and every file is renamed into place only after its last frame (nothing
half-written is left behind, as `io_utils.atomic_path`). The bytes equal `np.save` and
`data.caches.write_maya_cache` of the whole clip (float32 FVCA caches).
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import struct
from typing import Any, BinaryIO, Iterable, Iterator

import numpy as np

from a2f_jax.data.caches import MAYA_DEFAULT_CHANNEL, MAYA_TICKS_PER_SECOND, _maya_xml
from a2f_jax.errors import DataError, describe
from a2f_jax.io_utils import atomic_path

CHUNK_FRAMES = 256  # frames decoded and written at once (3,804 vertices: ~12 MB of positions)
NPY_CHANNELS = ("skin", "tongue", "jaw", "eye")
MAYA_CHANNELS = ("skin", "tongue")


class _NpyStream:
    """A .npy of a known shape [T, ...] filled frame block by frame block (np.save's bytes)."""

    def __init__(self, f: BinaryIO, path: pathlib.Path, num_frames: int, first: np.ndarray) -> None:
        self.f, self.path, self.dtype, self.frame_shape = f, path, first.dtype, first.shape[1:]
        shape = (num_frames,) + self.frame_shape
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape})

    def write(self, frames: np.ndarray) -> None:
        if frames.shape[1:] != self.frame_shape:
            raise DataError(describe(self.path, "frame shape", f"{list(self.frame_shape)} (as the first frames)",
                                     f"{list(frames.shape[1:])}"))
        self.f.write(np.ascontiguousarray(frames, self.dtype).tobytes())


class _MayaStream:
    """A OneFile float32 Maya cache (.mc) of a known frame count, frame blocks appended as they come."""

    def __init__(self, f: BinaryIO, path: pathlib.Path, num_frames: int, num_points: int, fps: float,
                 channel: str = MAYA_DEFAULT_CHANNEL) -> None:
        self.f, self.path, self.num_points, self.channel = f, path, num_points, channel
        self.frame_time = MAYA_TICKS_PER_SECOND / fps
        self.end_time = int(round((num_frames - 1) * self.frame_time))
        self.time_per_frame = int(round(self.frame_time))
        name = channel.encode("ascii") + b"\0"
        self.name, padded = name, name + b"\0" * (-len(name) % 4)
        payload = num_points * 3 * 4
        block = 4 + 12 + 8 + len(padded) + 12 + 8 + payload
        # everything of a frame block before its TIME value, and between TIME and the payload
        self.head = b"FOR4" + struct.pack(">i", block) + b"MYCH" + b"TIME" + struct.pack(">i", 4)
        self.mid = (b"CHNM" + struct.pack(">i", len(name)) + padded + b"SIZE" + struct.pack(">ii", 4, num_points)
                    + b"FVCA" + struct.pack(">i", payload))
        self.index = 0
        f.write(b"FOR4" + struct.pack(">i", 40) + b"CACH" + b"VRSN" + struct.pack(">i", 4) + b"0.1\0"
                + b"STIM" + struct.pack(">ii", 4, 0) + b"ETIM" + struct.pack(">ii", 4, self.end_time))

    def write(self, frames: np.ndarray) -> None:
        if frames.ndim != 3 or frames.shape[1:] != (self.num_points, 3):
            raise DataError(describe(self.path, "frame shape", f"[{self.num_points}, 3] positions", f"{list(frames.shape[1:])}"))
        data = np.ascontiguousarray(frames, ">f4")
        parts = []
        for frame in data:
            parts += [self.head, struct.pack(">i", int(round(self.frame_time * self.index))), self.mid, frame.tobytes()]
            self.index += 1
        self.f.write(b"".join(parts))

    def xml(self) -> str:
        return _maya_xml(self.channel, "FloatVectorArray", self.end_time, self.time_per_frame)


class OutputWriter:
    """Appends Geometry chunks (consecutive frames) to the open output files; use `output_writer`."""

    def __init__(self, stack: contextlib.ExitStack, out_dir: pathlib.Path, name: str, num_frames: int, fps: float,
                 npy: bool, maya_cache: bool) -> None:
        self.stack, self.out_dir, self.name, self.num_frames, self.fps = stack, out_dir, name, num_frames, fps
        self.npy, self.maya_cache = npy, maya_cache
        self.frames = 0
        self.streams: dict[str, Any] = {}
        self.xml_tmp: dict[str, pathlib.Path] = {}
        self.paths: list[pathlib.Path] = []

    def _open(self, geom: Any) -> None:
        """Open every file on the first chunk (its arrays give the per-frame shapes and dtypes)."""
        if self.npy:
            for ch in NPY_CHANNELS:
                path = self.out_dir / f"{self.name}_{ch}.npy"
                f = self._temp_file(path)
                self.streams[f"npy_{ch}"] = _NpyStream(f, path, self.num_frames, np.asarray(getattr(geom, ch)))
                self.paths.append(path)
        if self.maya_cache:
            for ch in MAYA_CHANNELS:
                xml = self.out_dir / f"{self.name}_{ch}.xml"
                self.xml_tmp[ch] = self.stack.enter_context(atomic_path(xml))  # renamed after its .mc (LIFO)
                points = np.asarray(getattr(geom, ch)).shape[1]
                self.streams[f"mc_{ch}"] = _MayaStream(self._temp_file(xml.with_suffix(".mc")), xml, self.num_frames, points, self.fps)
                self.paths.append(xml)

    def _temp_file(self, path: pathlib.Path) -> BinaryIO:
        tmp = self.stack.enter_context(atomic_path(path))
        return self.stack.enter_context(open(tmp, "wb"))

    def write(self, geom: Any) -> None:
        """One chunk: a Geometry (or anything with skin/tongue/jaw/eye arrays) of the next frames."""
        t = len(geom.skin)
        if self.frames + t > self.num_frames:
            raise DataError(describe(self.out_dir / self.name, "frames", f"{self.num_frames} frames in all",
                                     f"{self.frames + t} frames"))
        if t == 0:
            return
        if not self.streams:
            self._open(geom)
        for ch in NPY_CHANNELS if self.npy else ():
            self.streams[f"npy_{ch}"].write(np.asarray(getattr(geom, ch)))
        for ch in MAYA_CHANNELS if self.maya_cache else ():
            self.streams[f"mc_{ch}"].write(np.asarray(getattr(geom, ch)))
        self.frames += t

    def finish(self) -> None:
        if self.frames != self.num_frames:
            raise DataError(describe(self.out_dir / self.name, "frames", f"{self.num_frames} frames", f"{self.frames} written"))
        for ch, tmp in self.xml_tmp.items():
            tmp.write_text(self.streams[f"mc_{ch}"].xml())


@contextlib.contextmanager
def output_writer(out_dir: str | pathlib.Path, name: str, num_frames: int, fps: float, npy: bool = True,
                  maya_cache: bool = True) -> Iterator[OutputWriter]:
    """A writer for `num_frames` frames; every file lands when the block ends normally, none when it raises."""
    out_dir = pathlib.Path(out_dir)
    if num_frames < 1:
        raise DataError(describe(out_dir / name, "frames", "at least one frame to write", f"{num_frames}"))
    if not fps > 0:
        raise DataError(describe(out_dir / name, "fps", "a positive frame rate", f"{fps}"))
    out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        writer = OutputWriter(stack, out_dir, name, num_frames, float(fps), npy, maya_cache)
        yield writer
        writer.finish()


def write_chunks(chunks: Iterable[Any], out_dir: str | pathlib.Path, name: str, num_frames: int, fps: float,
                 npy: bool = True, maya_cache: bool = True) -> list[pathlib.Path]:
    """Write consecutive Geometry chunks of a `num_frames`-frame clip; returns the written paths (.xml for caches)."""
    if not npy and not maya_cache:
        for _ in chunks:  # nothing to write, but the clip is still predicted (errors surface)
            pass
        return []
    with output_writer(out_dir, name, num_frames, fps, npy, maya_cache) as writer:
        for geom in chunks:
            writer.write(geom)
    return writer.paths


def split(geom: Any, chunk: int = CHUNK_FRAMES) -> Iterator[Any]:
    """A whole-clip Geometry as consecutive chunks of `chunk` frames (views, no copies)."""

    for i in range(0, len(geom.skin), chunk):
        yield dataclasses.replace(geom, **{k: getattr(geom, k)[i:i + chunk] for k in ("skin", "tongue", "jaw", "eye", "raw")})
