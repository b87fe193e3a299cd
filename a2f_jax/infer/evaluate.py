"""Evaluate a trained model (run or bundle) on held-out clips against the raw ground-truth caches.

Every metric is reported beside two constant baselines: the mean training pose and the neutral pose.
"""

from __future__ import annotations

import json
import logging
import pathlib
from typing import Any, Callable, Sequence

import numpy as np

from a2f_jax.data.actor import ActorData, ActorSettings, shot_emotion
from a2f_jax.data.audio import load_audio
from a2f_jax.data.caches import find_cache_file, read_cache
from a2f_jax.errors import ConfigError, describe
from a2f_jax.infer import diffusion, regression
from a2f_jax.infer import metrics as M
from a2f_jax.io_utils import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

# predict(audio [N] at 16 kHz, fps, emotion name, num_frames) -> skin vertices [num_frames, V, 3]
PredictFn = Callable[[np.ndarray, float, str, int], np.ndarray]


def _clip_tuples(entries: Sequence[Any]) -> list[tuple]:
    return [tuple(e) for e in entries or []]


def held_out_clips(train_cfg: Any) -> list[tuple]:
    clips = _clip_tuples(train_cfg.VALIDATION_CLIPS)
    if not clips:
        raise ConfigError(describe("config_train", "VALIDATION_CLIPS", "held-out clips to evaluate on", "an empty list"))
    return clips


def training_mean_pose(dataset_cfg: Any, actor: str, shots: Sequence[str]) -> np.ndarray:
    """Mean skin pose over every frame of the training shots (streamed shot by shot)."""

    root = dataset_cfg.SKIN_CACHE_ROOT[actor]
    total, count = None, 0
    for shot in shots:
        frames = read_cache(find_cache_file(root, shot)).astype(np.float64)
        total = frames.sum(axis=0) if total is None else total + frames.sum(axis=0)
        count += len(frames)
    return (total / max(count, 1)).astype(np.float32)


def evaluate(configs: Any, predict: PredictFn, clips: Sequence[tuple] | None = None,
             keep_predictions: bool = False) -> dict:
    """Metrics of `predict` on held-out clips, with the mean-pose and neutral-pose baselines."""

    dcfg, tcfg = configs.dataset, configs.train
    clips = _clip_tuples(clips) if clips is not None else held_out_clips(tcfg)
    actor = clips[0][0]
    data = ActorData.load(ActorSettings.from_configs(dcfg, actor))
    held = {c[1] for c in clips}
    train_shots = sorted({c[1] for c in _clip_tuples(tcfg.CLIPS) if c[1] not in held})
    fps = float(dcfg.CACHE_FPS[actor])
    pairs, names, predictions = [], [], {}
    for actor_c, shot, (first, last), _spk, _lang, rel, offset in clips:
        gt_all = read_cache(find_cache_file(dcfg.SKIN_CACHE_ROOT[actor_c], shot))
        audio = load_audio(pathlib.Path(dcfg.AUDIO_ROOT[actor_c]) / rel, method=tcfg.AUDIO_PREPROC_METHOD)
        if offset:
            shift = int(round(offset / fps * 16000))
            audio = np.concatenate([audio[shift:], np.zeros(max(shift, 0), np.float32)]) if shift > 0 else np.concatenate([np.zeros(-shift, np.float32), audio])
        pred_all = predict(audio, fps, shot_emotion(data.settings.emotions, actor_c, shot), len(gt_all))
        pairs.append((pred_all[first:last + 1], gt_all[first:last + 1]))
        names.append(shot)
        if keep_predictions:
            predictions[shot] = pred_all
    neutral = data.skin_neutral if data.skin_neutral is not None else training_mean_pose(dcfg, actor, train_shots)
    lip_vertices = M.lip_vertices_from_lists(data.lip_dist_verts, data.lip_size_verts)
    if not lip_vertices:
        raise ConfigError(describe("config_dataset", "SKIN_LIP_DIST_VERTEX_LIST_FPATH", "a lip vertex list for lip metrics", "none"))
    upper = M.upper_face_vertices(neutral, lip_vertices)
    table = M.evaluate_with_baselines(
        pairs, train_mean=training_mean_pose(dcfg, actor, train_shots), neutral=neutral,
        lip_vertices=lip_vertices, upper_face=upper, lip_dist_list=data.lip_dist_verts,
    )
    result = {"clips": names, "num_frames": int(sum(len(g) for _, g in pairs)), "metrics": table}
    if keep_predictions:
        result["predictions"] = predictions
    return result


def write_report(result: dict, out_dir: str | pathlib.Path) -> pathlib.Path:

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    serialisable = {k: v for k, v in result.items() if k != "predictions"}
    atomic_write_json(out_dir / "evaluation.json", serialisable)
    atomic_write_text(out_dir / "evaluation.txt", M.format_table(result["metrics"]) + "\n")
    return out_dir / "evaluation.json"


def improvement(result: dict, metric: str = "lip_vertex_error", baseline: str = "mean_pose") -> float:
    """Relative reduction of `metric` against `baseline` (0.3 = 30 % lower error)."""
    m = result["metrics"]
    return float(1.0 - m["model"][metric] / m[baseline][metric])


def dumps(result: dict) -> str:
    return json.dumps({k: v for k, v in result.items() if k != "predictions"}, indent=2)


def predictor(configs: Any, run: str | None = None, bundle: str | None = None) -> PredictFn:
    """predict(audio, fps, emotion, n) -> skin [n, V, 3] from a training run (JAX) or a bundle (onnxruntime)."""
    if (run is None) == (bundle is None):
        raise ConfigError(describe("command line", "--run/--bundle", "exactly one of them", f"run={run}, bundle={bundle}"))
    if configs.network_type == "regression":

        pred = regression.from_run(run) if run else regression.from_bundle(bundle)
        return lambda audio, fps, emo, n: pred.predict(audio, fps=fps, emotion=emo, num_frames=n).skin

    engine = diffusion.from_run(run, configs.inference) if run else diffusion.from_bundle(bundle, configs.inference)
    return diffusion_predict_fn(engine, None if run else "streaming")


def diffusion_predict_fn(engine: Any, mode: str | None = None) -> PredictFn:
    """Predict at the network's frame rate (60 fps) and sample the frames of the cache rate (centres (i+0.5)/fps).
    A bundle's graph is the streaming sampler, so bundles are evaluated in streaming mode."""

    def predict(audio: np.ndarray, fps: float, emotion: str, n: int) -> np.ndarray:
        ratio = engine.fps / fps
        m = int(round(n * ratio))
        skin = engine.predict(audio, emotion=emotion, num_frames=m, mode=mode).skin
        idx = np.minimum(np.floor((np.arange(n) + 0.5) * ratio).astype(np.int64), m - 1)
        return skin[idx]

    return predict


def run_cli(configs: Any, run: str | None, bundle: str | None, out: str | None) -> dict:
    """Evaluate, print the table, write evaluation.json/.txt (default: into the run or bundle folder)."""
    result = evaluate(configs, predictor(configs, run, bundle))
    print(M.format_table(result["metrics"]))
    print(f"lip vertex error vs the mean-pose baseline: {100 * improvement(result):.1f} % lower")
    path = write_report(result, out or (pathlib.Path(run or bundle) / "evaluation"))
    print(f"wrote {path}")
    return result
