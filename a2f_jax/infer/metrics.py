"""Evaluation metrics of speech-driven face animation, and the two baselines every model must beat.

Shapes: frames [T, V, 3] (Y up, dataset units), coefficients [T, K]. Lip vertex error is, per frame,
the largest L2 error over the lip vertices, averaged over frames; FDD compares the temporal standard
deviation of upper-face motion between prediction and ground truth.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np


def lip_vertex_error(pred: np.ndarray, gt: np.ndarray, lip_vertices: Sequence[int]) -> float:
    idx = np.asarray(lip_vertices, np.int64)
    err = np.linalg.norm(pred[:, idx] - gt[:, idx], axis=-1)  # [T, n]
    return float(err.max(axis=1).mean())


def mean_vertex_error(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(np.linalg.norm(pred - gt, axis=-1).mean())


def lip_distance(frames: np.ndarray, lip_dist_list: Mapping[str, Sequence[int]]) -> np.ndarray:
    """Mean over the lip pairs of y(upper) − y(lower), per frame: [T]."""
    up, lo = np.asarray(lip_dist_list["upper"]), np.asarray(lip_dist_list["lower"])
    return (frames[:, up, 1] - frames[:, lo, 1]).mean(axis=1)


def lip_distance_mae(pred: np.ndarray, gt: np.ndarray, lip_dist_list: Mapping[str, Sequence[int]]) -> float:
    return float(np.abs(lip_distance(pred, lip_dist_list) - lip_distance(gt, lip_dist_list)).mean())


def lip_distance_correlation(pred: np.ndarray, gt: np.ndarray, lip_dist_list: Mapping[str, Sequence[int]]) -> float:
    a, b = lip_distance(pred, lip_dist_list), lip_distance(gt, lip_dist_list)
    if np.allclose(a, a[0], rtol=0, atol=1e-7) or np.allclose(b, b[0], rtol=0, atol=1e-7):
        return 0.0  # a constant curve has no correlation (the baselines)
    return float(np.corrcoef(a, b)[0, 1])


def fdd(pred: np.ndarray, gt: np.ndarray, upper_face_vertices: Sequence[int], neutral: np.ndarray | None = None) -> float:
    """Upper-face dynamics deviation: mean over upper-face vertices of |std_t(‖motion_gt‖) − std_t(‖motion_pred‖)|."""
    idx = np.asarray(upper_face_vertices, np.int64)
    ref = neutral[idx] if neutral is not None else gt[:, idx].mean(axis=0)
    mp = np.linalg.norm(pred[:, idx] - ref, axis=-1).std(axis=0)
    mg = np.linalg.norm(gt[:, idx] - ref, axis=-1).std(axis=0)
    return float(np.abs(mg - mp).mean())


def r2(pred: np.ndarray, gt: np.ndarray, weighting: str = "variance_weighted") -> float:
    """R² over columns: "variance_weighted" (1 − SSE/SST, as the original's logged r2) or "uniform"."""
    pred, gt = pred.reshape(-1, pred.shape[-1]), gt.reshape(-1, gt.shape[-1])
    sse = ((pred - gt) ** 2).sum(axis=0)
    sst = ((gt - gt.mean(axis=0)) ** 2).sum(axis=0)
    if weighting == "uniform":
        ok = sst > 0
        return float(np.mean(1 - sse[ok] / sst[ok])) if ok.any() else 0.0
    return float(1 - sse.sum() / max(sst.sum(), 1e-12))


def upper_face_vertices(neutral: np.ndarray, lip_vertices: Sequence[int] | None = None, fraction: float = 0.4) -> np.ndarray:
    """Vertices in the top `fraction` of the face's height (Y up) — used when no explicit list exists."""
    y = neutral[:, 1]
    thr = y.max() - fraction * (y.max() - y.min())
    idx = np.nonzero(y >= thr)[0]
    if lip_vertices is not None:
        idx = np.setdiff1d(idx, np.asarray(lip_vertices))
    return idx


def lip_vertices_from_lists(lip_dist_list: Mapping[str, Any] | None, lip_size_list: Mapping[str, Any] | None = None) -> list[int]:
    out: set[int] = set()
    if lip_dist_list:
        out.update(int(i) for i in lip_dist_list.get("upper", []))
        out.update(int(i) for i in lip_dist_list.get("lower", []))
    if lip_size_list:
        for part in lip_size_list.values():
            for v in part.values():
                out.update(int(i) for i in v)
    return sorted(out)


def evaluate_clip(pred: np.ndarray, gt: np.ndarray, *, lip_vertices: Sequence[int], upper_face: Sequence[int],
                  lip_dist_list: Mapping[str, Sequence[int]] | None = None, neutral: np.ndarray | None = None,
                  pred_coeffs: np.ndarray | None = None, gt_coeffs: np.ndarray | None = None) -> dict[str, float]:
    out = {
        "lip_vertex_error": lip_vertex_error(pred, gt, lip_vertices),
        "mean_vertex_error": mean_vertex_error(pred, gt),
        "fdd": fdd(pred, gt, upper_face, neutral),
    }
    if lip_dist_list is not None:
        out["lip_dist_mae"] = lip_distance_mae(pred, gt, lip_dist_list)
        out["lip_dist_corr"] = lip_distance_correlation(pred, gt, lip_dist_list)
    if pred_coeffs is not None and gt_coeffs is not None:
        out["r2_coeffs"] = r2(pred_coeffs, gt_coeffs)
    return out


def evaluate_with_baselines(clips: Sequence[tuple[np.ndarray, np.ndarray]], *, train_mean: np.ndarray, neutral: np.ndarray,
                            **kw: Any) -> dict[str, dict[str, float]]:
    """Frame-weighted averages over clips of (pred, gt) for the model and the two constant-pose baselines."""
    rows: dict[str, list[tuple[int, dict]]] = {"model": [], "mean_pose": [], "neutral_pose": []}
    kw_base = {k: v for k, v in kw.items() if k not in ("pred_coeffs", "gt_coeffs")}
    for pred, gt in clips:
        n = len(gt)
        rows["model"].append((n, evaluate_clip(pred, gt, neutral=neutral, **kw_base)))
        rows["mean_pose"].append((n, evaluate_clip(np.repeat(train_mean[None], n, 0), gt, neutral=neutral, **kw_base)))
        rows["neutral_pose"].append((n, evaluate_clip(np.repeat(neutral[None], n, 0), gt, neutral=neutral, **kw_base)))
    out = {}
    for name, items in rows.items():
        total = sum(n for n, _ in items)
        out[name] = {k: float(sum(n * m[k] for n, m in items) / total) for k in items[0][1]}
    return out


def format_table(results: Mapping[str, Mapping[str, float]]) -> str:
    names = list(results)
    metrics = list(next(iter(results.values())))
    lines = ["metric".ljust(20) + "".join(n.rjust(15) for n in names)]
    for m in metrics:
        lines.append(m.ljust(20) + "".join(f"{results[n][m]:15.5f}" for n in names))
    return "\n".join(lines)
