"""Implicit emotion database of the regression network (the original's ImplicitEmotionDB + ImplicitEmotionManager).

One learned vector of `implicit_emotion_len` (16) values per frame of every shot in shots.json and every muted
shot, rows laid out shot after shot (row = shot.start_global + frame). Training keeps the table as a plain
jnp array [F_total, 16] in the optimizer's second parameter group; `lookup` gathers rows by global frame index.
`ImplicitEmotionDB` is the host-side export object: compactify, `implicit_emo_db.npz` (deploy bundle),
`implicit_emo_db.pkl` (run root) and the little-endian binary format.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import struct
from typing import Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from a2f_jax import io_utils
from a2f_jax.errors import DataError

Array = jax.Array


def init_emotion_db(key: Array, total_frames: int, emo_len: int = 16, sigma: float = 0.01) -> Array:
    """W ~ N(0, sigma^2), float32 [total_frames, emo_len] (EMO_INIT_SIGMA)."""
    if total_frames <= 0 or emo_len <= 0:
        raise DataError(f"implicit emotion db: expected total_frames > 0 and emo_len > 0, found {total_frames}, {emo_len}")
    return sigma * jax.random.normal(key, (total_frames, emo_len), jnp.float32)


def lookup(db: Array, global_frame_idx: Array) -> Array:
    """Rows of the table for global frame indices [B, S] -> [B, S, emo_len]."""
    return jnp.take(db, global_frame_idx, axis=0)


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge inclusive (first, last) ranges that overlap (touching-but-disjoint ranges stay apart, as the original)."""
    merged: list[list[int]] = []
    for first, last in sorted(ranges, key=lambda r: r[0]):
        if not merged or merged[-1][1] < first:
            merged.append([first, last])
        else:
            merged[-1][1] = max(merged[-1][1], last)
    return [(a, b) for a, b in merged]


def _padded_rows(arr: np.ndarray, first: int, last: int) -> np.ndarray:
    """arr[first:last+1] with zero rows for indices outside the array."""
    length = last - first + 1
    if first >= 0 and last + 1 <= len(arr):
        return arr[first : last + 1]
    out = np.zeros((length,) + arr.shape[1:], arr.dtype)
    begin, end = max(0, -first), min(length, len(arr) - first)
    if begin < end:
        out[begin:end] = arr[first + begin : first + end]
    return out


