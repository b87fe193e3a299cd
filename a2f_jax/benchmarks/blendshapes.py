"""Blendshape solve throughput: frames/s for 52 poses × 5,000 vertices (ARKit-sized skin rig)."""

from __future__ import annotations

import numpy as np

from a2f_jax.benchmarks import timeit
from a2f_jax.infer.blendshapes import BlendshapeConfig, BlendshapeData, BlendshapeSolver


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


def solve_52x5000(quick: bool) -> dict:
    poses, verts, frames = (52, 500, 200) if quick else (52, 5000, 3000)
    data, rng = _rig(poses, verts)
    # Claire-like strengths: L1/L2 regularisation, temporal smoothing and left/right symmetry pairs.
    config = BlendshapeConfig.default(poses, l1=0.1, l2=0.1, temporal=0.15, symmetry_strength=1.0, template_bb_size=27.7)
    config = BlendshapeConfig(**{**config.__dict__, "symmetry": np.repeat(np.arange(poses // 2), 2)})
    solver = BlendshapeSolver(data, config)
    # Sparse, smoothly varying weights, like speech animation, plus noise on the geometry.
    t = np.arange(frames)[:, None] / 30.0
    weights = np.clip(np.sin(2 * np.pi * t * rng.uniform(0.2, 2.0, poses) + rng.uniform(0, 6, poses)), 0, 1)
    geometry = solver.evaluate(weights) + rng.normal(scale=0.01, size=(frames, verts, 3)).astype(np.float32)
    timing = timeit(lambda: solver.solve(geometry), repeats=1 if quick else 3)
    return {
        "poses": poses,
        "vertices": verts,
        "frames": frames,
        **timing,
        "frames_per_s": round(frames / timing["best_s"], 1),
    }


BENCHMARKS = {"solve_52x5000": solve_52x5000}
