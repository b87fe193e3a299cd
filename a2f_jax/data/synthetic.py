"""The built-in synthetic dataset: speech-like audio that determines a procedural face.

    python -m a2f_jax.data.synthetic "$A2F_DATASETS_ROOT/a2f-synthetic" [--seed 0] [--min]

Writes the original's layout under `<out>/data/<actor>/` (docs/dataset_format.md):
  audio/<shot>.wav                      16 kHz, 16-bit mono
  cache/skin/<shot>/<shot>.npy          (one shot as Maya .xml/.mc, one as .pc2, to exercise the readers)
  cache/tongue/<shot>/<shot>.npy        (one shot as a float64 Maya cache)
  geom/skin/ neutral_pose.npy lip_open_pose_delta.npy eye_close_pose_delta.npy
             lip_dist_vertex_list.json lip_size_vertex_list.json eye_dist_vertex_list.json
  geom/tongue/ neutral_pose.npy rigid_vertex_list.json
  xform/ jaw_keypoints_neutral.npy jaw_keypoints_cache_all.npz eye_rotations_all.npz
         eye_blink_keys.npy eye_saccade_rotations.npy
  bs_data/ bs_skin.npz bs_skin_config.json bs_tongue.npz bs_tongue_config.json
and, outside the original layout, `<out>/ground_truth/<actor>/` with the blendshape weights, the
phoneme timeline and `info.json` (seed, shots, noise level, residual of the blendshape model).
`minimal=True` writes only audio and skin caches (plus ground_truth/info.json).

The skin is exactly `neutral + weights @ blendshapes + N(0, SKIN_NOISE_STD)` with weights in
[0, 1], so a blendshape solver can reproduce it up to that noise (the residual is in info.json).
Files are byte-identical for the same seed.
"""

from __future__ import annotations

import argparse
import io
import json
import pathlib
import shutil
import sys
import time
import zipfile
from typing import Sequence

import numpy as np
import scipy.ndimage
import soundfile

from a2f_jax.data import caches
from a2f_jax.data import synthetic_face as face_mod
from a2f_jax.data import synthetic_speech as speech
from a2f_jax.errors import DataError, describe
from a2f_jax.io_utils import atomic_dir, atomic_path

