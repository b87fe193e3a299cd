"""Blendshape weights from predicted geometry, with the Audio2Face-3D SDK's solver semantics.

The blendshapes and their config are read by ``a2f_jax.blendshapes.formats``.

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

Each bounded QP is solved exactly by ``a2f_jax.blendshapes.qp.solve_box_qp`` (block principal pivoting).

One deliberate deviation: the SDK also pairs the two poses marked −1 when exactly two active poses
are unpaired; here −1 always means "no pair".
"""

from __future__ import annotations

import pathlib
import warnings

import numpy as np

from a2f_jax.blendshapes.formats import BlendshapeConfig, BlendshapeData, load_blendshape_config, load_blendshape_data
from a2f_jax.blendshapes.qp import Partitions, solve_box_qp
from a2f_jax.errors import ConfigError, DataError, describe

CANCEL_UPPER_BOUND = 1e-10  # the upper bound the SDK gives the weaker pose of a cancel pair
TEMPORAL_MODES = ("sdk", "proximal")


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
        self, b: np.ndarray, upper: np.ndarray | float, part: Partitions | None
    ) -> tuple[np.ndarray, Partitions]:
        """Box QP for every row of b; with ``part`` (the rows' last optimal partitions) most rows
        are re-solved by one matrix-vector product, the rest by pivoting from that partition."""
        upper = np.broadcast_to(np.asarray(upper, np.float64), b.shape)
        if part is None:
            x, state = solve_box_qp(self.A, b, upper, None, self._tol)
            return x, Partitions(self.A, state)
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
        parts[1] = Partitions(self.A, state)
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
