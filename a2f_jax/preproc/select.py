"""Greedy distinct-pose selection by PCA reconstruction error (docs/preproc_artifacts.md "Skin: distinct-pose selection").

Start from 4 fixed rows floor(i*M/4); repeat `max_iter` times: PCA (data mean, internal threshold
0.9999) of the rows chosen so far, reconstruction error of every row, error of chosen rows set to 0,
append the first row of maximal error. No early stop, so 4 + max_iter rows come out (duplicates are
possible when every error is 0, as in the original).

The original recomputed an SVD of the chosen rows and projected all M rows every iteration
(O(iters * M * D * k)). Here everything is expressed through inner products with the chosen rows:
each iteration adds one column A @ a_j (one pass over A) and works on [M, k] and [k, k] matrices,
which is exact algebra for the same PCA and needs no GPU.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from a2f_jax.errors import DataError
from a2f_jax.preproc.pca import num_components

SELECT_VARIANCE_THRESHOLD = 0.9999  # hard-coded in the original, not a config key
NUM_INIT_ROWS = 4


def initial_rows(num_rows: int, num_init: int = NUM_INIT_ROWS) -> list[int]:
    step = num_rows / num_init
    return [int(step * i) for i in range(num_init)]


def _row_dots(rows: np.ndarray, j: int) -> np.ndarray:
    """rows @ rows[j] → float64 [M], accumulated in float64.

    The reconstruction error comes out of |x - mu|^2 - |proj|^2, which cancels heavily once the
    residuals are small; float32 accumulation (BLAS sgemv) was measured to flip the argmax against a
    direct SVD reference, float64 does not. Small chunks keep the float64 copies in cache.
    """
    target = rows[j].astype(np.float64)
    out = np.empty(rows.shape[0], dtype=np.float64)
    step = max(1, (2 << 20) // (8 * max(rows.shape[1], 1)))
    for s in range(0, rows.shape[0], step):
        out[s : s + step] = rows[s : s + step].astype(np.float64) @ target
    return out


def _select(
    rows: np.ndarray,
    max_iter: int,
    variance_threshold: float = SELECT_VARIANCE_THRESHOLD,
    num_init: int = NUM_INIT_ROWS,
    on_iteration: Callable[[int, list[int]], None] | None = None,
) -> list[int]:
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise DataError(f"distinct-pose selection: expected a non-empty [M, D] pose matrix, found shape {rows.shape}")
    m = rows.shape[0]
    chosen = initial_rows(m, num_init)
    total_cols = len(chosen) + max(int(max_iter), 0)
    # cols[:, c] = rows @ rows[chosen[c]]; sq[i] = |rows[i]|^2.
    cols = np.empty((m, total_cols), dtype=np.float64)
    sq = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
    for c, j in enumerate(chosen):
        cols[:, c] = _row_dots(rows, j)

    for ii in range(int(max_iter)):
        k = len(chosen)
        if len(set(chosen)) == m:
            # Every row is chosen, so every error is 0 from now on and the original's argmax keeps
            # returning row 0: append it for the remaining iterations without recomputing.
            for jj in range(ii, int(max_iter)):
                chosen.append(0)
                if on_iteration is not None:
                    on_iteration(jj, chosen)
            logging.info(f"Iteration [{ii}/{max_iter}] | all {m} rows chosen; row 0 repeats for the remaining iterations")
            break
        sel = np.asarray(chosen)
        c_all = cols[:, :k]  # [M, k]  x_i . s_c
        gram = c_all[sel]  # [k, k]  s_a . s_c
        # Centring with the mean of the chosen rows, mu = mean_c s_c:
        #   (s_a - mu).(x - mu) = x.s_a - mean_c(x.s_c) - mu.s_a + mu.mu
        mu_dot_s = gram.mean(axis=1)  # [k]  mu . s_a
        mu_mu = float(mu_dot_s.mean())
        x_mu = c_all.mean(axis=1)  # [M]  x . mu
        p = c_all - x_mu[:, None] - mu_dot_s[None, :] + mu_mu  # [M, k]  (s_a - mu).(x - mu)
        gc = p[sel]  # [k, k] centred Gram of the chosen rows
        gc = 0.5 * (gc + gc.T)
        # Eigenvalues first (cheap), then only the K leading eigenvectors.
        lam = np.clip(scipy.linalg.eigh(gc, eigvals_only=True)[::-1], 0.0, None)  # S**2, descending
        total = float(lam.sum())
        if total > 0.0:
            kk = num_components(lam / max(k - 1, 1), total / max(k - 1, 1), variance_threshold)
            kk = min(kk, int(np.count_nonzero(lam > 0)))
            lam_k, u = scipy.linalg.eigh(gc, subset_by_index=[k - kk, k - 1])
            lam_k, u = np.clip(lam_k[::-1], 0.0, None), u[:, ::-1]
            keep = lam_k > 0
            # Coefficients on unit eigenvectors: (x - mu) . v_i = u_i^T p_x / s_i.
            w = u[:, keep] / np.sqrt(lam_k[keep])[None, :]
            coef = p @ w  # [M, kk]
            proj_sq = np.einsum("ij,ij->i", coef, coef)
        else:
            # All chosen rows identical: the original crashed here (NaN ratio); no subspace instead.
            kk = 0
            proj_sq = np.zeros(m)
        resid_sq = sq - 2.0 * x_mu + mu_mu - proj_sq
        err = np.sqrt(np.clip(resid_sq, 0.0, None))
        err[sel] = 0.0
        j = int(np.argmax(err))
        if ii % 50 == 0 or ii == max_iter - 1:
            logging.info(f"Iteration [{ii}/{max_iter}] | Matrix ({k}, {rows.shape[1]}) -> {kk} components | max error = {err[j]:.6g}")
        chosen.append(j)
        cols[:, k] = _row_dots(rows, j)
        if on_iteration is not None:
            on_iteration(ii, chosen)
    return chosen


def select_distinct_poses(
    rows: np.ndarray,
    max_iter: int,
    variance_threshold: float = SELECT_VARIANCE_THRESHOLD,
    num_init: int = NUM_INIT_ROWS,
    on_iteration: Callable[[int, list[int]], None] | None = None,
) -> list[int]:
    """Selected global row indices (initial rows first, then in selection order).

    rows: [M, D] float32, ideally centred on its column mean (the result does not depend on a constant
    offset, but the error formula cancels less on centred data).
    `on_iteration(ii, chosen)` is called after every iteration (snapshots, progress).
    """
    # Hundreds of small [k, k] eigendecompositions and [M, k] products: threaded BLAS/LAPACK was
    # measured 14x slower than one thread on a busy 2-core machine, and gains little when idle.
    with threadpool_limits(1):
        return _select(rows, max_iter, variance_threshold, num_init, on_iteration)


def map_rows_to_frames(
    chosen: list[int], shots: list[str], kept: dict[str, list[int]]
) -> dict[str, list[int]]:
    """Global rows of the stacked kept frames → {shot: sorted original frame indices} for every shot.

    Duplicated rows stay duplicated, as in the original's final JSON.
    """
    bounds = np.cumsum([0] + [len(kept[s]) for s in shots])
    out: dict[str, list[int]] = {s: [] for s in shots}
    for g in chosen:
        si = int(np.searchsorted(bounds, g, side="right")) - 1
        shot = shots[si]
        out[shot].append(int(kept[shot][g - bounds[si]]))
    return {s: sorted(v) for s, v in out.items()}
