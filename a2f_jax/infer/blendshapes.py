"""Blendshape weights from predicted geometry, with the Audio2Face-3D SDK's solver semantics.

Inputs are the actor's blendshape files as the dataset ships them (spec_data_preproc §1.7,
spec_deploy_inference §1.8):

- ``bs_skin.npz`` / ``bs_tongue.npz``: ``poseNames`` (``"neutral"`` first in SDK files; a file whose
  first name is not ``"neutral"`` is also accepted and then every name is a pose), ``neutral`` [V, 3]
  absolute positions, one [V, 3] delta per pose, optional ``frontalMask`` (int vertex indices,
  skin only), optional ``rig_version``.
- ``bs_*_config.json``: ``{"blendshape_params": {...}}`` with the strengths, ``numPoses`` and the
  per-pose arrays.

The energy solved per frame t over the K active poses (x in [0, u]^K, u = 1 unless a cancel pair
caps it) is the SDK's:

    ½ xᵀ A x − b_tᵀ x
    A   = DᵀD + L1²·0.25·s·11ᵀ + L2·10·s·I + Tmp·100·s·I + Sym·10·s·SᵀS
    b_t = Dᵀ(p_t − p_neutral) + Tmp·s·x_{t−1}

with D the active deltas over the frontal mask (all vertices when there is none), S one row
(+1, −1) per symmetry pair, s = (|bbox diagonal of the neutral| / templateBBSize)² so the strengths
do not depend on the mesh units, and x_{−1} = 0. Since x ≥ 0, the 11ᵀ term is a squared L1 norm.

Temporal smoothing: a penalty tying each frame to the previous frame's solution, not a
whole-sequence formulation, because that is what the SDK computes from the same geometry and
config (the shipped strengths were presumably tuned against it), and because a causal term serves
streams too (``prev_weights`` continues one). Note the SDK's asymmetry: x_{t−1} enters b with Tmp·s but A with
Tmp·100·s, so its "smoothing" is mostly an extra L2 shrinkage with a ~1/100 pull towards the last
frame. ``temporal_mode="sdk"`` (default) reproduces it; ``temporal_mode="proximal"`` gives x_{t−1}
the weight Tmp·100·s in b as well, i.e. adds exactly ½·Tmp·100·s·|x_t − x_{t−1}|² to the energy
(a real pull to the previous frame, no shrinkage towards 0).
The recursion is sequential, yet almost all the work is batched: two parallel fixed-point sweeps
(every frame solved at once given the previous sweep's x_{t−1}) find each frame's partition into
free / at-0 / at-1 poses, then one sequential pass applies the cached inverses of the free-pose
blocks (a K×K matrix-vector product per frame), pivoting again only for frames whose partition
turns out wrong. The result is the exact recursion.

Cancel pairs (SDK): after a first solve, the smaller weight of each pair (the second one on a tie)
gets an upper bound of 1e-10 and the frame is solved again. Then the raw weights are scattered to
all ``numPoses`` (inactive poses get 0), multiplied by ``bsWeightMultipliers`` and shifted by
``bsWeightOffsets`` (so an inactive pose outputs its offset, 0 by default). As in the SDK, the
result is not clamped after that.

Each bounded QP is solved exactly by block principal pivoting (Júdice & Pires; Kim & Park's
backup rule against cycling), batched over frames with NumPy: every iteration is one batched
solve of the K×K normal equations restricted to the free poses.

One deliberate deviation: the SDK also pairs the two poses marked −1 when exactly two active poses
are unpaired; here −1 always means "no pair".
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import warnings
from typing import Any, Sequence

import numpy as np

from a2f_jax import io_utils
from a2f_jax.data import caches
from a2f_jax.errors import ConfigError, DataError, describe

# SDK defaults (audio2face/blendshape_solver.h).
DEFAULT_TEMPLATE_BB_SIZE = 54.7
DEFAULT_TOLERANCE = 1e-10
CANCEL_UPPER_BOUND = 1e-10  # the upper bound the SDK gives the weaker pose of a cancel pair
TEMPORAL_MODES = ("sdk", "proximal")

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


# --------------------------------------------------------------------------------------------
# Blendshape data and config
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Batched bounded least squares
# --------------------------------------------------------------------------------------------

_FREE, _LOWER, _UPPER = 0, 1, 2  # partition of each pose: free, at 0, at its upper bound
_BLOCK = 128  # frames per block of pivoting: keeps the [block, K, K] temporaries in cache
_MAX_PIVOTS = 12  # block-pivoting rounds before the active-set fallback (typical: 2 to 6)


def _gradient_tol(A: np.ndarray, tol: float) -> float:
    return tol * max(1.0, float(np.abs(np.diag(A)).max()))


def _violations(
    state: np.ndarray, x: np.ndarray, g: np.ndarray, upper: np.ndarray, tol: float, tol_g: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """KKT violations of a partition's solution x (gradient g = Ax − b): free poses below 0 or
    above their bound, and poses held at 0 (at the bound) that the gradient wants to raise (lower)."""
    free = state == _FREE
    to_lower = free & (x < -tol)
    to_upper = free & (x > upper + tol)
    to_free = ((state == _LOWER) & (g < -tol_g)) | ((state == _UPPER) & (g > tol_g))
    return to_lower, to_upper, to_free


def _masked_system(A: np.ndarray, state: np.ndarray) -> np.ndarray:
    """[N, K, K]: A on free×free poses, identity elsewhere (bound poses are given, not solved)."""
    free = state == _FREE
    return np.where(free[..., :, None] & free[..., None, :], A, np.eye(len(A)))


def _masked_rhs(A: np.ndarray, state: np.ndarray, b: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Right-hand side matching ``_masked_system``: b − A·x_bound on free poses, the bound value elsewhere."""
    fixed = np.where(state == _UPPER, upper, 0.0)
    return np.where(state == _FREE, b - fixed @ A, fixed)