@dataclasses.dataclass
class ImplicitEmotionDB:
    """The exported table with its shot layout. emo_specs: shot id -> (start row, number of rows)."""

    emo_db: np.ndarray
    emo_specs: dict[str, tuple[int, int]]
    compactified: bool | None = False

    def __post_init__(self) -> None:
        self.emo_db = np.asarray(self.emo_db, np.float32)
        if self.emo_db.ndim != 2:
            raise DataError(f"implicit emotion db [emo_db]: expected a 2-D array, found shape {self.emo_db.shape}")
        self.emo_specs = {str(k): (int(v[0]), int(v[1])) for k, v in self.emo_specs.items()}
        for name, (start, size) in self.emo_specs.items():
            if start < 0 or size < 0 or start + size > len(self.emo_db):
                raise DataError(
                    f"implicit emotion db [emo_specs.{name}]: expected rows within [0, {len(self.emo_db)}), "
                    f"found start {start}, size {size}"
                )

    # ---- access -------------------------------------------------------------------------------------------

    def index(self, shot: str, frame: int) -> int:
        """Global row of (shot, frame); raises DataError for an unknown shot or out-of-range frame."""
        if shot not in self.emo_specs:
            raise DataError(f"implicit emotion db [emo_specs]: expected a shot among {sorted(self.emo_specs)[:10]}, found {shot!r}")
        start, size = self.emo_specs[shot]
        if not 0 <= frame < size:
            raise DataError(f"implicit emotion db [{shot}]: expected a frame in [0, {size - 1}], found {frame}")
        return start + frame

    def vector(self, shot: str, frame: int) -> np.ndarray:
        """The implicit emotion of (shot, frame), [emo_len] (inference's source_shot / source_frame)."""
        return self.emo_db[self.index(shot, frame)]

    def shot_matrix(self, shot: str) -> np.ndarray:
        start, size = self.emo_specs[shot]
        return self.emo_db[start : start + size]

    # ---- compactify ---------------------------------------------------------------------------------------

    def compactify(self, clip_ranges: Iterable[tuple[str, int, int]]) -> None:
        """Keep only rows covered by clips. clip_ranges: (shot id, first_frame, last_frame) per clip (inclusive).

        Ranges are merged per shot, covered shots are concatenated in start order, starts are renumbered;
        shots no clip touches are dropped. Idempotent, like the original.
        """
        if self.compactified:
            return
        per_shot: dict[str, list[tuple[int, int]]] = {}
        for shot, first, last in clip_ranges:
            per_shot.setdefault(str(shot), []).append((int(first), int(last)))
        blocks, specs, start = [], {}, 0
        for shot, _ in sorted(self.emo_specs.items(), key=lambda kv: kv[1][0]):
            if shot not in per_shot:
                continue
            mat = self.shot_matrix(shot)
            rows = np.concatenate([_padded_rows(mat, a, b) for a, b in merge_ranges(per_shot[shot])], axis=0)
            blocks.append(rows)
            specs[shot] = (start, len(rows))
            start += len(rows)
        self.emo_db = np.concatenate(blocks, axis=0) if blocks else np.zeros((0, self.emo_db.shape[1]), np.float32)
        self.emo_specs = specs
        self.compactified = True

    # ---- files ----------------------------------------------------------------------------------------------

    def _sorted_specs(self) -> list[tuple[str, tuple[int, int]]]:
        return sorted(self.emo_specs.items(), key=lambda kv: kv[1][0])

    def save_npz(self, path: str | os.PathLike) -> None:
        """Deploy `implicit_emo_db.npz`: emo_db f32 [F, 16], emo_spec_names (fixed-width bytes 'S'),
        emo_spec_start / emo_spec_size int32, all sorted by start (the SDK reads the names as C strings)."""
        if not str(path).endswith(".npz"):
            raise DataError(f"{path}: expected a file name ending in .npz, found {os.path.basename(str(path))!r}")
        specs = self._sorted_specs()
        io_utils.atomic_savez(
            path,
            emo_db=self.emo_db.astype(np.float32),
            emo_spec_names=np.array([k.encode("utf-8") for k, _ in specs], dtype="S"),
            emo_spec_start=np.array([v[0] for _, v in specs], dtype=np.int32),
            emo_spec_size=np.array([v[1] for _, v in specs], dtype=np.int32),
        )

    @classmethod
    def load_npz(cls, path: str | os.PathLike) -> "ImplicitEmotionDB":
        with np.load(path) as data:
            for key in ("emo_db", "emo_spec_names", "emo_spec_start", "emo_spec_size"):
                if key not in data:
                    raise DataError(f"{path} [{key}]: expected this array, found keys {sorted(data.keys())}")
            names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in data["emo_spec_names"].tolist()]
            specs = dict(zip(names, zip(data["emo_spec_start"].tolist(), data["emo_spec_size"].tolist())))
            return cls(np.array(data["emo_db"]), specs, compactified=None)

    def save_pkl(self, path: str | os.PathLike) -> None:
        """Run-root `implicit_emo_db.pkl`: {"emo_db", "emo_specs": {shot: (start, len)}, "compactified"}."""
        payload = {"emo_db": self.emo_db, "emo_specs": dict(self.emo_specs), "compactified": self.compactified}
        with io_utils.atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                pickle.dump(payload, f)

    @classmethod
    def load_pkl(cls, path: str | os.PathLike) -> "ImplicitEmotionDB":
        with open(path, "rb") as f:
            payload = pickle.load(f)
        if not isinstance(payload, Mapping) or not {"emo_db", "emo_specs"} <= set(payload):
            raise DataError(f"{path}: expected a dict with emo_db and emo_specs, found {type(payload).__name__}")
        return cls(payload["emo_db"], payload["emo_specs"], payload.get("compactified", False))

    def save_bin(self, path: str | os.PathLike) -> None:
        """Little-endian: int32 count; per shot int32 name length, name, int32 first, int32 size;
        int32 emo_len, int32 total element count, float32 data. Shots in dict order, as the original."""
        parts = [struct.pack("<i", len(self.emo_specs))]
        for name, (start, size) in self.emo_specs.items():
            raw = name.encode("utf-8")
            parts += [struct.pack("<i", len(raw)), raw, struct.pack("<ii", start, size)]
        parts += [struct.pack("<ii", self.emo_db.shape[1], self.emo_db.size), self.emo_db.astype("<f4").tobytes()]
        with io_utils.atomic_path(path) as tmp:
            tmp.write_bytes(b"".join(parts))

    @classmethod
    def load_bin(cls, path: str | os.PathLike) -> "ImplicitEmotionDB":
        data = open(path, "rb").read()
        try:
            (count,), pos = struct.unpack_from("<i", data, 0), 4
            specs = {}
            for _ in range(count):
                (n,) = struct.unpack_from("<i", data, pos)
                name = data[pos + 4 : pos + 4 + n].decode("utf-8")
                start, size = struct.unpack_from("<ii", data, pos + 4 + n)
                specs[name] = (start, size)
                pos += 12 + n
            emo_len, total = struct.unpack_from("<ii", data, pos)
            pos += 8
            if len(data) - pos != 4 * total or emo_len <= 0:
                raise DataError(f"{path}: expected {total} float32 values after the header, found {len(data) - pos} bytes")
            db = np.frombuffer(data, "<f4", total, pos).reshape(-1, emo_len).astype(np.float32)
        except struct.error as e:
            raise DataError(f"{path}: expected the implicit emotion binary layout, found a truncated file ({e})") from e
        return cls(db, specs, compactified=None)


def from_shots(db: Array | np.ndarray, shots: Iterable[tuple[str, int, int]]) -> ImplicitEmotionDB:
    """Wrap a trained table with its layout. shots: (shot id, start_global, length) for every shot and muted shot."""
    arr = np.asarray(jax.device_get(db), np.float32)
    return ImplicitEmotionDB(arr, {name: (start, size) for name, start, size in shots}, compactified=False)
