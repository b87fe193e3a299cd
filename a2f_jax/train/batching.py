"""Which items a global step's batch holds: a fresh permutation per epoch, a pure function of (seed, step)."""

from __future__ import annotations

import numpy as np


def batches_per_epoch(count: int, batch_size: int) -> int:
    return -(-int(count) // int(batch_size))


def batch_ids(seed: int, step: int, count: int, batch_size: int, shuffle: bool = True) -> np.ndarray:
    """Item indices of batch `step`. The last batch of an epoch is filled up from the start of the same
    permutation, so every batch has a static shape (one compiled program) and resuming replays it exactly."""
    epoch, k = divmod(int(step), batches_per_epoch(count, batch_size))
    order = np.random.default_rng([seed, epoch]).permutation(count) if shuffle else np.arange(count)
    ids = order[k * batch_size:(k + 1) * batch_size]
    if len(ids) < batch_size:
        ids = np.concatenate([ids, order[: batch_size - len(ids)]])
    return ids
