"""Metrics against hand-computed cases."""

import numpy as np
import pytest

from a2f_jax.infer import metrics as M


def _frames(T=5, V=6, seed=0):
    return np.random.default_rng(seed).normal(size=(T, V, 3))


def test_lip_vertex_error_is_mean_of_per_frame_max():
    gt = np.zeros((3, 4, 3))
    pred = gt.copy()
    pred[0, 1, 0] = 3.0  # frame 0: max error 3 (vertex 1)
    pred[1, 2, 1] = 4.0  # frame 1: max error 4
    pred[2, 3, 2] = 9.0  # vertex 3 is not a lip vertex
    assert M.lip_vertex_error(pred, gt, [1, 2]) == pytest.approx((3 + 4 + 0) / 3)
    assert M.mean_vertex_error(pred, gt) == pytest.approx((3 + 4 + 9) / 12)


def test_lip_distance_and_mae():
    f = np.zeros((2, 4, 3))
    f[:, 0, 1] = [1.0, 2.0]  # upper
    f[:, 2, 1] = [0.0, 0.5]  # lower
    lists = {"upper": [0], "lower": [2]}
    np.testing.assert_allclose(M.lip_distance(f, lists), [1.0, 1.5])
    g = f.copy()
    g[:, 0, 1] += 0.25
    assert M.lip_distance_mae(f, g, lists) == pytest.approx(0.25)
    assert M.lip_distance_correlation(f, g, lists) == pytest.approx(1.0)


def test_r2_perfect_and_mean():
    gt = np.random.default_rng(1).normal(size=(50, 4))
    assert M.r2(gt, gt) == pytest.approx(1.0)
    assert M.r2(np.repeat(gt.mean(0, keepdims=True), 50, 0), gt) == pytest.approx(0.0, abs=1e-12)
    assert M.r2(gt, gt, "uniform") == pytest.approx(1.0)


def test_fdd_zero_for_identical_and_positive_for_static():
    gt = _frames(20, 8)
    assert M.fdd(gt, gt, [0, 1, 2]) == pytest.approx(0.0)
    static = np.repeat(gt.mean(0, keepdims=True), 20, 0)
    assert M.fdd(static, gt, [0, 1, 2]) > 0


def test_baselines_and_table():
    rng = np.random.default_rng(2)
    neutral = rng.normal(size=(6, 3))
    gt = neutral + 0.1 * rng.normal(size=(10, 6, 3))
    res = M.evaluate_with_baselines([(gt, gt)], train_mean=gt.mean(0), neutral=neutral, lip_vertices=[0, 1],
                                    upper_face=[4, 5], lip_dist_list={"upper": [0], "lower": [1]})
    assert res["model"]["lip_vertex_error"] == 0.0
    assert res["mean_pose"]["lip_vertex_error"] > 0 and res["neutral_pose"]["lip_vertex_error"] > 0
    table = M.format_table(res)
    assert "mean_pose" in table and "lip_vertex_error" in table and "neutral_pose" in table


def test_upper_face_selection_by_height():
    neutral = np.zeros((5, 3))
    neutral[:, 1] = [0, 1, 2, 3, 4]
    assert list(M.upper_face_vertices(neutral, fraction=0.5)) == [2, 3, 4]
    assert list(M.upper_face_vertices(neutral, lip_vertices=[3], fraction=0.5)) == [2, 4]


def test_correlation_of_a_constant_curve_is_zero_not_nan():
    gt = np.random.default_rng(3).normal(size=(10, 4, 3))
    const = np.repeat(gt.mean(0, keepdims=True), 10, 0) * (1 + 1e-9)
    assert M.lip_distance_correlation(const, gt, {"upper": [0, 1], "lower": [2, 3]}) == 0.0
