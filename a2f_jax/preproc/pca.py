"""Truncated PCA, the primitive shared by skin and tongue (docs/preproc_artifacts.md "PCA").

Conventions kept from the original: the data is centred on a custom mean when one is given (no
re-centring), eigenvalues are `S**2 / (m - 1)`, and the number of components is one plus the first
index where the cumulative variance ratio is strictly greater than the threshold. A forced count
overrides the threshold. No sign normalisation.

Differences (deliberate): the decomposition runs in float64 (the original used float32 LAPACK) through
the smaller Gram matrix (falling back to the SVD when that is not accurate enough); large matrices
use a randomized truncated SVD (see `pca_truncated`); all-zero variance raises a clear error instead
of crashing with an IndexError.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.utils.extmath import randomized_svd

from a2f_jax.errors import ConfigError, DataError

# Above this many rows *and* columns an exact SVD costs O(m*d*min(m,d)) and is replaced by a
# randomized one. The skin PCA (~791 rows) always stays exact.
EXACT_SVD_MAX_RANK = 4000


def num_components(evals: np.ndarray, total: float, threshold: float) -> int:
    """1 + first index where cumsum(evals)/total > threshold (strict), as the original.

    If rounding keeps the ratio from ever passing the threshold (threshold close to 1), all
    components with non-zero variance are kept instead of crashing.
    """
    ratio = np.cumsum(evals) / total
    above = np.flatnonzero(ratio > threshold)
    if above.size:
        return int(above[0]) + 1
    nonzero = int(np.count_nonzero(evals > 0))
    logging.warning(
        f"PCA: cumulative variance ratio never exceeds {threshold} (max {ratio[-1]:.10f}); "
        f"keeping all {nonzero} non-zero components"
    )
    return max(nonzero, 1)


def _check_args(data: np.ndarray, threshold: float, force_components: int | None, what: str) -> None:
    if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] == 0:
        raise DataError(f"{what}: expected a non-empty 2-D data matrix [m, d], found shape {data.shape}")
    if not 0.0 < float(threshold) <= 1.0:
        raise ConfigError(f"{what}: expected a variance threshold in (0, 1], found {threshold}")
    if force_components is not None and int(force_components) < 1:
        raise ConfigError(f"{what}: expected a forced component count >= 1, found {force_components}")


def _gram_eig(delta: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Squared singular values (descending) of delta [m, d] and the eigenvectors of its smaller Gram
    matrix: [m, r] left vectors when m <= d (wide), else [d, r] right vectors. Returns (lam, vecs, wide).

    One BLAS-3 product + an [r, r] eigh: about 3x cheaper than LAPACK's gesdd on the wide
    [791, 72006] skin matrix. Eigenvalues are accurate in absolute terms (the variance threshold only
    needs those); see `_right_vectors` for the vectors.
    """
    m, d = delta.shape
    wide = m <= d
    lam, vecs = np.linalg.eigh(delta @ delta.T if wide else delta.T @ delta)
    return np.clip(lam[::-1], 0.0, None), vecs[:, ::-1], wide


def _right_vectors(delta: np.ndarray, lam: np.ndarray, vecs: np.ndarray, wide: bool, k: int) -> np.ndarray | None:
    """The first k right singular vectors [d, k], or None when the Gram route is not accurate enough
    (a needed singular value below 1e-6 of the largest: squaring the spectrum lost its direction)."""
    if not wide:
        return np.ascontiguousarray(vecs[:, :k])
    s = np.sqrt(lam[:k])
    if k == 0 or not s[-1] > s[0] * 1e-6:
        return None
    return delta.T @ (vecs[:, :k] / s)


def pca_truncated(
    data: np.ndarray,
    variance_threshold: float,
    custom_mean: np.ndarray | None = None,
    force_components: int | None = None,
    what: str = "PCA",
    exact_max_rank: int = EXACT_SVD_MAX_RANK,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of `data` [m, d] → (evecs [d, K], evals [K], mean [d]), all float64.

    `custom_mean` [d] (or any shape with d elements) replaces the column mean. When both m and d
    exceed `exact_max_rank`, the leading components come from a randomized SVD (scikit-learn,
    fixed seed): the total variance is still exact (Frobenius norm), but the leading singular values
    are very slightly underestimated, so K can come out one larger than an exact SVD would give.
    """
    _check_args(data, variance_threshold, force_components, what)
    m, d = data.shape
    if custom_mean is None:
        mean = data.mean(axis=0, dtype=np.float64)
    else:
        mean = np.asarray(custom_mean, dtype=np.float64).reshape(-1)
        if mean.shape[0] != d:
            raise DataError(f"{what}: expected a mean with {d} values, found {mean.shape[0]}")
    rank = min(m, d)
    denom = max(m - 1, 1)  # m == 1 would divide by zero in the original; one row has no spread anyway

    if rank <= exact_max_rank:
        delta = data.astype(np.float64) - mean
        lam, vecs, wide = _gram_eig(delta)
        evals = lam / denom
        total = float(evals.sum())
        if not total > 0.0:
            raise DataError(f"{what}: expected data with non-zero variance around the mean, found all-zero variance ({m} rows)")
        k = int(force_components) if force_components is not None else num_components(evals, total, variance_threshold)
        k = min(k, rank)
        evecs = _right_vectors(delta, lam, vecs, wide, k)
        if evecs is None:
            _, s, vt = np.linalg.svd(delta, full_matrices=False)
            evals = s * s / denom
            k = int(force_components) if force_components is not None else num_components(evals, float(evals.sum()), variance_threshold)
            k = min(k, rank)
            evecs = vt[:k].T.copy()
        return evecs, evals[:k].copy(), mean

    # Large matrix: float32 working copy, exact total variance, growing randomized rank.
    delta = data.astype(np.float32, copy=True)
    delta -= mean.astype(np.float32)
    total = float(np.einsum("ij,ij->", delta, delta, dtype=np.float64)) / denom
    if not total > 0.0:
        raise DataError(f"{what}: expected data with non-zero variance around the mean, found all-zero variance ({m} rows)")
    k_try = int(force_components) if force_components is not None else 64
    while True:
        k_try = min(k_try, rank)
        _, s, vt = randomized_svd(delta, n_components=k_try, n_oversamples=20, n_iter=4, random_state=0)
        evals = s.astype(np.float64) ** 2 / denom
        if force_components is not None:
            k = k_try
            break
        ratio = np.cumsum(evals) / total
        if (ratio > variance_threshold).any() or k_try == rank:
            k = num_components(evals, total, variance_threshold)
            break
        k_try *= 2
    logging.info(f"{what}: randomized SVD of a {m}x{d} matrix, rank {k_try} computed, K = {k}")
    return vt[:k].T.astype(np.float64), evals[:k], mean


def project(frames: np.ndarray, evecs: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Coefficients (frames [T, d] - mean) @ evecs [d, K] → [T, K] in the frames' float dtype."""
    out_dtype = np.result_type(frames.dtype, np.float32)
    return ((frames - mean.astype(out_dtype)) @ evecs.astype(out_dtype)).astype(out_dtype, copy=False)
