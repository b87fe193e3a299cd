"""The actor's blendshape files, as the dataset ships them (docs/dataset_format.md, docs/bundle_contract.md).

- ``bs_skin.npz`` / ``bs_tongue.npz``: ``poseNames`` (``"neutral"`` first in SDK files; a file whose
  first name is not ``"neutral"`` is also accepted and then every name is a pose), ``neutral`` [V, 3]
  absolute positions, one [V, 3] delta per pose, optional ``frontalMask`` (int vertex indices,
  skin only), optional ``rig_version``.
- ``bs_*_config.json``: ``{"blendshape_params": {...}}`` with the strengths, ``numPoses`` and the
  per-pose arrays (active, cancel and symmetry pairs, multipliers, offsets).

``load_blendshape_data`` and ``load_blendshape_config`` validate them into ``BlendshapeData`` and
``BlendshapeConfig``; every problem is a ``DataError`` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from typing import Any, Sequence

import numpy as np

from a2f_jax.errors import DataError, describe

# SDK defaults (audio2face/blendshape_solver.h).
DEFAULT_TEMPLATE_BB_SIZE = 54.7
DEFAULT_TOLERANCE = 1e-10

_REQUIRED_PARAMS = (
    "strengthL1regularization",
    "strengthL2regularization",
    "strengthTemporalSmoothing",
    "strengthSymmetry",
    "numPoses",
    "bsSolveActivePoses",
    "bsSolveCancelPoses",
    "bsSolveSymmetryPoses",
    "bsWeightMultipliers",
    "bsWeightOffsets",
)


@dataclasses.dataclass(frozen=True)
class BlendshapeData:
    """One actor's blendshapes: ``deltas[i]`` is pose ``pose_names[i]`` minus ``neutral``."""

    pose_names: tuple[str, ...]
    neutral: np.ndarray  # f32 [V, 3]
    deltas: np.ndarray  # f32 [P, V, 3]
    frontal_mask: np.ndarray | None  # int64 [n] vertex indices, or None (all vertices)
    rig_version: str | None = None
    source: str = "<arrays>"

    @property
    def num_vertices(self) -> int:
        return int(self.neutral.shape[0])


@dataclasses.dataclass(frozen=True)
class BlendshapeConfig:
    """The ``blendshape_params`` of a ``bs_*_config.json``."""

    num_poses: int
    active: np.ndarray  # bool [P]
    cancel: np.ndarray  # int [P] pair ids, −1 unpaired
    symmetry: np.ndarray  # int [P] pair ids, −1 unpaired
    multipliers: np.ndarray  # f64 [P]
    offsets: np.ndarray  # f64 [P]
    l1: float = 0.0
    l2: float = 0.0
    temporal: float = 0.0
    symmetry_strength: float = 0.0
    template_bb_size: float = DEFAULT_TEMPLATE_BB_SIZE
    tolerance: float = DEFAULT_TOLERANCE
    source: str = "<dict>"

    @classmethod
    def default(cls, num_poses: int, **strengths: float) -> "BlendshapeConfig":
        """All poses active, no pairs, multipliers 1, offsets 0 (the SDK's fallback config)."""
        return cls(
            num_poses=num_poses,
            active=np.ones(num_poses, bool),
            cancel=np.full(num_poses, -1),
            symmetry=np.full(num_poses, -1),
            multipliers=np.ones(num_poses),
            offsets=np.zeros(num_poses),
            **strengths,
        )


def _decode_names(raw: np.ndarray, source: str) -> list[str]:
    if raw.ndim != 1 or raw.dtype.kind not in "US":
        raise DataError(describe(source, "poseNames", "a 1-D string array", f"dtype {raw.dtype}, shape {raw.shape}"))
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in raw.tolist()]


def load_blendshape_data(path: str | pathlib.Path) -> BlendshapeData:
    """Read ``bs_skin.npz`` / ``bs_tongue.npz`` (layout in the module docstring)."""
    source = str(path)
    try:
        npz = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(describe(source, None, "an existing blendshape npz file", "no such file")) from None
    except (OSError, ValueError) as exc:
        raise DataError(describe(source, None, "a readable npz file", f"{type(exc).__name__}: {exc}")) from None
    with npz:
        keys = set(npz.files)
        for key in ("poseNames", "neutral"):
            if key not in keys:
                raise DataError(describe(source, key, "this key", f"keys {sorted(keys)}"))
        try:
            names = _decode_names(npz["poseNames"], source)
        except ValueError as exc:  # object arrays need pickle
            raise DataError(describe(source, "poseNames", "a string array", str(exc))) from None
        if names and names[0] == "neutral":
            names = names[1:]
        if not names:
            raise DataError(describe(source, "poseNames", "at least one pose besides neutral", "none"))
        neutral = np.asarray(npz["neutral"], np.float32)
        if neutral.ndim == 1 and neutral.size % 3 == 0:
            neutral = neutral.reshape(-1, 3)
        if neutral.ndim != 2 or neutral.shape[1] != 3:
            raise DataError(describe(source, "neutral", "shape [V, 3]", f"shape {neutral.shape}"))
        deltas = np.empty((len(names),) + neutral.shape, np.float32)
        for i, name in enumerate(names):
            if name not in keys:
                raise DataError(describe(source, name, "a delta array for every pose in poseNames", "no such key"))
            arr = np.asarray(npz[name], np.float32)
            if arr.size != neutral.size:
                raise DataError(describe(source, name, f"{neutral.shape[0]} vertices × 3", f"shape {arr.shape}"))
            deltas[i] = arr.reshape(neutral.shape)
        mask = None
        if "frontalMask" in keys:
            mask = np.asarray(npz["frontalMask"]).reshape(-1)
            if mask.dtype.kind not in "iu":
                raise DataError(describe(source, "frontalMask", "integer vertex indices", f"dtype {mask.dtype}"))
            mask = mask.astype(np.int64)
            if mask.size and (mask.min() < 0 or mask.max() >= neutral.shape[0]):
                raise DataError(
                    describe(
                        source, "frontalMask", f"indices in [0, {neutral.shape[0]})", f"[{mask.min()}, {mask.max()}]"
                    )
                )
            if mask.size == 0:
                mask = None
        rig = str(npz["rig_version"]) if "rig_version" in keys else None
    return BlendshapeData(tuple(names), neutral, deltas, mask, rig, source)


