"""Tongue preprocessing (docs/preproc_artifacts.md "Tongue"): rigid stabilisation, single-pass pruning, PCA, coefficients.

Writes under `<run>/pca/tongue/`:
  tongue_pca_shapes.npz (shapes_matrix f32 [K, Vt, 3], shapes_mean f32 [Vt, 3]),
  tongue_pca_coeffs_all.npz (one f32 [T, K] per tongue shot),
  intermediate/ tongue_cache_stab/<shot>/<shot>.{xml,mc} (float64 Maya caches),
                tongue_pca_shapes_inter.npz (evecs, evals, mean).
Without tongue data: zero shapes of DEFAULT_TONGUE_PCA_SHAPE and a single `placeholder` coefficient
array [1, K] (an empty `intermediate/`).
"""

from __future__ import annotations

import logging
import os
import pathlib
import time
from typing import Any

import numpy as np

from a2f_jax.data import caches
from a2f_jax.data.rigid import stabilize
from a2f_jax.errors import DataError, describe
from a2f_jax.io_utils import atomic_savez
from a2f_jax.preproc import sources
from a2f_jax.preproc.pca import pca_truncated, project
from a2f_jax.preproc.prune import prune_similar_poses

log = logging.getLogger(__name__)

TONGUE_PRUNE_DIST = 10.0  # hard-coded in the original


def write_default_tongue(out_dir: pathlib.Path, default_shape: Any) -> None:
    shape = tuple(int(n) for n in default_shape)
    if len(shape) != 3 or shape[2] != 3:
        raise DataError(f"preproc config [DEFAULT_TONGUE_PCA_SHAPE]: expected (K, Vt, 3), found {default_shape}")
    atomic_savez(
        out_dir / "tongue_pca_shapes.npz",
        shapes_matrix=np.zeros(shape, dtype=np.float32),
        shapes_mean=np.zeros(shape[1:], dtype=np.float32),
    )
    atomic_savez(out_dir / "tongue_pca_coeffs_all.npz", placeholder=np.zeros((1, shape[0]), dtype=np.float32))


def run_tongue(preproc: Any, dataset: Any, actor: str, run_dir: pathlib.Path) -> dict:
    t0 = time.time()
    out_dir = run_dir / "pca" / "tongue"
    inter = out_dir / "intermediate"
    inter.mkdir(parents=True, exist_ok=True)

    root = sources.actor_value(dataset, "TONGUE_CACHE_ROOT", actor, "dataset")
    neutral_path = sources.actor_value(dataset, "TONGUE_NEUTRAL_FPATH", actor, "dataset")
    rigid_path = sources.actor_value(dataset, "TONGUE_RIGID_VERTEX_LIST_FPATH", actor, "dataset")
    if any(p is None or not os.path.exists(p) for p in (root, neutral_path, rigid_path)):
        log.info(f"Tongue data not available for actor '{actor}': writing default tongue artifacts")
        write_default_tongue(out_dir, preproc.DEFAULT_TONGUE_PCA_SHAPE)
        return {"skipped": True, "shots": [], "num_components": int(preproc.DEFAULT_TONGUE_PCA_SHAPE[0])}

    shots = sources.shot_list(sources.actor_value(preproc, "TONGUE_CACHE_SHOTS", actor, "preproc"), root, "TONGUE_CACHE_ROOT")
    neutral = sources.load_pose(neutral_path, None, "TONGUE_NEUTRAL_FPATH")
    rigid_idx = sources.load_index_list(rigid_path, "TONGUE_RIGID_VERTEX_LIST_FPATH")
    fps = float(sources.actor_value(dataset, "CACHE_FPS", actor, "dataset", required=True))
    stab_root = inter / "tongue_cache_stab"

    # 1. stabilise (float64, stored as DVCA Maya caches) and 2. prune each shot; the float32 rows
    # below equal what re-reading the DVCA cache gives (f64 → f32 rounding).
    kept_rows = []
    for si, shot in enumerate(shots):
        frames = sources.read_shot(root, shot)
        if frames.shape[1:] != neutral.shape:
            raise DataError(describe(caches.find_cache_file(root, shot), f"shot {shot}", f"[T, {neutral.shape[0]}, 3] like the tongue neutral", f"{frames.shape}"))
        stab = stabilize(frames, neutral, rigid_idx)
        del frames
        caches.write_maya_cache(stab_root / shot / f"{shot}.xml", stab, fps, dtype=np.float64)
        flat = stab.astype(np.float32).reshape(stab.shape[0], -1)
        del stab
        idx = prune_similar_poses(flat, TONGUE_PRUNE_DIST, iterate=False)
        kept_rows.append(flat[idx])
        log.info(f"[{si}/{len(shots)}] Tongue shot \"{shot}\": stabilized, pruned {flat.shape[0]} -> {len(idx)} frames")
    poses = np.concatenate(kept_rows, axis=0)
    del kept_rows

    # 3. PCA with the neutral as mean
    threshold = float(preproc.TONGUE_PCA_VARIANCE_THRESHOLD)
    force = sources.actor_value(preproc, "TONGUE_FORCE_COMPONENTS", actor, "preproc")
    log.info(f"Computing PCA for a matrix with shape {poses.shape}...")
    evecs, evals, mean = pca_truncated(poses, threshold, neutral.reshape(-1), force, what="tongue PCA")
    del poses
    evecs32 = evecs.astype(np.float32)
    mean32 = mean.astype(np.float32)
    k = evecs32.shape[1]
    log.info(f"Truncated PCA Decomp: Based on [var = {threshold}], # of components = {k}{' (forced)' if force is not None else ''}")
    atomic_savez(inter / "tongue_pca_shapes_inter.npz", evecs=evecs32, evals=evals.astype(np.float32), mean=mean32)
    atomic_savez(out_dir / "tongue_pca_shapes.npz", shapes_matrix=evecs32.T.reshape(k, -1, 3), shapes_mean=mean32.reshape(-1, 3))

    # 4. coefficients of the stabilised frames, re-read from the written caches
    coeffs = {}
    for shot in shots:
        stab32 = sources.read_shot(stab_root, shot)
        coeffs[shot] = project(stab32.reshape(stab32.shape[0], -1), evecs32, mean32)
    sources.save_npz_dict(out_dir / "tongue_pca_coeffs_all.npz", coeffs)
    elapsed = time.time() - t0
    log.info(f"Tongue preprocessing: {len(shots)} shots, K = {k}, {elapsed:.2f} sec; saved to {out_dir}")
    return {"skipped": False, "shots": shots, "num_components": k, "processing_time": elapsed}