FPS = 30.0
SAMPLERATE = speech.SAMPLERATE
SKIN_NOISE_STD = 0.003  # cm, i.i.d. per coordinate: the blendshape model's irreducible residual
EMOTIONS = ("neutral", "joy", "anger", "sadness")
EMOTION_POSES = {
    "neutral": {},
    "joy": {"mouthSmileLeft": 0.6, "mouthSmileRight": 0.6, "cheekSquintLeft": 0.4, "cheekSquintRight": 0.4, "browInnerUp": 0.1},
    "anger": {"browDownLeft": 0.7, "browDownRight": 0.7, "mouthPressLeft": 0.25, "mouthPressRight": 0.25},
    "sadness": {"browInnerUp": 0.7, "mouthFrownLeft": 0.5, "mouthFrownRight": 0.5},
}
# (shot, emotion): blocks of four per emotion, then more neutral speech.
SHOTS = tuple(
    (f"s{i:02d}_{emo}", emo)
    for i, emo in enumerate(["neutral"] * 4 + ["joy"] * 4 + ["anger"] * 4 + ["sadness"] * 4 + ["neutral"] * 6, start=1)
)
SKIN_FORMAT = {"s03_neutral": ".xml", "s06_joy": ".pc2"}  # the rest are .npy
TONGUE_FORMAT = {"s10_anger": ".xml"}
INFO_NAME = "info.json"
DURATION_RANGE = (3.0, 7.0)  # seconds


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed .npz with fixed zip timestamps (np.savez stamps the current time)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def _write_npz(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(_npz_bytes(arrays))


def _write_npy(path: pathlib.Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def _write_json(path: pathlib.Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=4) + "\n")


def _write_wav(path: pathlib.Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        soundfile.write(tmp, audio, SAMPLERATE, subtype="PCM_16", format="WAV")


# ----------------------------------------------------------------------------------------------
# Animation curves from the phoneme timeline
# ----------------------------------------------------------------------------------------------


def control_curves(segments: Sequence[speech.Segment], num_frames: int, fps: float = FPS) -> dict[str, np.ndarray]:
    """Speech controls at frame centres (i + 0.5) / fps, co-articulated by Gaussian smoothing.

    Lip closure is `jaw * b`, with b the (sharply smoothed) bilabial indicator, so the lips meet at
    m/b/p whatever the jaw does.
    """
    rate = 240.0
    duration = num_frames / fps
    fine_t = (np.arange(int(np.ceil(duration * rate))) + 0.5) / rate
    starts = np.array([s.start for s in segments])
    which = np.clip(np.searchsorted(starts, fine_t, side="right") - 1, 0, len(segments) - 1)
    phones = [segments[i].phone for i in which]
    frame_t = (np.arange(num_frames) + 0.5) / fps
    out: dict[str, np.ndarray] = {}
    for name in speech.CONTROL_NAMES:
        if name == "close":
            continue
        target = np.array([speech.PHONE_CONTROLS[p].get(name, 0.0) for p in phones])
        smooth = scipy.ndimage.gaussian_filter1d(target, sigma=0.03 * rate, mode="nearest")
        out[name] = np.interp(frame_t, fine_t, smooth)
    bilabial = np.array([1.0 if p in speech.BILABIALS else 0.0 for p in phones])
    bilabial = np.clip(scipy.ndimage.gaussian_filter1d(bilabial, sigma=0.012 * rate, mode="nearest") * 1.6, 0.0, 1.0)
    out["close"] = out["jaw"] * np.interp(frame_t, fine_t, bilabial)
    return out


def blink_track(rng: np.random.Generator, num_frames: int, fps: float = FPS) -> np.ndarray:
    """Blink weight per frame: the BLINK_KEYS curve every 2-5 s."""
    track = np.zeros(num_frames)
    t = rng.uniform(0.5, 2.5)
    keys = face_mod.BLINK_KEYS
    while True:
        start = int(round(t * fps))
        if start >= num_frames:
            break
        n = min(len(keys), num_frames - start)
        track[start : start + n] = np.maximum(track[start : start + n], keys[:n])
        t += rng.uniform(2.0, 5.0)
    return track


def eye_rotations(rng: np.random.Generator, num_frames: int, fps: float = FPS) -> np.ndarray:
    """[T, 2, 2] degrees, [[right_x, right_y], [left_x, left_y]]: fixations and 2-frame saccades."""
    gaze = np.zeros((num_frames, 2))
    current = rng.normal(0.0, [3.0, 5.0])
    frame = 0
    while frame < num_frames:
        hold = int(rng.uniform(0.4, 1.5) * fps)
        target = np.clip(rng.normal(0.0, [3.0, 5.0]), [-8.0, -12.0], [8.0, 12.0])
        end = min(frame + hold, num_frames)
        gaze[frame:end] = target
        if frame > 0 and frame < num_frames:
            gaze[frame] = 0.5 * (current + target)  # saccade mid-flight
        current = target
        frame = end
    gaze += rng.normal(0.0, 0.1, gaze.shape)  # fixational tremor
    vergence = np.array([0.0, 1.0])
    return np.stack([gaze + vergence, gaze - vergence], axis=1).astype(np.float32)


def saccade_table(rng: np.random.Generator, num: int = 5000) -> np.ndarray:
    """[num, 2] small saccade offsets (degrees) at 30 fps, held 5-40 frames each."""
    table = np.zeros((num, 2))
    i = 0
    while i < num:
        hold = int(rng.integers(5, 41))
        table[i : i + hold] = rng.normal(0.0, 1.5, 2)
        i += hold
    return table.astype(np.float32)


def emotion_curves(rng: np.random.Generator, emotion: str, num_frames: int, fps: float = FPS) -> dict[str, np.ndarray]:
    """Constant emotion offsets (ramping in over 0.4 s) with a slow +-10% modulation."""
    t = (np.arange(num_frames) + 0.5) / fps
    intensity = rng.uniform(0.8, 1.1)
    ramp = np.clip(t / 0.4, 0.0, 1.0)
    slow = 1.0 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 2 * np.pi))
    return {pose: value * intensity * ramp * slow for pose, value in EMOTION_POSES[emotion].items()}


# ----------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------


def _blendshape_config(names: Sequence[str], bb_size: float, symmetry: dict[str, int], cancel: dict[str, int]) -> dict:
    n = len(names)
    return {
        "blendshape_params": {
            "strengthL2regularization": 0.001,
            "strengthL1regularization": 0.0,
            "strengthTemporalSmoothing": 0.0,
            "strengthSymmetry": 0.0,
            "numPoses": n,
            "bsSolveActivePoses": [1] * n,
            "bsSolveCancelPoses": [cancel.get(name, -1) for name in names],
            "bsSolveSymmetryPoses": [symmetry.get(name, -1) for name in names],
            "bsWeightMultipliers": [1.0] * n,
            "bsWeightOffsets": [0.0] * n,
            "templateBBSize": round(float(bb_size), 4),
        }
    }


def _pair_ids(names: Sequence[str]) -> dict[str, int]:
    """Left/Right pairs share an id, in order of first appearance."""
    ids: dict[str, int] = {}
    for name in names:
        if name.endswith("Left") and name[:-4] + "Right" in names:
            pair = len(ids) // 2
            ids[name], ids[name[:-4] + "Right"] = pair, pair
    return ids


