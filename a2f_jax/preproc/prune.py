"""Near-duplicate frame pruning (docs/preproc_artifacts.md "How the files are computed").

Anchors are every 10th row of the current set; every row within an (inclusive) Euclidean radius of
an anchor is dropped unless it is itself an anchor. The skin variant repeats this on the surviving
rows until the count is stable or at most 10 rows remain; the tongue variant runs one pass.

The original used a KD-tree; in thousands of dimensions a KD-tree is a slow brute force, so this
uses a Gram-matrix distance (BLAS) and re-checks the pairs near the radius exactly in float64, which
gives the same inclusive decision as the KD-tree.
"""

from __future__ import annotations

import numpy as np

ANCHOR_STEP = 10
MIN_FRAMES = 10
# Anchors processed per block: bounds the [block, T] distance matrix.
_ANCHOR_BLOCK = 256


def _close_to_anchors(rows: np.ndarray, anchor_idx: np.ndarray, radius: float) -> np.ndarray:
    """Boolean [T]: rows within `radius` (inclusive) of any anchor row. rows: [T, D] float."""
    t = rows.shape[0]
    r2 = float(radius) ** 2
    # Centre on the row mean so the Gram formula works on small numbers (less cancellation).
    centre = rows.mean(axis=0, dtype=np.float64)
    work = rows.astype(np.float32, copy=True)
    work -= centre.astype(np.float32)
    sq = np.einsum("ij,ij->i", work, work, dtype=np.float64)
    close = np.zeros(t, dtype=bool)
    for start in range(0, anchor_idx.size, _ANCHOR_BLOCK):
        idx = anchor_idx[start : start + _ANCHOR_BLOCK]
        dots = (work[idx] @ work.T).astype(np.float64)  # [b, T]
        d2 = sq[idx, None] + sq[None, :] - 2.0 * dots
        # float32 Gram error bound (generous): relative to the norms involved.
        tol = 1e-4 * (sq[idx, None] + sq[None, :]) + 1e-6 * r2 + 1e-12
        sure = d2 <= r2 - tol
        unsure = np.abs(d2 - r2) < tol
        hit = sure.any(axis=0)
        for a_local, j in zip(*np.nonzero(unsure & ~hit[None, :])):
            if hit[j]:
                continue
            diff = rows[j].astype(np.float64) - rows[idx[a_local]].astype(np.float64)
            if float(diff @ diff) <= r2:
                hit[j] = True
        close |= hit
    return close


def prune_pass(rows: np.ndarray, radius: float) -> np.ndarray:
    """One pass: local indices kept (sorted) = anchors ∪ rows not close to any anchor."""
    t = rows.shape[0]
    anchors = np.arange(0, t, ANCHOR_STEP)
    if t == 0:
        return anchors
    close = _close_to_anchors(rows, anchors, radius)
    keep = ~close
    keep[anchors] = True
    return np.flatnonzero(keep)


def prune_similar_poses(rows: np.ndarray, radius: float, iterate: bool = True) -> list[int]:
    """Frame indices kept for one shot. rows: [T, D] (flattened, masked xyz).

    iterate=True: the skin rule (repeat while the count changes and more than 10 rows remain);
    iterate=False: a single pass (tongue).
    """
    valid = np.arange(rows.shape[0])
    if not iterate:
        return valid[prune_pass(rows, radius)].tolist()
    prev = 0
    n = valid.size
    while n != prev and valid.size > MIN_FRAMES:
        prev = n
        valid = valid[prune_pass(rows[valid], radius)]
        n = valid.size
    return valid.tolist()
