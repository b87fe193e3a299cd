"""Deploy step of preprocessing (docs/preproc_artifacts.md): `<run>/deploy/`.

network_data.npz   f32 arrays, keys in NETWORK_DATA_KEYS order
data_info.json     sizes, then translate_<ch>/scale_<ch> per TRANSFORM_SCALE channel
mean_geometry.npy  float64 [3V + 3Vt + 3N + 2 * num_angles_eye]
shots.json         one [actor, shot, T, fps, emotion] row per skin shot
clips_template.py  a CLIPS list to paste into config_train.py
bs_{skin,tongue}[_config]_<actor>.*   copies of the blendshape files, when configured
"""

from __future__ import annotations

import glob
import logging
import os
import pathlib
import shutil
from typing import Any, Mapping

import numpy as np

from a2f_jax.data import actor as actor_lib
from a2f_jax.errors import ConfigError, DataError, describe
from a2f_jax.io_utils import atomic_path, atomic_save_npy, atomic_savez, atomic_write_text
from a2f_jax.preproc import sources
from a2f_jax.preproc.jsonfmt import dumps_pretty

log = logging.getLogger(__name__)

NETWORK_DATA_KEYS = (
    "shapes_matrix_skin",
    "shapes_mean_skin",
    "neutral_skin",
    "lip_open_pose_delta",
    "eye_close_pose_delta",
    "shapes_matrix_tongue",
    "shapes_mean_tongue",
    "neutral_tongue",
    "neutral_jaw",
    "blink_keys",
    "saccade_rot_matrix",
)
# Channel → the network_data array its translate/scale is computed from.
CHANNEL_REFERENCE = {"skin": "shapes_mean_skin", "tongue": "shapes_mean_tongue", "jaw": "neutral_jaw", "eye": "saccade_rot_matrix"}
DEFAULT_TRANSFORM_SCALE = {"skin": 1, "tongue": 1, "jaw": 1, "eye": 1}
CLIPS_SEPARATOR = "    " + "#" * 116


def shot_emotion(dataset: Any, actor: str, shot: str) -> str:
    """The shot's emotion by config_dataset's SHOT_EMOTION_MAP / SHOT_EMOTION_NAMES (`a2f_jax.data.actor.shot_emotion`)."""
    return actor_lib.shot_emotion(actor_lib.ShotEmotions.from_configs(dataset), actor, shot)


def transform_params(reference: np.ndarray, scale_value: float) -> tuple[list[float], float]:
    """translate = column mean (in the reference's dtype); scale = max|ref - translate| / scale_value (1 if 0).

    Under numpy 2 the original's scale would be a float32 (not JSON-serialisable by its printer); we
    compute float64(max_abs) / scale_value and store a Python float, as it came out on numpy 1.26.
    """
    translate = reference.mean(axis=0)
    max_abs = np.abs(reference - translate).max()
    scale = 1.0 if max_abs == 0 else float(np.float64(max_abs) / float(scale_value))
    return [float(v) for v in translate.tolist()], scale


def transform_channels(dataset: Any, modifiers: Mapping | None, actor: str) -> list[tuple[str, float]]:
    """(channel, scale value) in the user's order. ConfigDict sorts keys, so the order comes from the
    user's modifier when present, else the canonical skin, tongue, jaw, eye order."""
    resolved = sources.actor_value(dataset, "TRANSFORM_SCALE", actor, "dataset")
    if resolved is None:
        return list(DEFAULT_TRANSFORM_SCALE.items())
    resolved = dict(resolved)
    order = list(((modifiers or {}).get("TRANSFORM_SCALE") or {}).get(actor) or {})
    if sorted(order) != sorted(resolved):
        order = [c for c in CHANNEL_REFERENCE if c in resolved] + sorted(c for c in resolved if c not in CHANNEL_REFERENCE)
    for ch in order:
        if ch not in CHANNEL_REFERENCE:
            raise ConfigError(f"dataset config [TRANSFORM_SCALE][{actor}]: expected channels of {list(CHANNEL_REFERENCE)}, found {ch!r}")
    for ch in ("skin", "tongue"):
        if ch not in order:
            raise ConfigError(f"dataset config [TRANSFORM_SCALE][{actor}]: expected a {ch!r} channel (the mean geometry needs it), found {order}")
    return [(ch, resolved[ch]) for ch in order]


def _optional_array(dataset: Any, key: str, actor: str, default_shape: tuple[int, ...]) -> np.ndarray:
    path = sources.actor_value(dataset, key, actor, "dataset")
    if path is None:
        return np.zeros(default_shape, dtype=np.float32)
    return sources.load_npy(path, key)


