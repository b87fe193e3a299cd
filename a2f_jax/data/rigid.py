"""Rigid alignment (Kabsch with reflection fix) used to stabilise the tongue (docs/preproc_artifacts.md, the tongue)."""

from __future__ import annotations

import numpy as np

from a2f_jax.errors import DataError


def rigid_transform(target: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best rotation + translation mapping `source` points onto `target` points, batched.

    target: [R, 3] (the neutral's rigid vertices); source: [..., R, 3] (a frame's rigid vertices).
    Returns (rot [..., 3, 3], trans [..., 3]) such that `source @ rot + trans` ≈ target, i.e. the
    original's (RR, tt) with the aligned frame = frame @ RR + tt. Computed in float64.
    """
    a = np.asarray(target, dtype=np.float64)
    b = np.asarray(source, dtype=np.float64)
    a_mean = a.mean(axis=-2)
    b_mean = b.mean(axis=-2)
    h = np.swapaxes(b - b_mean[..., None, :], -1, -2) @ (a - a_mean)  # [..., 3, 3]
    u, _, vt = np.linalg.svd(h)
    r0 = np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)
    d = np.linalg.det(r0)
    fix = np.zeros(d.shape + (3, 3))
    fix[..., 0, 0] = 1.0
    fix[..., 1, 1] = 1.0
    fix[..., 2, 2] = d
    r = np.swapaxes(vt, -1, -2) @ fix @ np.swapaxes(u, -1, -2)  # maps centred source onto target
    rot = np.swapaxes(r, -1, -2)
    trans = a_mean - (b_mean[..., None, :] @ rot)[..., 0, :]
    return rot, trans


def stabilize(frames: np.ndarray, neutral: np.ndarray, rigid_idx: list[int] | np.ndarray) -> np.ndarray:
    """Remove each frame's rigid motion so its rigid vertices best match the neutral's.

    frames: [T, Vt, 3]; neutral: [Vt, 3]; rigid_idx: vertex indices (at least 3 for a defined
    rotation; the dataset guide asks for 4+). Returns float64 [T, Vt, 3] (the original's dtype; it
    was stored as a float64 Maya cache and re-read as float32).
    """
    idx = np.asarray(rigid_idx, dtype=np.int64).reshape(-1)
    vt = neutral.shape[0]
    if idx.size < 3:
        raise DataError(f"tongue rigid vertex list: expected at least 3 vertex indices, found {idx.size}")
    if idx.min() < 0 or idx.max() >= vt:
        raise DataError(
            f"tongue rigid vertex list: expected indices in [0, {vt}), found range [{idx.min()}, {idx.max()}]"
        )
    if frames.ndim != 3 or frames.shape[1:] != neutral.shape:
        raise DataError(f"tongue cache: expected frames [T, {vt}, 3] matching the neutral, found {frames.shape}")
    rot, trans = rigid_transform(neutral[idx], frames[:, idx, :])
    return frames.astype(np.float64) @ rot + trans[:, None, :]
