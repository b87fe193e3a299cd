"""PCA primitive (docs/preproc_artifacts.md): threshold rule, forced counts, custom mean, randomized path, bad input."""

import numpy as np
import pytest

from a2f_jax.errors import ConfigError, DataError
from a2f_jax.preproc.pca import num_components, pca_truncated, project


def _low_rank(m=60, d=40, rank=5, noise=1e-3, seed=0):
    rng = np.random.default_rng(seed)
    scales = np.array([10.0, 5.0, 2.0, 1.0, 0.5])[:rank]
    x = (rng.standard_normal((m, rank)) * scales) @ np.linalg.qr(rng.standard_normal((d, rank)))[0].T
    return (x + noise * rng.standard_normal((m, d)) + 3.0).astype(np.float32)


def test_num_components_is_strict():
    evals = np.array([5.0, 3.0, 2.0])  # ratios 0.5, 0.8, 1.0
    assert num_components(evals, 10.0, 0.8) == 3  # 0.8 is not > 0.8
    assert num_components(evals, 10.0, 0.79) == 2
    assert num_components(evals, 10.0, 0.1) == 1


def test_threshold_reaches_variance_and_reconstructs():
    x = _low_rank()
    evecs, evals, mean = pca_truncated(x, 0.9995)
    assert evecs.shape[0] == 40 and evecs.shape[1] == evals.shape[0]
    delta = x.astype(np.float64) - x.mean(0)
    total = (delta**2).sum() / (x.shape[0] - 1)
    assert evals.sum() / total > 0.9995
    # one component fewer would not pass the threshold (minimality)
    assert evals[:-1].sum() / total <= 0.9995
    recon = project(x, evecs.astype(np.float32), mean) @ evecs.T + mean
    assert np.abs(recon - x).max() < 0.02
    np.testing.assert_allclose(evecs.T @ evecs, np.eye(evecs.shape[1]), atol=1e-10)


def test_evals_are_s2_over_m_minus_1_around_custom_mean_without_recentring():
    x = _low_rank()
    centre = np.full(40, 1.0)
    evecs, evals, mean = pca_truncated(x, 0.999999, custom_mean=centre)
    np.testing.assert_array_equal(mean, centre)
    s = np.linalg.svd(x.astype(np.float64) - centre, compute_uv=False)
    np.testing.assert_allclose(evals, (s**2 / (x.shape[0] - 1))[: evals.size], rtol=1e-9)
    # the first direction points at the data offset from the custom mean (it was not removed)
    offset = x.mean(0) - centre
    assert abs(evecs[:, 0] @ offset) / np.linalg.norm(offset) > 0.5


@pytest.mark.parametrize("force", [1, 3, 7])
def test_forced_components_override_threshold(force):
    evecs, evals, _ = pca_truncated(_low_rank(), 0.5, force_components=force)
    assert evecs.shape == (40, force) and evals.shape == (force,)


def test_forced_components_capped_by_rank():
    evecs, _, _ = pca_truncated(_low_rank(m=6), 0.9, force_components=50)
    assert evecs.shape[1] == 6


def test_randomized_path_matches_exact_subspace():
    x = _low_rank(m=300, d=200, noise=1e-3, seed=3)
    e_ex, v_ex, _ = pca_truncated(x, 0.999)
    e_rd, v_rd, _ = pca_truncated(x, 0.999, exact_max_rank=50)
    assert abs(e_rd.shape[1] - e_ex.shape[1]) <= 1
    k = min(e_rd.shape[1], e_ex.shape[1])
    cosines = np.linalg.svd(e_ex[:, :k].T @ e_rd[:, :k], compute_uv=False)
    assert cosines.min() > 0.9999
    np.testing.assert_allclose(v_rd[:k], v_ex[:k], rtol=1e-3)


def test_deterministic_up_to_sign():
    x = _low_rank(seed=5)
    a, _, _ = pca_truncated(x, 0.9995)
    b, _, _ = pca_truncated(x.copy(), 0.9995)
    np.testing.assert_allclose(np.abs(a.T @ b), np.eye(a.shape[1]), atol=1e-8)


def test_zero_variance_and_empty_input_raise():
    x = np.ones((5, 4), np.float32)
    with pytest.raises(DataError, match="non-zero variance"):
        pca_truncated(x, 0.99)
    with pytest.raises(DataError, match="non-zero variance"):
        pca_truncated(x, 0.99, custom_mean=np.ones(4), force_components=2)
    with pytest.raises(DataError, match="non-empty"):
        pca_truncated(np.zeros((0, 4), np.float32), 0.99)
    with pytest.raises(ConfigError, match="threshold"):
        pca_truncated(_low_rank(), 1.5)
    with pytest.raises(DataError, match="mean with 40 values"):
        pca_truncated(_low_rank(), 0.9, custom_mean=np.zeros(3))


@pytest.mark.parametrize("shape", [(30, 200), (200, 30)])
def test_gram_route_matches_lapack_svd(shape):
    rng = np.random.default_rng(11)
    m, d = shape
    x = (rng.standard_normal((m, 8)) * (3.0 ** -np.arange(8))) @ rng.standard_normal((8, d))
    x = (x + 1e-4 * rng.standard_normal((m, d))).astype(np.float32)
    evecs, evals, mean = pca_truncated(x, 0.99999)
    _, s, vt = np.linalg.svd(x.astype(np.float64) - mean, full_matrices=False)
    k = evecs.shape[1]
    assert k == num_components(s**2, float((s**2).sum()), 0.99999)
    np.testing.assert_allclose(evals, (s**2 / (m - 1))[:k], rtol=1e-8)
    np.testing.assert_allclose(np.abs(np.sum(evecs * vt[:k].T, axis=0)), 1.0, atol=1e-7)


def test_forced_components_beyond_rank_fall_back_to_orthonormal_vectors():
    rng = np.random.default_rng(12)
    x = (rng.standard_normal((10, 2)) @ rng.standard_normal((2, 50))).astype(np.float32)  # rank 2 (+ mean)
    evecs, evals, _ = pca_truncated(x, 0.9, force_components=6)
    assert evecs.shape == (50, 6)
    np.testing.assert_allclose(evecs.T @ evecs, np.eye(6), atol=1e-8)
    assert evals[2:].max() < 1e-8 * evals[0]