def _check_shape(array: np.ndarray, shape: tuple, key: str, path: Any) -> None:
    if array.shape != shape:
        raise DataError(describe(path, key, f"shape {shape}", f"shape {array.shape}"))


def build_clips_template(actor: str, shot_lengths: Mapping[str, int], audio_root: str | None) -> str:
    def line(shot: str, n: int, speaker: str, rel: str) -> str:
        return f'    ("{actor}", "{shot}", (0, {n - 1}), "{speaker}", "en", "{rel}", 0),  # Shot: [0, {n - 1}]\n'

    text = "CLIPS = [\n"
    for shot, n in shot_lengths.items():
        text += line(shot, n, actor, f"{shot}.wav")
    voices: dict[str, list[str]] = {}
    if audio_root is not None:
        # Sorted for reproducibility (the original used an unsorted glob).
        for path in sorted(glob.glob(os.path.join(audio_root, "aug", "*", "*.wav"))):
            voice_dir, fname = os.path.split(path)
            voices.setdefault(os.path.basename(voice_dir), []).append(fname)
    for voice, files in voices.items():
        block = "".join(line(shot, n, f"aug_{voice}", f"aug/{voice}/{f}") for shot, n in shot_lengths.items() for f in files if shot in f)
        if block:
            text += CLIPS_SEPARATOR + "\n" + block
    return text + "]"


def build_shots_json(actor: str, shot_lengths: Mapping[str, int], fps: Any, emotions: Mapping[str, str]) -> str:
    rows = [f'    ["{actor}", "{shot}", {n}, {fps}, "{emotions[shot]}"]' for shot, n in shot_lengths.items()]
    return "[\n" + ",\n".join(rows) + ("\n" if rows else "") + "]\n"


