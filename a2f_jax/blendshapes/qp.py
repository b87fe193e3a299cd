"""Batched box-constrained quadratic programs: min ½xᵀAx − bᵀx subject to 0 <= x <= u, one per row of b.

Each QP is solved exactly by block principal pivoting (Júdice & Pires; Kim & Park's backup rule
against cycling), batched over rows with NumPy: every iteration is one batched solve of the K×K
normal equations restricted to the free variables. The few rows on which pivoting cycles (nearly
singular systems, rounding noise) finish with a primal active-set method. ``Partitions`` caches
each row's optimal partition and its inverse, so that re-solving with a nearby right-hand side
costs one matrix-vector product.
"""

from __future__ import annotations

import warnings

import numpy as np

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


class Partitions:
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