def _pair_ids(values: Sequence[int], source: str, field: str) -> np.ndarray:
    ids = np.asarray(values, np.int64)
    for pid in np.unique(ids[ids != -1]):
        count = int((ids == pid).sum())
        if count != 2:
            raise DataError(describe(source, field, f"pair id {pid} used by exactly 2 poses", f"{count} poses"))
    return ids


def config_from_dict(params: dict[str, Any], source: str = "<dict>") -> BlendshapeConfig:
    """Validate a ``blendshape_params`` dict (the object inside the config JSON)."""
    if not isinstance(params, dict):
        raise DataError(describe(source, "blendshape_params", "an object", type(params).__name__))
    for key in _REQUIRED_PARAMS:
        if key not in params:
            raise DataError(describe(source, f"blendshape_params.{key}", "this key", "it missing"))

    def number(key: str, default: float | None = None) -> float:
        value = params.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise DataError(describe(source, f"blendshape_params.{key}", "a finite number", repr(value)))
        return float(value)

    num = params["numPoses"]
    if isinstance(num, bool) or not isinstance(num, int) or num <= 0:
        raise DataError(describe(source, "blendshape_params.numPoses", "a positive integer", repr(num)))

    def vector(key: str) -> list:
        value = params[key]
        if not isinstance(value, list) or len(value) != num:
            found = f"length {len(value)}" if isinstance(value, list) else type(value).__name__
            raise DataError(describe(source, f"blendshape_params.{key}", f"a list of numPoses={num} numbers", found))
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise DataError(describe(source, f"blendshape_params.{key}", "numbers only", repr(value)))
        return value

    strengths = {
        "l1": number("strengthL1regularization"),
        "l2": number("strengthL2regularization"),
        "temporal": number("strengthTemporalSmoothing"),
        "symmetry_strength": number("strengthSymmetry"),
    }
    for name, value in strengths.items():
        if value < 0:
            raise DataError(describe(source, f"blendshape_params ({name})", "a strength >= 0", repr(value)))
    bb = number("templateBBSize", DEFAULT_TEMPLATE_BB_SIZE)
    if bb <= 0:
        raise DataError(describe(source, "blendshape_params.templateBBSize", "a size > 0", repr(bb)))
    active = np.asarray(vector("bsSolveActivePoses")) != 0
    if not active.any():
        raise DataError(describe(source, "blendshape_params.bsSolveActivePoses", "at least one active pose", "none"))
    return BlendshapeConfig(
        num_poses=num,
        active=active,
        cancel=_pair_ids(vector("bsSolveCancelPoses"), source, "blendshape_params.bsSolveCancelPoses"),
        symmetry=_pair_ids(vector("bsSolveSymmetryPoses"), source, "blendshape_params.bsSolveSymmetryPoses"),
        multipliers=np.asarray(vector("bsWeightMultipliers"), np.float64),
        offsets=np.asarray(vector("bsWeightOffsets"), np.float64),
        template_bb_size=bb,
        tolerance=number("tolerance", DEFAULT_TOLERANCE),
        source=source,
        **strengths,
    )


def load_blendshape_config(path: str | pathlib.Path) -> BlendshapeConfig:
    """Read a ``bs_*_config.json``."""
    source = str(path)
    try:
        doc = json.loads(pathlib.Path(path).read_text())
    except FileNotFoundError:
        raise DataError(describe(source, None, "an existing blendshape config file", "no such file")) from None
    except (OSError, ValueError) as exc:
        raise DataError(describe(source, None, "a JSON file", f"{type(exc).__name__}: {exc}")) from None
    if not isinstance(doc, dict) or "blendshape_params" not in doc:
        found = f"keys {sorted(doc)}" if isinstance(doc, dict) else type(doc).__name__
        raise DataError(describe(source, "blendshape_params", "this top-level key", found))
    return config_from_dict(doc["blendshape_params"], source)