def run_deploy(preproc: Any, dataset: Any, actor: str, run_dir: pathlib.Path, dataset_modifiers: Mapping | None = None) -> dict:
    deploy_dir = run_dir / "deploy"
    deploy_dir.mkdir(parents=True, exist_ok=True)
    with np.load(run_dir / "pca" / "skin" / "skin_pca_shapes.npz") as f:
        skin_matrix, skin_mean = f["shapes_matrix"], f["shapes_mean"]
    with np.load(run_dir / "pca" / "tongue" / "tongue_pca_shapes.npz") as f:
        tongue_matrix, tongue_mean = f["shapes_matrix"], f["shapes_mean"]
    with np.load(run_dir / "pca" / "skin" / "skin_pca_coeffs_all.npz") as f:
        shot_lengths = {shot: int(f[shot].shape[0]) for shot in f.files}

    v = skin_mean.shape[0]
    lip_open = _optional_array(dataset, "SKIN_LIP_OPEN_POSE_DELTA_FPATH", actor, skin_mean.shape)
    eye_close = _optional_array(dataset, "SKIN_EYE_CLOSE_POSE_DELTA_FPATH", actor, skin_mean.shape)
    _check_shape(lip_open, (v, 3), "SKIN_LIP_OPEN_POSE_DELTA_FPATH", sources.actor_value(dataset, "SKIN_LIP_OPEN_POSE_DELTA_FPATH", actor, "dataset"))
    _check_shape(eye_close, (v, 3), "SKIN_EYE_CLOSE_POSE_DELTA_FPATH", sources.actor_value(dataset, "SKIN_EYE_CLOSE_POSE_DELTA_FPATH", actor, "dataset"))
    jaw = _optional_array(dataset, "JAW_KEYPOINTS_NEUTRAL_FPATH", actor, tuple(preproc.DEFAULT_JAW_KEYPOINTS_SHAPE))
    blink = _optional_array(dataset, "EYE_BLINK_KEYS_FPATH", actor, tuple(preproc.DEFAULT_EYE_BLINK_KEYS_SHAPE))
    saccade = _optional_array(dataset, "EYE_SACCADE_ROTATIONS_FPATH", actor, tuple(preproc.DEFAULT_EYE_SACCADE_ROT_SHAPE))
    if jaw.ndim != 2 or jaw.shape[1] != 3:
        raise DataError(describe(sources.actor_value(dataset, "JAW_KEYPOINTS_NEUTRAL_FPATH", actor, "dataset"), "JAW_KEYPOINTS_NEUTRAL_FPATH", "shape [N, 3]", f"shape {jaw.shape}"))
    if saccade.ndim != 2:
        raise DataError(describe(sources.actor_value(dataset, "EYE_SACCADE_ROTATIONS_FPATH", actor, "dataset"), "EYE_SACCADE_ROTATIONS_FPATH", "shape [n, 2]", f"shape {saccade.shape}"))

    # Inference neutrals replace the means in the deploy outputs only, never in the PCA npz.
    skin_inf = sources.actor_value(dataset, "SKIN_NEUTRAL_INFERENCE_FPATH", actor, "dataset")
    if skin_inf is not None:
        skin_mean = sources.load_pose(skin_inf, v, "SKIN_NEUTRAL_INFERENCE_FPATH")
    tongue_inf = sources.actor_value(dataset, "TONGUE_NEUTRAL_INFERENCE_FPATH", actor, "dataset")
    if tongue_inf is not None:
        tongue_mean = sources.load_pose(tongue_inf, tongue_mean.shape[0], "TONGUE_NEUTRAL_INFERENCE_FPATH")

    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    skin_mean, tongue_mean = f32(skin_mean), f32(tongue_mean)
    values = [skin_matrix, skin_mean, skin_mean, lip_open, eye_close, tongue_matrix, tongue_mean, tongue_mean, jaw, blink, saccade]
    network_data = {key: f32(a) for key, a in zip(NETWORK_DATA_KEYS, values)}

    data_info: dict[str, Any] = {
        "num_shapes_skin": int(skin_matrix.shape[0]),
        "num_verts_skin": int(skin_matrix.shape[1]),
        "num_shapes_tongue": int(tongue_matrix.shape[0]),
        "num_verts_tongue": int(tongue_matrix.shape[1]),
        "num_keypoints_jaw": int(jaw.shape[0]),
        "num_angles_eye": int(saccade.shape[1]),
    }
    for channel, scale_value in transform_channels(dataset, dataset_modifiers, actor):
        translate, scale = transform_params(network_data[CHANNEL_REFERENCE[channel]], scale_value)
        data_info[f"translate_{channel}"] = translate
        data_info[f"scale_{channel}"] = scale

    mean_geometry = np.concatenate(
        [
            ((skin_mean.reshape(-1, 3) - np.asarray(data_info["translate_skin"])) / data_info["scale_skin"]).reshape(-1),
            ((tongue_mean.reshape(-1, 3) - np.asarray(data_info["translate_tongue"])) / data_info["scale_tongue"]).reshape(-1),
            np.zeros(jaw.shape[0] * jaw.shape[1] + saccade.shape[1] * 2),
        ]
    ).astype(np.float64)

    fps = sources.actor_value(dataset, "CACHE_FPS", actor, "dataset", required=True)
    emotions = {shot: shot_emotion(dataset, actor, shot) for shot in shot_lengths}
    audio_root = sources.actor_value(dataset, "AUDIO_ROOT", actor, "dataset", required=True)
    clips = build_clips_template(actor, shot_lengths, audio_root)

    copied = []
    for part in ("skin", "tongue"):
        data_path = sources.actor_value(dataset, f"BLENDSHAPE_{part.upper()}_FPATH", actor, "dataset")
        cfg_path = sources.actor_value(dataset, f"BLENDSHAPE_{part.upper()}_CONFIG_FPATH", actor, "dataset")
        if data_path is None or cfg_path is None:
            log.info(f"No blendshape {part} data configured")
            continue
        for src, dst in ((data_path, f"bs_{part}_{actor}.npz"), (cfg_path, f"bs_{part}_config_{actor}.json")):
            if not os.path.isfile(src):
                raise DataError(describe(src, f"BLENDSHAPE_{part.upper()}{'_CONFIG' if dst.endswith('.json') else ''}_FPATH", "an existing file", "no such file"))
            with atomic_path(deploy_dir / dst) as tmp:
                shutil.copyfile(src, tmp)
            copied.append(dst)

    atomic_savez(deploy_dir / "network_data.npz", **network_data)
    atomic_write_text(deploy_dir / "data_info.json", dumps_pretty(data_info))
    atomic_save_npy(deploy_dir / "mean_geometry.npy", mean_geometry)
    atomic_write_text(deploy_dir / "shots.json", build_shots_json(actor, shot_lengths, fps, emotions))
    atomic_write_text(deploy_dir / "clips_template.py", clips + "\n")
    print(clips)  # as the original: the template without a log prefix, ready to paste
    for k, a in network_data.items():
        log.info(f"{k:>20} :: {a.shape} :: {a.dtype}")
    return {"data_info": data_info, "blendshapes": copied, "deploy_dir": str(deploy_dir)}
