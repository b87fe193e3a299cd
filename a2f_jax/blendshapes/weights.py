"""Blendshape weight files: ``<prefix>.csv``, ``<prefix>.json`` and ``<prefix>.npz``, written and read back."""

from __future__ import annotations

import json
import pathlib
from typing import Sequence

import numpy as np

from a2f_jax import io_utils
from a2f_jax.errors import DataError, describe


def _check_weights(pose_names: Sequence[str], weights: np.ndarray) -> np.ndarray:
    w = np.asarray(weights, np.float32)
    if w.ndim != 2 or w.shape[1] != len(pose_names):
        expected = f"[T, {len(pose_names)}] (one column per pose)"
        raise DataError(describe("weights", "shape", expected, str(list(w.shape))))
    return w


def write_weights(
    prefix: str | pathlib.Path, pose_names: Sequence[str], weights: np.ndarray, fps: float
) -> dict[str, pathlib.Path]:
    """Write ``<prefix>.csv`` (frame, time, one column per pose), ``<prefix>.json``
    (``{"poseNames", "fps", "numFrames", "weights": [[...] per frame]}``) and ``<prefix>.npz``
    (``poseNames``, ``weights`` f32 [T, P], ``fps``), each atomically."""
    w = _check_weights(pose_names, weights)
    names = [str(n) for n in pose_names]
    prefix = pathlib.Path(prefix)
    paths = {ext: prefix.with_name(prefix.name + "." + ext) for ext in ("csv", "json", "npz")}

    # str() of a float32 is its shortest text that reads back to the same float32.
    values = [",".join(map(str, row)) for row in w]
    lines = [",".join(["frame", "time"] + names)]
    lines += [f"{i},{round(i / fps, 9)!r},{row}" for i, row in enumerate(values)]
    io_utils.atomic_write_text(paths["csv"], "\n".join(lines) + "\n")

    # One frame per line keeps big files readable without the cost of indent=4 on every number.
    rows = ",\n        ".join(f"[{row}]" for row in values)
    head = json.dumps({"poseNames": names, "fps": float(fps), "numFrames": int(w.shape[0])})[:-1]
    io_utils.atomic_write_text(paths["json"], f'{head}, "weights": [\n        {rows}\n    ]}}\n')

    io_utils.atomic_savez(paths["npz"], poseNames=np.asarray(names, dtype=str), weights=w, fps=np.float64(fps))
    return paths


def read_weights(path: str | pathlib.Path) -> tuple[list[str], np.ndarray, float]:
    """Read back what ``write_weights`` wrote (csv, json or npz): (pose names, f32 [T, P], fps)."""
    path = pathlib.Path(path)
    source = str(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                return [str(n) for n in npz["poseNames"]], npz["weights"].astype(np.float32), float(npz["fps"])
        if path.suffix == ".json":
            doc = json.loads(path.read_text())
            names = list(doc["poseNames"])
            w = np.asarray(doc["weights"], np.float32).reshape(-1, len(names))
            return names, w, float(doc["fps"])
        if path.suffix == ".csv":
            lines = path.read_text().splitlines()
            header = lines[0].split(",")
            if header[:2] != ["frame", "time"]:
                raise DataError(describe(source, "header", "'frame,time,<pose names>'", lines[0][:80]))
            table = np.asarray([[float(v) for v in ln.split(",")] for ln in lines[1:] if ln], np.float64)
            table = table.reshape(-1, len(header))
            fps = 0.0
            if len(table) > 1 and table[1, 1] > 0:
                fps = float(round(1.0 / table[1, 1], 6))
            return header[2:], table[:, 2:].astype(np.float32), fps
    except FileNotFoundError:
        raise DataError(describe(source, None, "an existing weights file", "no such file")) from None
    except (KeyError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        found = f"{type(exc).__name__}: {exc}"
        raise DataError(describe(source, None, "a weights file written by write_weights", found)) from None
    raise DataError(describe(source, None, "a .csv, .json or .npz file", f"suffix {path.suffix!r}"))
