"""Random-but-structured actor data for preproc tests and benchmarks (not the embedded demo dataset).

Skin: neutral + low-rank motion (orthonormal basis, decaying amplitudes, smooth trajectories with
held poses, so pruning and PCA both have something to find) + small noise. Tongue: neutral + low-rank
deformation that leaves the rigid vertices untouched, then a per-frame rigid motion, so stabilisation
recovers the deformation exactly. Written shot by shot as `<root>/<shot>/<shot>.npy`.
"""

from __future__ import annotations

import json
import pathlib
from typing import Sequence

import numpy as np

from a2f_jax.data.caches import write_npy


def _orthonormal_basis(rng: np.random.Generator, rank: int, dim: int, zero_rows: np.ndarray | None = None) -> np.ndarray:
    g = rng.standard_normal((dim, rank)).astype(np.float32)
    if zero_rows is not None:
        g[zero_rows] = 0.0
    q, _ = np.linalg.qr(g)
    return np.ascontiguousarray(q.T)  # [rank, dim]


def _trajectory(rng: np.random.Generator, num_frames: int, rank: int, amplitude: float, hold_fraction: float) -> np.ndarray:
    """Smooth coefficient paths [T, rank] with decaying per-component amplitude and held stretches."""
    t = np.arange(num_frames)[:, None]
    freqs = rng.uniform(0.01, 0.08, size=(1, rank))
    phases = rng.uniform(0, 2 * np.pi, size=(1, rank))
    decay = amplitude / (1.0 + np.arange(rank))[None, :] ** 1.2
    path = decay * np.sin(2 * np.pi * freqs * t + phases)
    # Hold poses: copy a frame over a stretch (near-duplicate frames for pruning to remove).
    hold = int(hold_fraction * num_frames)
    if hold > 1:
        start = int(rng.integers(0, max(num_frames - hold, 1)))
        path[start : start + hold] = path[start]
    return path


def write_structured_actor(
    root: str | pathlib.Path,
    shots: Sequence[str] = ("shot_a_neutral", "shot_b_joy", "shot_c_anger"),
    frames_per_shot: int | Sequence[int] = 40,
    num_verts: int = 60,
    num_tongue_verts: int | None = 30,
    rank: int = 6,
    amplitude: float = 20.0,
    noise: float = 1e-3,
    seed: int = 0,
    log_every: int = 0,
) -> dict[str, str]:
    """Write an actor under `root`; returns the dataset paths (config keys → path).

    Motion amplitudes are in the data's units over the whole mesh (the basis is orthonormal), so
    `amplitude` relative to SKIN_PRUNE_SIM_DIST decides how much pruning removes.
    """
    root = pathlib.Path(root)
    rng = np.random.default_rng(seed)
    lengths = [frames_per_shot] * len(shots) if isinstance(frames_per_shot, int) else list(frames_per_shot)
    neutral = (rng.standard_normal((num_verts, 3)) * 10.0).astype(np.float32)
    basis = _orthonormal_basis(rng, rank, num_verts * 3)
    paths = {"SKIN_CACHE_ROOT": str(root / "cache" / "skin"), "AUDIO_ROOT": str(root / "audio")}
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "geom" / "skin").mkdir(parents=True, exist_ok=True)
    np.save(root / "geom" / "skin" / "neutral_pose.npy", neutral)
    paths["SKIN_NEUTRAL_FPATH"] = str(root / "geom" / "skin" / "neutral_pose.npy")
    for shot, n in zip(shots, lengths):
        coeff = _trajectory(rng, n, rank, amplitude, 0.25).astype(np.float32)
        frames = coeff @ basis + neutral.reshape(1, -1)
        frames += rng.standard_normal(frames.shape, dtype=np.float32) * np.float32(noise)
        write_npy(root / "cache" / "skin" / shot / f"{shot}.npy", frames.reshape(n, num_verts, 3))
        del frames

    if num_tongue_verts:
        t_neutral = (rng.standard_normal((num_tongue_verts, 3)) * 2.0).astype(np.float32)
        rigid = np.arange(0, num_tongue_verts, max(num_tongue_verts // 8, 1))[:8]
        zero_rows = np.concatenate([rigid * 3 + c for c in range(3)])
        t_basis = _orthonormal_basis(rng, max(rank // 2, 2), num_tongue_verts * 3, zero_rows)
        (root / "geom" / "tongue").mkdir(parents=True, exist_ok=True)
        np.save(root / "geom" / "tongue" / "neutral_pose.npy", t_neutral)
        (root / "geom" / "tongue" / "rigid_vertex_list.json").write_text(json.dumps(rigid.tolist()))
        paths["TONGUE_CACHE_ROOT"] = str(root / "cache" / "tongue")
        paths["TONGUE_NEUTRAL_FPATH"] = str(root / "geom" / "tongue" / "neutral_pose.npy")
        paths["TONGUE_RIGID_VERTEX_LIST_FPATH"] = str(root / "geom" / "tongue" / "rigid_vertex_list.json")
        for shot, n in zip(shots, lengths):
            coeff = _trajectory(rng, n, t_basis.shape[0], amplitude * 2, 0.1)
            local = (coeff @ t_basis + t_neutral.reshape(1, -1)).reshape(n, num_tongue_verts, 3)
            angles = 0.2 * np.sin(np.linspace(0, 3, n))[:, None] * rng.uniform(0.5, 1.0, size=(1, 3))
            rot = np.stack([_rotation(a) for a in angles])
            trans = np.sin(np.linspace(0, 2, n))[:, None] * rng.uniform(-1, 1, size=(1, 3))
            frames = (local @ rot + trans[:, None, :]).astype(np.float32)
            write_npy(root / "cache" / "tongue" / shot / f"{shot}.npy", frames)
    return paths


def _rotation(angles: np.ndarray) -> np.ndarray:
    """Rotation matrix from xyz Euler angles (radians)."""
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def write_config_dir(
    config_dir: str | pathlib.Path,
    actor: str,
    dataset_paths: dict[str, str],
    output_root: str | pathlib.Path,
    preproc_extra: dict | None = None,
    dataset_extra: dict | None = None,
    emotions: Sequence[str] = ("neutral", "joy", "anger"),
) -> pathlib.Path:
    """A config directory in the original's module style (config_dataset.py + config_preproc.py)."""
    config_dir = pathlib.Path(config_dir)
    config_dir.mkdir(parents=True, exist_ok=True)
    dataset = {key: {actor: value} for key, value in dataset_paths.items()}
    dataset.update({"CACHE_FPS": {actor: 30.0}, "ACTOR_NAMES": [actor], "SHOT_EMOTION_NAMES": list(emotions)})
    dataset.update(dataset_extra or {})
    preproc = {"RUN_NAME": "toy", "PREPROC_OUTPUT_ROOT": str(output_root)}
    preproc.update(preproc_extra or {})
    for name, values in (("dataset", dataset), ("preproc", preproc)):
        text = "".join(f"{key} = {value!r}\n" for key, value in values.items())
        (config_dir / f"config_{name}.py").write_text(text)
    return config_dir
