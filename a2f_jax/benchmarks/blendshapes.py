"""Blendshape solve throughput: frames/s for 52 poses × 5,000 vertices (ARKit-sized skin rig)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from a2f_jax.benchmarks import timeit
from a2f_jax.blendshapes import BlendshapeConfig, BlendshapeData, BlendshapeSolver


def _rig(num_poses: int, num_verts: int, seed: int = 0) -> tuple[BlendshapeData, np.random.Generator]:
    """Smooth, overlapping, localised deltas (closer to a real face rig than white noise)."""
    rng = np.random.default_rng(seed)
    neutral = rng.uniform(-8.0, 8.0, size=(num_verts, 3)).astype(np.float32)
    centres = neutral[rng.choice(num_verts, num_poses, replace=False)]
    dist = np.linalg.norm(neutral[None] - centres[:, None], axis=-1)  # [P, V]
    falloff = np.exp(-((dist / 4.0) ** 2))
    direction = rng.normal(size=(num_poses, 1, 3))
    deltas = (falloff[..., None] * direction).astype(np.float32)
    names = tuple(f"pose{i:02d}" for i in range(num_poses))
    return BlendshapeData(names, neutral, deltas, None, source="bench"), rng


def _run(quick: bool, sdk_terms: bool) -> dict:
    poses, verts, frames = (52, 500, 200) if quick else (52, 5000, 3000)
    data, rng = _rig(poses, verts)
    config = BlendshapeConfig.default(poses, template_bb_size=27.7)
    if sdk_terms:
        # Claire-like: L1/L2, temporal smoothing, 26 left/right symmetry pairs, 6 cancel pairs.
        cancel = np.full(poses, -1)
        cancel[40:52] = np.repeat(np.arange(6), 2)
        config = dataclasses.replace(
            config, l1=0.1, l2=0.1, temporal=0.15, symmetry_strength=1.0,
            symmetry=np.repeat(np.arange(poses // 2), 2), cancel=cancel,
        )
    solver = BlendshapeSolver(data, config)
    # Sparse, smoothly varying weights, like speech animation, plus noise on the geometry.
    t = np.arange(frames)[:, None] / 30.0
    weights = np.clip(np.sin(2 * np.pi * t * rng.uniform(0.2, 2.0, poses) + rng.uniform(0, 6, poses)), 0, 1)
    geometry = solver.evaluate(weights) + rng.normal(scale=0.01, size=(frames, verts, 3)).astype(np.float32)
    timing = timeit(lambda: solver.solve(geometry), repeats=1 if quick else 3)
    # CPU time of the process (all threads) tells the cost apart from a busy shared machine.
    cpu0 = time.process_time()
    solver.solve(geometry)
    cpu = time.process_time() - cpu0
    return {
        "poses": poses,
        "vertices": verts,
        "frames": frames,
        **timing,
        "frames_per_s": round(frames / timing["best_s"], 1),
        "cpu_s": round(cpu, 3),
        "frames_per_cpu_s": round(frames / max(cpu, 1e-9), 1),
    }


def solve_52x5000(quick: bool) -> dict:
    """All SDK terms on (L1, L2, temporal, symmetry and cancel pairs)."""
    return _run(quick, sdk_terms=True)


def solve_52x5000_plain(quick: bool) -> dict:
    """Bounded least squares only (no regularisation, no temporal term, no pairs)."""
    return _run(quick, sdk_terms=False)


BENCHMARKS = {"solve_52x5000": solve_52x5000, "solve_52x5000_plain": solve_52x5000_plain}
