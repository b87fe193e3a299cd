"""Near-duplicate pruning (docs/preproc_artifacts.md) against a KD-tree reference of the original's loop."""

import numpy as np
import pytest
from scipy import spatial

from a2f_jax.preproc.prune import prune_similar_poses


def _reference(rows, radius, iterate=True):
    """The original's algorithm, written plainly with scipy's cKDTree."""
    valid = list(range(rows.shape[0]))
    prev, n = 0, len(valid)
    while True:
        if iterate and not (n != prev and len(valid) > 10):
            break
        prev = n
        q = rows[valid]
        tree = spatial.cKDTree(q)
        close = set()
        for i in range(0, q.shape[0], 10):
            close.update(tree.query_ball_point(q[i], r=radius))
        local = sorted(set(range(0, q.shape[0], 10)) | {i for i in range(q.shape[0]) if i not in close})
        valid = [valid[i] for i in local]
        n = len(valid)
        if not iterate:
            break
    return valid


def _walk(t=120, d=30, step=1.0, seed=0):
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.standard_normal((t, d)) * step / np.sqrt(d), axis=0)
    x[40:70] = x[40] + 1e-3 * rng.standard_normal((30, d))  # a held pose
    return (x + 50.0).astype(np.float32)


@pytest.mark.parametrize("radius", [0.5, 2.0, 4.0, 8.0])
@pytest.mark.parametrize("iterate", [True, False])
def test_matches_kdtree_reference(radius, iterate):
    rows = _walk(seed=int(radius * 10))
    assert prune_similar_poses(rows, radius, iterate) == _reference(rows, radius, iterate)


def test_anchors_always_kept_and_duplicates_dropped():
    rows = np.zeros((35, 4), np.float32)  # all identical
    assert prune_similar_poses(rows, 1.0, iterate=False) == [0, 10, 20, 30]
    # iterating: 4 rows left (<= 10) stops the loop
    assert prune_similar_poses(rows, 1.0, iterate=True) == [0, 10, 20, 30]


def test_radius_is_inclusive():
    rows = np.zeros((12, 1), np.float32)
    rows[1, 0] = 4.0  # exactly r from anchor 0 → dropped
    rows[2, 0] = 4.0 + 1e-5  # just outside → kept... unless near another anchor
    rows[3:, 0] = 100.0
    rows[10, 0] = 100.0  # anchor 10 covers rows 3..11
    kept = prune_similar_poses(rows, 4.0, iterate=False)
    assert 1 not in kept and 2 in kept and kept == [0, 2, 10]


def test_ten_or_fewer_frames_untouched_when_iterating():
    rows = np.zeros((10, 3), np.float32)
    assert prune_similar_poses(rows, 1.0, iterate=True) == list(range(10))
    assert prune_similar_poses(np.zeros((0, 3), np.float32), 1.0) == []


def test_large_offsets_do_not_break_the_radius_test():
    # coordinates ~1e3 with frame differences ~1: the Gram formula must not lose the decision
    rng = np.random.default_rng(7)
    rows = (1000.0 + np.cumsum(rng.standard_normal((80, 500)) * 0.1, axis=0)).astype(np.float32)
    for radius in (1.0, 3.0):
        assert prune_similar_poses(rows, radius) == _reference(rows, radius)
