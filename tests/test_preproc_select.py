"""Distinct-pose selection (docs/preproc_artifacts.md) against a direct SVD reference of the original's loop."""

import numpy as np

from a2f_jax.preproc.select import initial_rows, map_rows_to_frames, select_distinct_poses


def _reference(rows, max_iter, threshold=0.9999):
    """The original's loop: SVD of the chosen rows (data mean), residual of every row, argmax."""
    rows = rows.astype(np.float64)
    chosen = initial_rows(rows.shape[0])
    for _ in range(max_iter):
        mat = rows[chosen]
        mean = mat.mean(0)
        _, s, vt = np.linalg.svd(mat - mean, full_matrices=False)
        ev = s * s / (mat.shape[0] - 1)
        k = int(np.argwhere(np.cumsum(ev) / ev.sum() > threshold)[0][0]) + 1
        e = vt[:k].T
        delta = rows - mean
        err = np.linalg.norm(delta @ e @ e.T - delta, axis=1)
        err[chosen] = 0.0
        chosen.append(int(np.argmax(err)))
    return chosen


def test_initial_rows_are_floor_of_quarters():
    assert initial_rows(10) == [0, 2, 5, 7]
    assert initial_rows(2) == [0, 0, 1, 1]
    assert initial_rows(100) == [0, 25, 50, 75]


def test_matches_svd_reference():
    rng = np.random.default_rng(1)
    scales = 1.0 / (1 + np.arange(12)) ** 1.5
    rows = (rng.standard_normal((150, 12)) * scales) @ rng.standard_normal((12, 300))
    rows = (rows + 0.001 * rng.standard_normal(rows.shape)).astype(np.float32)
    rows -= rows.mean(0)
    ours = select_distinct_poses(rows, 25)
    assert ours == _reference(rows, 25)
    assert len(ours) == 4 + 25


def test_known_answer_outliers_first():
    # 40 near-identical poses plus 3 distinct poses along new directions: those are picked first,
    # the largest first.
    rng = np.random.default_rng(2)
    rows = np.zeros((43, 20))
    rows[:40] = 0.001 * rng.standard_normal((40, 20))
    rows[40, 3] = 5.0
    rows[41, 7] = 9.0
    rows[42, 11] = 7.0
    order = rng.permutation(43)
    rows = rows[order].astype(np.float32)
    pos = {orig: new for new, orig in enumerate(order)}
    chosen = select_distinct_poses(rows, 3)
    assert chosen[4:] == [pos[41], pos[42], pos[40]]


def test_every_iteration_adds_a_row_and_duplicates_when_exhausted():
    rows = np.zeros((5, 3), np.float32)
    rows[1] = 1.0
    chosen = select_distinct_poses(rows, 6)
    assert len(chosen) == 10  # no early stop
    assert len(set(chosen)) < len(chosen)  # all errors 0 → argmax 0 repeats


def test_callback_sees_each_iteration():
    seen = []
    select_distinct_poses(np.random.default_rng(0).standard_normal((30, 5)).astype(np.float32), 3, on_iteration=lambda ii, c: seen.append((ii, len(c))))
    assert seen == [(0, 5), (1, 6), (2, 7)]


def test_map_rows_to_frames_skips_empty_shots_and_keeps_duplicates():
    kept = {"a": [0, 5, 9], "b": [], "c": [2, 4]}
    out = map_rows_to_frames([0, 2, 3, 4, 3], ["a", "b", "c"], kept)
    assert out == {"a": [0, 9], "b": [], "c": [2, 2, 4]}


def test_more_iterations_than_rows_matches_reference():
    # once every row is chosen the original's argmax of all-zero errors repeats row 0
    rng = np.random.default_rng(4)
    rows = (rng.standard_normal((12, 3)) @ rng.standard_normal((3, 40))).astype(np.float32)
    rows += 0.01 * rng.standard_normal(rows.shape).astype(np.float32)
    rows -= rows.mean(0)
    ours = select_distinct_poses(rows, 20)
    assert ours == _reference(rows, 20)
    assert sorted(set(ours)) == list(range(12)) and ours[-5:] == [0] * 5