def solve_box_qp(
    A: np.ndarray,
    b: np.ndarray,
    upper: np.ndarray | float = 1.0,
    state: np.ndarray | None = None,
    tol: float = 1e-9,
    max_iter: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """min ½xᵀAx − bᵀx subject to 0 <= x <= upper, for every row of ``b`` at once.

    A: [K, K] symmetric positive definite; b: [N, K]; upper: [N, K] or scalar (>= 0).
    ``state`` ([N, K] int8, 0 free / 1 at lower / 2 at upper) warm-starts the partition.
    Returns (x [N, K] f64, state [N, K] int8). Block principal pivoting: exact up to rounding.
    """
    A = np.asarray(A, np.float64)
    b = np.atleast_2d(np.asarray(b, np.float64))
    n, k = b.shape
    u = np.broadcast_to(np.asarray(upper, np.float64), (n, k))
    x = np.empty((n, k))
    out_state = np.empty((n, k), np.int8)
    # Blocks of rows keep the temporaries in cache: about 2× faster than all rows at once.
    for lo in range(0, n, _BLOCK):
        sl = slice(lo, lo + _BLOCK)
        x[sl], out_state[sl] = _pivot(A, b[sl], u[sl], None if state is None else state[sl], tol, max_iter)
    return x, out_state


def _pivot(
    A: np.ndarray, b: np.ndarray, u: np.ndarray, state: np.ndarray | None, tol: float, max_iter: int | None
) -> tuple[np.ndarray, np.ndarray]:
    n, k = b.shape
    if state is None:
        x0 = np.linalg.solve(A, b.T).T  # unconstrained optimum: a good first guess of the partition
        state = np.where(x0 <= 0.0, _LOWER, np.where(x0 >= u, _UPPER, _FREE)).astype(np.int8)
    else:
        state = state.astype(np.int8, copy=True)
    max_iter = max_iter or _MAX_PIVOTS
    tol_g = _gradient_tol(A, tol)
    x_out = np.zeros((n, k))
    best = np.full(n, k + 1)
    tries = np.full(n, 3)
    todo = np.arange(n)
    for _ in range(max_iter):
        st, bt, ut = state[todo], b[todo], u[todo]
        x = np.linalg.solve(_masked_system(A, st), _masked_rhs(A, st, bt, ut)[..., None])[..., 0]
        to_lower, to_upper, to_free = _violations(st, x, x @ A - bt, ut, tol, tol_g)
        bad = to_lower | to_upper | to_free
        count = bad.sum(axis=1)
        done = count == 0
        x_out[todo] = np.clip(x, 0.0, ut)  # final for the done rows; best effort if max_iter runs out
        if done.all():
            return x_out, state
        # Kim & Park: exchange every infeasible pose while their count keeps dropping (3 grace
        # steps), else only the last one, which cannot cycle.
        better = count < best[todo]
        best[todo] = np.where(better, count, best[todo])
        tries[todo] = np.where(better, 3, tries[todo] - 1)
        single = ~better & (tries[todo] < 0)
        last = k - 1 - np.argmax(bad[:, ::-1], axis=1)
        only_last = np.zeros_like(bad)
        only_last[np.arange(len(todo)), last] = True
        change = np.where(single[:, None], bad & only_last, bad)
        st = np.where(change & to_lower, _LOWER, st)
        st = np.where(change & to_upper, _UPPER, st)
        state[todo] = np.where(change & to_free, _FREE, st)
        todo = todo[~done]
    # Nearly singular systems can make block pivoting cycle on rounding noise; the few frames
    # left finish with a one-pose-at-a-time active-set method, which cannot cycle that way.
    for r in todo:
        x_out[r], state[r] = _active_set(A, b[r], u[r], x_out[r], tol, tol_g)
    return x_out, state


def _active_set(
    A: np.ndarray, b: np.ndarray, u: np.ndarray, x0: np.ndarray, tol: float, tol_g: float
) -> tuple[np.ndarray, np.ndarray]:
    """Primal active-set method for one frame's box QP, from the feasible point clip(x0)."""
    k = len(b)
    x = np.clip(x0, 0.0, u)
    at_low, at_up = x <= 0.0, (x >= u) & (x > 0.0)
    for _ in range(20 * k):
        free = ~(at_low | at_up)
        x = np.where(at_low, 0.0, np.where(at_up, u, x))
        target = x.copy()
        if free.any():
            fi, bi = np.flatnonzero(free), np.flatnonzero(~free)
            target[fi] = np.linalg.solve(A[np.ix_(fi, fi)], b[fi] - A[np.ix_(fi, bi)] @ x[bi])
        step = target - x
        # Longest step towards the subspace optimum that stays in the box; a blocking pose joins
        # the bound set.
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(free & (step < 0), -x / step, np.where(free & (step > 0), (u - x) / step, np.inf))
        j = int(np.argmin(ratio))
        if ratio[j] < 1.0:
            x = x + max(ratio[j], 0.0) * step
            at_low[j], at_up[j] = step[j] < 0, step[j] > 0
            continue
        x = target
        g = x @ A - b
        # Release the bound pose whose multiplier most wants it inside; none: optimal.
        mult = np.where(at_low, g, np.where(at_up, -g, np.inf))
        j = int(np.argmin(mult))
        if mult[j] >= -tol_g:
            break
        at_low[j] = at_up[j] = False
    else:
        warnings.warn("blendshape solve: the active-set fallback did not converge; clipped")
    state = np.where(at_low, _LOWER, np.where(at_up, _UPPER, _FREE)).astype(np.int8)
    return np.clip(x, 0.0, u), state


class _Partitions:
    """Per-frame optimal partitions of a box QP, and the inverses of their masked normal matrices
    (built on first reuse), so that a nearby right-hand side costs one matrix-vector product."""

    def __init__(self, A: np.ndarray, state: np.ndarray):
        self.A = A
        self.state = state
        self.tol_g_scale = _gradient_tol(A, 1.0)
        self._inv: np.ndarray | None = None

    def _inverse(self, state: np.ndarray) -> np.ndarray:
        out = np.empty(state.shape + state.shape[-1:])  # [N, K, K]
        for lo in range(0, len(state), _BLOCK):
            out[lo : lo + _BLOCK] = np.linalg.inv(_masked_system(self.A, state[lo : lo + _BLOCK]))
        return out

    def inverse(self) -> np.ndarray:
        if self._inv is None:
            self._inv = self._inverse(self.state)
        return self._inv

    def solve(self, b: np.ndarray, upper: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
        """x for the cached partitions, and whether each frame still meets the KKT conditions."""
        x = np.einsum("nij,nj->ni", self.inverse(), _masked_rhs(self.A, self.state, b, upper))
        bad = _violations(self.state, x, x @ self.A - b, upper, tol, tol * self.tol_g_scale)
        return np.clip(x, 0.0, upper), ~(bad[0] | bad[1] | bad[2]).any(axis=1)

    def solve_one(self, i: int, b: np.ndarray, upper: np.ndarray, tol: float) -> np.ndarray:
        """Row i alone: the cached partition if it is still optimal, else pivot from it and cache."""
        st = self.state[i]
        x = self.inverse()[i] @ _masked_rhs(self.A, st, b, upper)
        bad = _violations(st, x, x @ self.A - b, upper, tol, tol * self.tol_g_scale)
        if not (bad[0] | bad[1] | bad[2]).any():
            return np.clip(x, 0.0, upper)
        x, state = solve_box_qp(self.A, b[None], upper[None], st[None], tol)
        self.update(np.array([i]), state)
        return x[0]

    def update(self, rows: np.ndarray, state: np.ndarray) -> None:
        self.state[rows] = state
        if self._inv is not None:
            self._inv[rows] = self._inverse(state)


# --------------------------------------------------------------------------------------------
# The solver
# --------------------------------------------------------------------------------------------


def _pairs(ids: np.ndarray, active: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, as indices into the active poses; pairs with an inactive pose drop out."""
    act_ids = ids[active]
    out = []
    for pid in np.unique(act_ids[act_ids != -1]):
        where = np.flatnonzero(act_ids == pid)
        if len(where) == 2:
            out.append((int(where[0]), int(where[1])))
    return out


class BlendshapeSolver:
    """Precomputes the normal equations once; ``solve`` maps geometry [T, V, 3] to weights [T, P]."""

    def __init__(self, data: BlendshapeData, config: BlendshapeConfig, temporal_mode: str = "sdk", chunk: int = 1024):
        """``temporal_mode``: "sdk" (the SDK's numbers: x_{t-1} enters b with Tmp·s) or "proximal"
        (x_{t-1} enters b with Tmp·100·s, the same weight as in A: the energy gains exactly
        ½·Tmp·100·s·|x − x_{t-1}|², a real pull towards the previous frame)."""
        if temporal_mode not in TEMPORAL_MODES:
            raise ConfigError(
                describe("BlendshapeSolver", "temporal_mode", f"one of {TEMPORAL_MODES}", repr(temporal_mode))
            )
        num = len(data.pose_names)
        if config.num_poses != num:
            raise DataError(
                describe(
                    config.source, "blendshape_params.numPoses", f"{num} (the poses in {data.source})", str(config.num_poses)
                )
            )
        self.data = data
        self.config = config
        self.pose_names = data.pose_names
        self.chunk = chunk
        self.active_index = np.flatnonzero(config.active)
        k = len(self.active_index)

        # The SDK scales every strength by the squared ratio of this mesh's bounding-box diagonal
        # (whole neutral, not only the frontal mask) to the template's.
        extent = data.neutral.max(axis=0).astype(np.float64) - data.neutral.min(axis=0)
        self.scale = float((np.linalg.norm(extent) / config.template_bb_size) ** 2)

        verts = data.frontal_mask if data.frontal_mask is not None else slice(None)
        self._verts = verts
        d = data.deltas[self.active_index][:, verts].reshape(k, -1)  # [K, 3n]
        self._D = np.ascontiguousarray(d.T, np.float32)  # [3n, K]
        self._neutral = data.neutral[verts].reshape(-1).astype(np.float32)  # [3n]

        d64 = d.astype(np.float64)
        s = self.scale
        sym = np.zeros((0, k))
        sym_pairs = _pairs(config.symmetry, config.active)
        if sym_pairs:
            sym = np.zeros((len(sym_pairs), k))
            for row, (i, j) in enumerate(sym_pairs):
                sym[row, i], sym[row, j] = 1.0, -1.0
        A = (
            d64 @ d64.T
            + config.l1**2 * 0.25 * s * np.ones((k, k))
            + (config.l2 * 10.0 * s + config.temporal * 100.0 * s) * np.eye(k)
            + config.symmetry_strength * 10.0 * s * sym.T @ sym
        )
        try:
            np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            # Duplicate or zero blendshapes and no regularisation: a tiny ridge keeps it solvable.
            ridge = 1e-9 * max(float(np.trace(A)) / k, 1e-30)
            warnings.warn(f"{data.source}: blendshape normal matrix is singular; adding a ridge of {ridge:.3g}")
            A = A + ridge * np.eye(k)
        self.A = A  # [K, K]
        # Weight of x_{t-1} in b_t.
        self.temporal_coef = config.temporal * s * (100.0 if temporal_mode == "proximal" else 1.0)
        self.temporal_mode = temporal_mode
        self.cancel_pairs = _pairs(config.cancel, config.active)
        self._cancel_i = np.array([i for i, _ in self.cancel_pairs], np.int64)
        self._cancel_j = np.array([j for _, j in self.cancel_pairs], np.int64)
        self._tol = max(float(config.tolerance), 1e-12) * 10.0

    # -- geometry to the linear term ---------------------------------------------------------

    def targets(self, frames: np.ndarray, deltas: bool = False, source: str = "geometry") -> np.ndarray:
        """Dᵀ(p_t − neutral) for every frame: [T, K] f64. ``frames``: [T, V, 3] or [T, 3V]."""
        frames = np.asarray(frames)
        v = self.data.num_vertices
        if frames.ndim == 2 and frames.shape[1] == 3 * v:
            frames = frames.reshape(frames.shape[0], v, 3)
        if frames.ndim != 3 or frames.shape[1:] != (v, 3):
            raise DataError(
                describe(source, "shape", f"[T, {v}, 3] (the vertex count of {self.data.source})", str(list(frames.shape)))
            )
        out = np.empty((frames.shape[0], len(self.active_index)))
        for start in range(0, frames.shape[0], self.chunk):
            block = frames[start : start + self.chunk][:, self._verts].reshape(-1, self._D.shape[0]).astype(np.float32)
            if not deltas:
                block -= self._neutral
            out[start : start + self.chunk] = block @ self._D
        bad = ~np.isfinite(out).all(axis=1)
        if bad.any():
            raise DataError(describe(source, f"frame {int(np.argmax(bad))}", "finite vertex positions", "NaN or Inf"))
        return out

    # -- the per-frame solves ----------------------------------------------------------------

    def _box(
        self, b: np.ndarray, upper: np.ndarray | float, part: _Partitions | None
    ) -> tuple[np.ndarray, _Partitions]:
        """Box QP for every row of b; with ``part`` (the rows' last optimal partitions) most rows
        are re-solved by one matrix-vector product, the rest by pivoting from that partition."""
        upper = np.broadcast_to(np.asarray(upper, np.float64), b.shape)
        if part is None:
            x, state = solve_box_qp(self.A, b, upper, None, self._tol)
            return x, _Partitions(self.A, state)
        x, ok = part.solve(b, upper, self._tol)
        if not ok.all():
            bad = np.flatnonzero(~ok)
            x[bad], state = solve_box_qp(self.A, b[bad], upper[bad], part.state[bad], self._tol)
            part.update(bad, state)
        return x, part

    def _solve_frames(self, b: np.ndarray, parts: list | None) -> tuple[np.ndarray, list]:
        """One SDK frame solve (with the cancel re-solve) for each row of b; ``parts`` carries the
        two passes' partitions from the previous sweep (None on the first)."""
        parts = parts or [None, None]
        x, parts[0] = self._box(b, 1.0, parts[0])
        if not self.cancel_pairs:
            return x, parts
        upper = np.ones_like(x)
        for i, j in self.cancel_pairs:
            i_wins = x[:, i] >= x[:, j]
            upper[i_wins, j] = CANCEL_UPPER_BOUND
            upper[~i_wins, i] = CANCEL_UPPER_BOUND
        if parts[1] is not None:
            x, parts[1] = self._box(b, upper, parts[1])
            return x, parts
        # Frames whose first solution already respects the caps keep it (it is optimal in the
        # smaller box too); the others are solved again. (Starting from the first pass's partition
        # takes more pivots than the unconstrained optimum does: capping a pose moves its share.)
        need = np.flatnonzero((x > upper).any(axis=1))
        state = parts[0].state.copy()
        if len(need):
            x = x.copy()
            x[need], state[need] = solve_box_qp(self.A, b[need], upper[need], None, self._tol)
        parts[1] = _Partitions(self.A, state)
        return x, parts

    def solve_active(
        self,
        frames: np.ndarray,
        deltas: bool = False,
        prev_weights: np.ndarray | None = None,
        source: str = "geometry",
    ) -> np.ndarray:
        """Raw weights of the active poses, before multipliers/offsets: [T, K] f64 in [0, 1].

        ``prev_weights`` ([K] raw weights of the frame before ``frames[0]``) continues a stream;
        None starts from zeros, as the SDK does after a reset.
        """
        base = self.targets(frames, deltas, source)
        t, k = base.shape
        if t == 0:
            return np.zeros((0, k))
        prev0 = np.zeros(k) if prev_weights is None else np.asarray(prev_weights, np.float64).reshape(k)
        if self.temporal_coef == 0.0:
            return self._solve_frames(base, None)[0]
        # The causal recursion x_t = solve(b_t + c·x_{t-1}) (module docstring): two batched
        # fixed-point sweeps find each frame's partition (nearly always the final one), then one
        # sequential pass applies the cached inverses, re-pivoting only frames whose partition
        # turns out wrong. The result is exact, not a tolerance away from the recursion.
        c = self.temporal_coef
        x, parts = self._solve_frames(base + c * prev0, None)
        x, parts = self._solve_frames(base + c * np.vstack([prev0[None], x[:-1]]), parts)
        out = np.empty_like(x)
        prev = prev0
        for i in range(t):
            prev = out[i] = self._solve_one(i, base[i] + c * prev, parts)
        return out

    def _solve_one(self, i: int, b: np.ndarray, parts: list) -> np.ndarray:
        """Frame i of a sequential pass (both SDK passes), reusing and repairing ``parts``."""
        x = parts[0].solve_one(i, b, np.ones_like(b), self._tol)
        if not self.cancel_pairs:
            return x
        upper = np.ones_like(x)
        i_wins = x[self._cancel_i] >= x[self._cancel_j]
        upper[self._cancel_j[i_wins]] = CANCEL_UPPER_BOUND
        upper[self._cancel_i[~i_wins]] = CANCEL_UPPER_BOUND
        if (x <= upper).all():  # the caps do not bite: the first solution is also the second
            return x
        return parts[1].solve_one(i, b, upper, self._tol)

    def to_output(self, raw: np.ndarray) -> np.ndarray:
        """Scatter raw active weights [T, K] to all poses and apply multipliers then offsets: [T, P]."""
        full = np.zeros((raw.shape[0], self.config.num_poses))
        full[:, self.active_index] = raw
        return (full * self.config.multipliers + self.config.offsets).astype(np.float32)

    def solve(
        self,
        frames: np.ndarray,
        deltas: bool = False,
        prev_weights: np.ndarray | None = None,
        source: str = "geometry",
    ) -> np.ndarray:
        """Weights for every pose, as the SDK outputs them: f32 [T, numPoses]."""
        return self.to_output(self.solve_active(frames, deltas, prev_weights, source))

    def evaluate(self, weights: np.ndarray) -> np.ndarray:
        """Geometry of raw weights for all poses ([T, P], no multipliers/offsets): f32 [T, V, 3]."""
        w = np.asarray(weights, np.float32)
        flat = w @ self.data.deltas.reshape(len(self.pose_names), -1)
        return self.data.neutral + flat.reshape(len(w), *self.data.neutral.shape)


def from_files(bs_npz: str | pathlib.Path, bs_config: str | pathlib.Path, temporal_mode: str = "sdk") -> BlendshapeSolver:
    """A solver for a ``bs_*.npz`` and its ``bs_*_config.json``."""
    return BlendshapeSolver(load_blendshape_data(bs_npz), load_blendshape_config(bs_config), temporal_mode)


# --------------------------------------------------------------------------------------------
# Output files
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Geometry in, files out
# --------------------------------------------------------------------------------------------


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
    first remove the tongue's rigid (jaw) motion as preproc does (spec §3.4), for raw dataset
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
            from a2f_jax.preproc import rigid  # only here: importing a2f_jax.preproc loads scikit-learn

            indices = _vertex_list(tongue_rigid_vertices)
            frames = rigid.stabilize(frames, tongue.data.neutral, indices).astype(np.float32)
        prefix = pathlib.Path(out_prefix)
        weights = tongue.solve(frames, deltas, source=source)
        written = write_weights(prefix.with_name(prefix.name + "_tongue"), tongue.pose_names, weights, fps)
        paths.update({f"tongue_{k}": v for k, v in written.items()})
    return paths
