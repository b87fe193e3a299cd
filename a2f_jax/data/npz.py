"""Named arrays of a `.npz` archive, read in full with one clear error for every way it can be wrong."""

from __future__ import annotations

import pathlib
import zipfile
import zlib
from typing import Sequence

import numpy as np

from a2f_jax.errors import A2FError, DataError, describe

# what numpy raises on a truncated, corrupt or non-zip .npz
NPZ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)


def load_arrays(path: str | pathlib.Path, keys: Sequence[str], what: str) -> dict[str, np.ndarray]:
    """The named arrays of a .npz, read in full; a missing file, a missing key or an unreadable archive is a
    DataError naming the file and the key."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(describe(path, None, what, "no such file"))
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise DataError(describe(path, None, f"a .npz archive ({what})", "a single .npy array"))
            for key in keys:
                if key not in z.files:
                    raise DataError(describe(path, key, f"an array {key!r} ({what})", f"keys {sorted(z.files)}"))
            return {key: np.asarray(z[key]) for key in keys}
    except A2FError:
        raise
    except NPZ_ERRORS as exc:
        raise DataError(describe(path, None, f"a readable .npz archive ({what})", f"{type(exc).__name__}: {exc}")) from exc