def _write_static(actor_dir: pathlib.Path, face: face_mod.Face, rng: np.random.Generator) -> None:
    geom = actor_dir / "geom"
    shapes = {name: face.shapes[i] for i, name in enumerate(face_mod.SKIN_POSES)}
    _write_npy(geom / "skin" / "neutral_pose.npy", face.neutral)
    _write_npy(geom / "skin" / "lip_open_pose_delta.npy", shapes["jawOpen"])
    _write_npy(geom / "skin" / "eye_close_pose_delta.npy", shapes["eyeBlinkLeft"] + shapes["eyeBlinkRight"])
    _write_json(geom / "skin" / "lip_dist_vertex_list.json", face.lip_dist)
    _write_json(geom / "skin" / "lip_size_vertex_list.json", face.lip_size)
    _write_json(geom / "skin" / "eye_dist_vertex_list.json", face.eye_dist)
    _write_npy(geom / "tongue" / "neutral_pose.npy", face.tongue_neutral)
    _write_json(geom / "tongue" / "rigid_vertex_list.json", face.tongue_rigid)
    _write_npy(actor_dir / "xform" / "jaw_keypoints_neutral.npy", face.jaw_neutral)
    _write_npy(actor_dir / "xform" / "eye_blink_keys.npy", face_mod.BLINK_KEYS)
    _write_npy(actor_dir / "xform" / "eye_saccade_rotations.npy", saccade_table(rng))

    bs = actor_dir / "bs_data"
    skin_arrays: dict[str, np.ndarray] = {"poseNames": _pose_names(face_mod.SKIN_POSES), "neutral": face.neutral}
    skin_arrays.update(shapes)
    skin_arrays["frontalMask"] = face.frontal_mask
    skin_arrays["rig_version"] = np.array(b"a2f-jax-synthetic-1")
    _write_npz(bs / "bs_skin.npz", skin_arrays)
    cancel = {"mouthSmileLeft": 0, "mouthFrownLeft": 0, "mouthSmileRight": 1, "mouthFrownRight": 1}
    height = float(np.ptp(face.neutral[:, 1]))
    _write_json(bs / "bs_skin_config.json", _blendshape_config(face_mod.SKIN_POSES, height, _pair_ids(face_mod.SKIN_POSES), cancel))
    tongue_arrays: dict[str, np.ndarray] = {"poseNames": _pose_names(face_mod.TONGUE_POSES), "neutral": face.tongue_neutral}
    tongue_arrays.update({name: face.tongue_shapes[i] for i, name in enumerate(face_mod.TONGUE_POSES)})
    tongue_arrays["rig_version"] = np.array(b"a2f-jax-synthetic-1")
    _write_npz(bs / "bs_tongue.npz", tongue_arrays)
    tongue_size = float(np.ptp(face.tongue_neutral, axis=0).max())
    _write_json(
        bs / "bs_tongue_config.json", _blendshape_config(face_mod.TONGUE_POSES, tongue_size, _pair_ids(face_mod.TONGUE_POSES), {})
    )


def _write_shot_cache(root: pathlib.Path, shot: str, frames: np.ndarray, ext: str) -> None:
    path = root / shot / f"{shot}{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".xml":
        dtype = np.float64 if root.name == "tongue" else np.float32
        caches.write_maya_cache(path, frames.astype(dtype), FPS, dtype=dtype)
    else:
        caches.write_cache(path, frames, FPS)


def _shot_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


def _draw_num_frames(rng: np.random.Generator) -> int:
    """The first draw of a shot's generator: its length in frames."""
    return int(round(rng.uniform(*DURATION_RANGE) * FPS))


def shot_frames(seed: int = 0) -> dict[str, int]:
    """Frame count of every shot for a seed, without generating anything (for CLIPS ranges)."""
    return {shot: _draw_num_frames(_shot_rng(seed, i)) for i, (shot, _) in enumerate(SHOTS)}


def _pose_names(poses) -> np.ndarray:
    """The SDK's layout: byte strings with "neutral" first (docs/dataset_format.md "Blendshapes")."""
    return np.array([b"neutral"] + [p.encode() for p in poses])


