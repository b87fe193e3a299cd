"""Reading preproc inputs from the resolved configs: per-actor values, shot lists, small arrays."""

from __future__ import annotations

import json
import pathlib
import zipfile
from typing import Any

import numpy as np

from a2f_jax.data import caches
from a2f_jax.errors import ConfigError, DataError, describe
from a2f_jax.io_utils import atomic_path


def actor_value(section: Any, key: str, actor: str, what: str, required: bool = False) -> Any:
    """`section[key][actor]`, or None when absent (the original's `.get(actor)`)."""
    per_actor = section.get(key) if hasattr(section, "get") else None
    value = per_actor.get(actor) if per_actor is not None and hasattr(per_actor, "get") else None
    if required and value is None:
        raise ConfigError(f"{what} config [{key}]: expected a value for actor {actor!r}, found none")
    return value


def shot_list(explicit: Any, root: str | pathlib.Path, what: str) -> list[str]:
    """The configured shot list, or every entry of the cache root (sorted); empty → DataError."""
    shots = list(explicit) if explicit is not None else caches.list_shots(root)
    if not shots:
        raise DataError(describe(root, what, "at least one shot (a sub-folder per shot)", "none"))
    return [str(s) for s in shots]


def read_shot(root: str | pathlib.Path, shot: str) -> np.ndarray:
    """f32 [T, V, 3] of one shot."""
    return caches.read_cache(caches.find_cache_file(root, shot))


def load_npy(path: str | pathlib.Path, what: str) -> np.ndarray:
    """A .npy (no pickles) whose size matches its header exactly (`caches.load_npy`)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(describe(path, what, "an existing .npy file", "no such file"))
    return caches.load_npy(path)


def load_pose(path: str | pathlib.Path, num_verts: int | None, what: str) -> np.ndarray:
    """A [V, 3] pose (neutral or delta); checks the vertex count when given."""
    pose = load_npy(path, what)
    if pose.ndim != 2 or pose.shape[1] != 3 or (num_verts is not None and pose.shape[0] != num_verts):
        expected = f"[{num_verts if num_verts is not None else 'V'}, 3]"
        raise DataError(describe(path, what, f"an array of shape {expected}", f"shape {pose.shape}"))
    return pose


def load_index_list(path: str | pathlib.Path, what: str) -> list[int]:
    """A JSON list of vertex indices."""
    path = pathlib.Path(path)
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(describe(path, what, "a JSON list of vertex indices", f"{type(err).__name__}: {err}")) from err
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise DataError(describe(path, what, "a JSON list of integer vertex indices", f"{type(value).__name__}"))
    return value


def save_npz_dict(path: str | pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    """Plain npz (as np.savez) from a dict, atomically. Unlike `np.savez(path, **arrays)`, any key
    works, so a shot may be named "file" or "path"."""


    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, array in arrays.items():
                with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
