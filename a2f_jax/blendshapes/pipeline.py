"""Geometry files in, weight files out: the whole solve behind ``scripts/solve_blendshapes.py`` and
``scripts/infer.py --blendshapes``."""

from __future__ import annotations

import json
import pathlib
from typing import Sequence

import numpy as np

from a2f_jax.blendshapes.solver import from_files
from a2f_jax.blendshapes.weights import write_weights
from a2f_jax.data import caches, rigid
from a2f_jax.errors import DataError, describe


def load_animation(path: str | pathlib.Path) -> np.ndarray:
    """Vertex animation f32 [T, V, 3] from npy, Maya cache (.xml + .mc) or pc2."""
    return np.asarray(caches.read_cache(path), np.float32)


def _vertex_list(vertices: str | pathlib.Path | Sequence[int]) -> list[int]:
    if not isinstance(vertices, (str, pathlib.Path)):
        return [int(v) for v in vertices]
    try:
        value = json.loads(pathlib.Path(vertices).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(describe(vertices, None, "a JSON list of vertex indices", f"{type(exc).__name__}: {exc}")) from None
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise DataError(describe(vertices, None, "a JSON list of vertex indices", type(value).__name__))
    return value


def _geometry(geometry: np.ndarray | str | pathlib.Path) -> tuple[np.ndarray, str]:
    if isinstance(geometry, (str, pathlib.Path)):
        return load_animation(geometry), str(geometry)
    return np.asarray(geometry, np.float32), "geometry"


def solve_to_files(
    geometry: np.ndarray | str | pathlib.Path,
    bs_npz: str | pathlib.Path,
    bs_config: str | pathlib.Path,
    out_prefix: str | pathlib.Path,
    fps: float = 30.0,
    *,
    deltas: bool = False,
    tongue_geometry: np.ndarray | str | pathlib.Path | None = None,
    tongue_bs_npz: str | pathlib.Path | None = None,
    tongue_bs_config: str | pathlib.Path | None = None,
    temporal_mode: str = "sdk",
    tongue_rigid_vertices: str | pathlib.Path | Sequence[int] | None = None,
) -> dict[str, pathlib.Path]:
    """Solve skin weights (and tongue weights when all three tongue arguments are given) and write
    ``<out_prefix>.{csv,json,npz}`` (+ ``<out_prefix>_tongue.{csv,json,npz}``).

    ``geometry``: [T, V, 3] absolute positions (or deltas from the blendshape neutral when
    ``deltas``), or a path to an npy / Maya cache / pc2 file. ``temporal_mode``: see
    ``BlendshapeSolver``. ``tongue_rigid_vertices`` (a ``rigid_vertex_list.json`` or indices):
    first remove the tongue's rigid (jaw) motion as preproc does (``a2f_jax.preproc.tongue``), for raw dataset
    caches; network output is already stabilised. Returns the written paths, keyed
    ``csv``/``json``/``npz`` and ``tongue_csv``/... .
    """
    if fps <= 0:
        raise DataError(describe("fps", None, "a frame rate > 0", repr(fps)))
    tongue_args = (tongue_geometry, tongue_bs_npz, tongue_bs_config)
    if any(a is not None for a in tongue_args) and not all(a is not None for a in tongue_args):
        expected = "tongue geometry, blendshapes and config together"
        raise DataError(describe("tongue", None, expected, "only some of them"))
    solver = from_files(bs_npz, bs_config, temporal_mode)
    frames, source = _geometry(geometry)
    paths = write_weights(out_prefix, solver.pose_names, solver.solve(frames, deltas, source=source), fps)
    if tongue_geometry is not None:
        tongue = from_files(tongue_bs_npz, tongue_bs_config, temporal_mode)
        frames, source = _geometry(tongue_geometry)
        if tongue_rigid_vertices is not None:

            indices = _vertex_list(tongue_rigid_vertices)
            frames = rigid.stabilize(frames, tongue.data.neutral, indices).astype(np.float32)
        prefix = pathlib.Path(out_prefix)
        weights = tongue.solve(frames, deltas, source=source)
        written = write_weights(prefix.with_name(prefix.name + "_tongue"), tongue.pose_names, weights, fps)
        paths.update({f"tongue_{k}": v for k, v in written.items()})
    return paths