def generate(
    out_dir: str | pathlib.Path,
    seed: int = 0,
    minimal: bool = False,
    actor: str = "synth",
    num_shots: int | None = None,
    overwrite: bool = False,
) -> pathlib.Path:
    """Write the synthetic dataset under `out_dir` (built in a temp folder, then renamed); return out_dir.

    num_shots: first N of SHOTS (tests use a few). overwrite: replace an existing synthetic dataset
    (only a folder holding our ground_truth/<actor>/info.json is ever deleted).
    """
    out_dir = pathlib.Path(out_dir)
    if out_dir.exists():
        marker = out_dir / "ground_truth" / actor / INFO_NAME
        if not overwrite:
            raise DataError(describe(out_dir, None, "a path that does not exist yet (or --force)", "an existing path"))
        if not marker.is_file():
            raise DataError(describe(out_dir, None, f"a synthetic dataset ({marker}) to overwrite", "another folder"))
        shutil.rmtree(out_dir)
    shots = SHOTS if num_shots is None else SHOTS[:num_shots]
    face = face_mod.build_face()
    with atomic_dir(out_dir) as tmp:
        actor_dir = tmp / "data" / actor
        gt_dir = tmp / "ground_truth" / actor
        static_rng = np.random.default_rng([seed, 10_000])
        if not minimal:
            _write_static(actor_dir, face, static_rng)
        skin_weights, tongue_weights, timelines = {}, {}, {}
        jaw_all, eye_all, shot_info = {}, {}, []
        residual_sq, residual_n = 0.0, 0
        for index, (shot, emotion) in enumerate(shots):
            rng = _shot_rng(seed, index)
            num_frames = _draw_num_frames(rng)
            duration = num_frames / FPS
            tempo = speech.EMOTION_VOICE[emotion][2]
            segments = speech.make_timeline(rng, duration, tempo)
            audio = speech.synthesize(rng, segments, duration, emotion)
            _write_wav(actor_dir / "audio" / f"{shot}.wav", audio)

            controls = control_curves(segments, num_frames)
            emotion_w = emotion_curves(rng, emotion, num_frames)
            blinks = blink_track(rng, num_frames)
            weights = face_mod.controls_to_weights(controls, emotion_w, blinks, asymmetry=rng.uniform(-0.15, 0.15))
            clean = face.neutral[None].astype(np.float64) + np.einsum("tp,pvc->tvc", weights, face.shapes)
            noise = rng.normal(0.0, SKIN_NOISE_STD, clean.shape)
            skin = (clean + noise).astype(np.float32)
            residual_sq += float(np.sum((skin.astype(np.float64) - clean) ** 2))
            residual_n += skin.size
            _write_shot_cache(actor_dir / "cache" / "skin", shot, skin, SKIN_FORMAT.get(shot, ".npy"))
            skin_weights[shot] = weights.astype(np.float32)
            timelines[shot] = [[round(s.start, 6), round(s.end, 6), s.phone] for s in segments]
            shot_info.append(
                {"shot": shot, "emotion": emotion, "frames": num_frames, "seconds": duration, "skin_format": SKIN_FORMAT.get(shot, ".npy")}
            )
            if minimal:
                continue
            t_weights = face_mod.controls_to_tongue_weights(controls)
            tongue = face_mod.tongue_frames(face, t_weights, controls["jaw"])
            _write_shot_cache(actor_dir / "cache" / "tongue", shot, tongue, TONGUE_FORMAT.get(shot, ".npy"))
            tongue_weights[shot] = t_weights.astype(np.float32)
            jaw_all[shot] = face_mod.jaw_keypoint_deltas(face.jaw_neutral, controls["jaw"])
            eye_all[shot] = eye_rotations(rng, num_frames)

        if not minimal:
            _write_npz(actor_dir / "xform" / "jaw_keypoints_cache_all.npz", jaw_all)
            _write_npz(actor_dir / "xform" / "eye_rotations_all.npz", eye_all)
            _write_npz(gt_dir / "tongue_weights.npz", tongue_weights)
        _write_npz(gt_dir / "skin_weights.npz", skin_weights)
        _write_json(gt_dir / "phonemes.json", timelines)
        _write_json(
            gt_dir / INFO_NAME,
            {
                "generator": "a2f_jax.data.synthetic",
                "seed": seed,
                "minimal": minimal,
                "actor": actor,
                "fps": FPS,
                "samplerate": SAMPLERATE,
                "num_skin_vertices": int(face.neutral.shape[0]),
                "num_tongue_vertices": int(face.tongue_neutral.shape[0]),
                "skin_poses": list(face_mod.SKIN_POSES),
                "skin_noise_std_cm": SKIN_NOISE_STD,
                "skin_residual_rms_cm": float(np.sqrt(residual_sq / max(residual_n, 1))),
                "shots": shot_info,
            },
        )
    return out_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the built-in synthetic Audio2Face dataset.")
    parser.add_argument("out_dir", help="dataset root to create, e.g. $A2F_DATASETS_ROOT/a2f-synthetic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min", dest="minimal", action="store_true", help="audio and skin caches only")
    parser.add_argument("--actor", default="synth")
    parser.add_argument("--force", action="store_true", help="replace an existing synthetic dataset")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        out = generate(args.out_dir, seed=args.seed, minimal=args.minimal, actor=args.actor, overwrite=args.force)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out} in {time.perf_counter() - start:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
