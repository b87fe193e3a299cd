"""Kabsch alignment and tongue stabilisation (docs/preproc_artifacts.md "Tongue")."""

import numpy as np
import pytest

from a2f_jax.data.rigid import rigid_transform, stabilize
from a2f_jax.errors import DataError
from a2f_jax.preproc.structured_data import _rotation


def test_recovers_known_rotation_and_translation():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((10, 3))
    rot = _rotation(np.array([0.3, -0.5, 1.1]))
    t = np.array([1.0, -2.0, 0.5])
    b = a @ rot + t  # the moved points
    rr, tt = rigid_transform(a, b)
    # aligning b back gives a, and the transform is the inverse motion
    np.testing.assert_allclose(b @ rr + tt, a, atol=1e-12)
    np.testing.assert_allclose(rr, rot.T, atol=1e-12)
    assert np.isclose(np.linalg.det(rr), 1.0)


def test_reflection_is_not_returned():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 3))
    b = a * np.array([1.0, 1.0, -1.0])  # mirror image: best proper rotation, never a reflection
    rr, _ = rigid_transform(a, b)
    assert np.isclose(np.linalg.det(rr), 1.0)


def test_matches_original_formula_per_frame():
    # (RR, tt) = (R^T, mean(A) - mean(B) R^T) with R = V diag(1,1,det) U^T from svd(Bc^T Ac)
    rng = np.random.default_rng(2)
    a = rng.standard_normal((8, 3))
    frames = rng.standard_normal((4, 8, 3))
    rr, tt = rigid_transform(a, frames)
    for i in range(4):
        b = frames[i]
        u, _, v = np.linalg.svd((b - b.mean(0)).T @ (a - a.mean(0)))
        r = v.T @ u.T
        fix = np.eye(3)
        fix[2, 2] = np.linalg.det(r)
        r = v.T @ fix @ u.T
        np.testing.assert_allclose(rr[i], r.T, atol=1e-12)
        np.testing.assert_allclose(tt[i], a.mean(0) - b.mean(0) @ r.T, atol=1e-12)


def test_stabilize_removes_rigid_motion_and_keeps_deformation():
    rng = np.random.default_rng(3)
    neutral = rng.standard_normal((20, 3))
    rigid = [0, 3, 5, 9]
    deform = np.zeros((5, 20, 3))
    deform[:, 12:] = 0.1 * rng.standard_normal((5, 8, 3))
    rots = np.stack([_rotation(rng.uniform(-0.4, 0.4, 3)) for _ in range(5)])
    moved = (neutral + deform) @ rots + rng.standard_normal((5, 1, 3))
    out = stabilize(moved.astype(np.float32), neutral.astype(np.float32), rigid)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, neutral + deform, atol=1e-5)


def test_bad_rigid_lists():
    neutral = np.zeros((5, 3), np.float32)
    frames = np.zeros((2, 5, 3), np.float32)
    with pytest.raises(DataError, match="at least 3"):
        stabilize(frames, neutral, [0, 1])
    with pytest.raises(DataError, match=r"\[0, 5\)"):
        stabilize(frames, neutral, [0, 1, 7])
    with pytest.raises(DataError, match="matching the neutral"):
        stabilize(np.zeros((2, 4, 3), np.float32), neutral, [0, 1, 2])
