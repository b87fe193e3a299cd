"""Skin preprocessing (docs/preproc_artifacts.md): prune, select distinct poses, PCA, coefficients.

Memory: shots are read one at a time. Only the pruned frames (masked, float32) are held for the
selection, and only the ~791 selected full-resolution frames for the PCA; coefficients are computed
shot by shot.

Writes under `<run>/pca/skin/`:
  skin_pca_shapes.npz (shapes_matrix f32 [K, V, 3], shapes_mean f32 [V, 3]),
  skin_pca_coeffs_all.npz (one f32 [T, K] per shot, in shot order),
  intermediate/ skin_pruned_poses_sim.json, skin_cache_all.npy, skin_pruned_poses_pca_final.json,
                skin_pca_shapes_inter.npz (evecs_t, evals_t, mean, variance_threshold).
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import time
from typing import Any

import numpy as np

from a2f_jax.data import caches
from a2f_jax.errors import DataError, describe
from a2f_jax.io_utils import atomic_path, atomic_savez, atomic_write_text
from a2f_jax.preproc import sources
from a2f_jax.preproc.pca import pca_truncated, project
from a2f_jax.preproc.prune import prune_similar_poses
from a2f_jax.preproc.select import map_rows_to_frames, select_distinct_poses

log = logging.getLogger(__name__)


def mesh_mask(num_verts: int, mask_path: str | os.PathLike | None) -> np.ndarray:
    """Boolean [3 * num_verts] over flattened xyz: all True, or True at the listed vertices.

    The file is an .npy array of vertex *indices* (as the original requires); a boolean array is
    rejected because the original would silently treat it as indices 0/1.
    """
    mask = np.zeros(num_verts * 3, dtype=bool)
    if mask_path is None:
        mask[:] = True
        return mask
    idx = sources.load_npy(mask_path, "SKIN_PRUNE_MESH_MASK_FPATH")
    if idx.dtype == bool or not np.issubdtype(idx.dtype, np.integer):
        raise DataError(describe(mask_path, "SKIN_PRUNE_MESH_MASK_FPATH", "an integer array of vertex indices", f"dtype {idx.dtype}"))
    idx = idx.reshape(-1)
    if idx.size == 0:
        raise DataError(describe(mask_path, "SKIN_PRUNE_MESH_MASK_FPATH", "at least one vertex index", "an empty list"))
    if idx.min() < 0 or idx.max() >= num_verts:
        raise DataError(
            describe(mask_path, "SKIN_PRUNE_MESH_MASK_FPATH", f"vertex indices in [0, {num_verts})", f"range [{idx.min()}, {idx.max()}]")
        )
    for c in range(3):
        mask[idx * 3 + c] = True
    log.info(f"Using mesh mask: {num_verts} -> {np.unique(idx).size} vertices")
    return mask


def _dump_frame_json(path: pathlib.Path, frames: dict[str, list[int]]) -> None:
    # The original's json.dump(sort_keys=True, indent=4), no trailing newline.
    atomic_write_text(path, json.dumps(frames, sort_keys=True, indent=4))


def prune_step(
    prune_root: str, prune_shots: list[str], mask: np.ndarray, radius: float, raw_path: pathlib.Path
) -> tuple[dict[str, list[int]], int]:
    """Step 1 per shot; appends the kept masked rows (f32) to `raw_path`. Returns ({shot: frames}, rows)."""
    kept: dict[str, list[int]] = {}
    total_in = total_out = 0
    with open(raw_path, "wb") as raw:
        for si, shot in enumerate(prune_shots):
            frames = sources.read_shot(prune_root, shot)
            if frames.shape[1] * 3 != mask.size:
                raise DataError(
                    describe(caches.find_cache_file(prune_root, shot), f"shot {shot}", f"{mask.size // 3} vertices (as the first prune shot)", f"{frames.shape[1]}")
                )
            rows = frames.reshape(frames.shape[0], -1)[:, mask]
            del frames
            idx = prune_similar_poses(rows, radius, iterate=True)
            kept[shot] = idx
            raw.write(np.ascontiguousarray(rows[idx], dtype=np.float32).tobytes())
            total_in += rows.shape[0]
            total_out += len(idx)
            log.info(f"[{si}/{len(prune_shots)}] Pruned shot \"{shot}\": {rows.shape[0]} -> {len(idx)} frames")
    log.info(f"Pruning: {total_in} -> {total_out} frames")
    return kept, total_out


def _write_npy_from_raw(raw_path: pathlib.Path, out_path: pathlib.Path, shape: tuple[int, int]) -> np.ndarray:
    """Wrap the raw f32 rows as `out_path` (.npy) and load them into memory [M, D]."""
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
            with open(raw_path, "rb") as src:
                shutil.copyfileobj(src, f, 16 << 20)
    raw_path.unlink()
    rows = np.empty(shape, dtype=np.float32)
    with open(out_path, "rb") as f:
        np.lib.format.read_magic(f)
        np.lib.format.read_array_header_1_0(f)
        f.readinto(memoryview(rows).cast("B"))
    return rows


def run_skin(preproc: Any, dataset: Any, actor: str, run_dir: pathlib.Path) -> dict:
    """All four skin steps for one actor; returns a summary (shots, K, frames)."""
    t0 = time.time()
    out_dir = run_dir / "pca" / "skin"
    inter = out_dir / "intermediate"
    inter.mkdir(parents=True, exist_ok=True)

    skin_root = sources.actor_value(dataset, "SKIN_CACHE_ROOT", actor, "dataset", required=True)
    skin_shots = sources.shot_list(sources.actor_value(preproc, "SKIN_CACHE_SHOTS", actor, "preproc"), skin_root, "SKIN_CACHE_ROOT")
    prune_root = sources.actor_value(preproc, "SKIN_PRUNE_CACHE_ROOT", actor, "preproc") or skin_root
    prune_shots = sources.shot_list(
        sources.actor_value(preproc, "SKIN_PRUNE_CACHE_SHOTS", actor, "preproc"), prune_root, "SKIN_PRUNE_CACHE_ROOT"
    )
    # The original took the vertex count from an unsorted glob entry; the first prune shot is stable.
    num_prune_verts = caches.cache_num_verts(caches.find_cache_file(prune_root, prune_shots[0]))
    if prune_root != skin_root:
        log.info(f"Using different resolution for pruning: {num_prune_verts} vertices")
    mask = mesh_mask(num_prune_verts, sources.actor_value(preproc, "SKIN_PRUNE_MESH_MASK_FPATH", actor, "preproc"))

    # 1. near-duplicate pruning
    raw_path = inter / ".skin_cache_all.raw.tmp"
    kept, num_rows = prune_step(prune_root, prune_shots, mask, float(preproc.SKIN_PRUNE_SIM_DIST), raw_path)
    _dump_frame_json(inter / "skin_pruned_poses_sim.json", kept)
    if num_rows == 0:
        raise DataError(describe(prune_root, "skin caches", "at least one frame after pruning", "no frames"))

    # 2. distinct-pose selection on the pruned (masked) rows
    rows = _write_npy_from_raw(raw_path, inter / "skin_cache_all.npy", (num_rows, int(mask.sum())))
    centre = rows.mean(axis=0, dtype=np.float64).astype(np.float32)
    rows -= centre  # the selection is translation invariant; centring keeps float32 dot products accurate
    max_iter = int(preproc.SKIN_SELECT_DISTINCT_MAX_ITER)

    def snapshot(ii: int, chosen: list[int]) -> None:
        # The original wrote these only if its base module's VERBOSE was set (never); we honour the config.
        if preproc.VERBOSE and ii % 100 == 99:
            _dump_frame_json(inter / f"skin_pruned_poses_pca_{ii}.json", map_rows_to_frames(chosen, prune_shots, kept))

    chosen = select_distinct_poses(rows, max_iter, on_iteration=snapshot)
    del rows
    selected = map_rows_to_frames(chosen, prune_shots, kept)
    _dump_frame_json(inter / "skin_pruned_poses_pca_final.json", selected)

    # 3. PCA of the selected full-resolution frames
    neutral_path = sources.actor_value(dataset, "SKIN_NEUTRAL_FPATH", actor, "dataset")
    pose_rows = []
    num_verts = None
    for shot in skin_shots:
        if shot not in selected:
            raise DataError(
                describe(inter / "skin_pruned_poses_pca_final.json", f"shot {shot}", "every SKIN_CACHE_SHOTS shot among the prune shots", "missing")
            )
        frames = sources.read_shot(skin_root, shot)
        if num_verts is None:
            num_verts = frames.shape[1]
        elif frames.shape[1] != num_verts:
            raise DataError(describe(caches.find_cache_file(skin_root, shot), f"shot {shot}", f"{num_verts} vertices", f"{frames.shape[1]}"))
        idx = [i for i in selected[shot] if i < frames.shape[0]]  # prune caches may be longer
        if len(idx) < len(selected[shot]):
            log.info(f"Shot {shot}: dropped {len(selected[shot]) - len(idx)} selected frames beyond its {frames.shape[0]} frames")
        pose_rows.append(frames.reshape(frames.shape[0], -1)[idx])
        del frames
    poses = np.concatenate(pose_rows, axis=0).astype(np.float32, copy=False)
    del pose_rows
    custom_mean = None
    if neutral_path is not None:
        custom_mean = sources.load_pose(neutral_path, num_verts, "SKIN_NEUTRAL_FPATH").reshape(-1)
    threshold = float(preproc.SKIN_PCA_VARIANCE_THRESHOLD)
    force = sources.actor_value(preproc, "SKIN_FORCE_COMPONENTS", actor, "preproc")
    log.info(f"Computing PCA for a matrix with shape {poses.shape}...")
    evecs, evals, mean = pca_truncated(poses, threshold, custom_mean, force, what="skin PCA")
    del poses
    evecs_t = evecs.astype(np.float32)
    mean32 = mean.astype(np.float32)
    k = evecs_t.shape[1]
    log.info(f"Truncated PCA Decomp: Based on [var = {threshold}], # of components = {k}{' (forced)' if force is not None else ''}")
    atomic_savez(
        inter / "skin_pca_shapes_inter.npz",
        evecs_t=evecs_t,
        evals_t=evals.astype(np.float32),
        mean=mean32,
        variance_threshold=np.float64(threshold),
    )
    atomic_savez(out_dir / "skin_pca_shapes.npz", shapes_matrix=evecs_t.T.reshape(k, -1, 3), shapes_mean=mean32.reshape(-1, 3))

    # 4. coefficients of every frame of every shot
    coeffs: dict[str, np.ndarray] = {}
    for shot in skin_shots:
        frames = sources.read_shot(skin_root, shot)
        coeffs[shot] = project(frames.reshape(frames.shape[0], -1), evecs_t, mean32)
        del frames
    sources.save_npz_dict(out_dir / "skin_pca_coeffs_all.npz", coeffs)
    elapsed = time.time() - t0
    log.info(f"Skin preprocessing: {len(skin_shots)} shots, K = {k}, {time.time() - t0:.2f} sec; saved to {out_dir}")
    return {"shots": skin_shots, "num_components": k, "num_verts": num_verts, "pruned_rows": num_rows, "processing_time": elapsed}
