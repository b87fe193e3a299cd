"""Regression sampling: target assembly, windows at fractional timeshift, muted shots, determinism."""

import json

import jax
import numpy as np
import pytest
import soundfile as sf
from ml_collections import ConfigDict

from a2f_jax.config import dataset as dataset_base
from a2f_jax.config import train_regression
from a2f_jax.errors import ConfigError, DataError
from a2f_jax.train.dataset import load_training_data
from a2f_jax.train.sampler_regression import RegressionSampler, RegressionSamplerSettings, gather_batch

SR = 16000
FPS = 30.0
KS, KT, V, VT = 4, 3, 6, 5


def _write_dataset(tmp_path, lengths=(40, 25)):
    """A tiny preproc run + audio, with coefficients that encode (shot, frame) so values are checkable."""
    pdir = tmp_path / "preproc"
    (pdir / "pca/skin").mkdir(parents=True)
    (pdir / "pca/tongue").mkdir(parents=True)
    (pdir / "deploy").mkdir(parents=True)
    audio_root = tmp_path / "audio"
    audio_root.mkdir()
    rng = np.random.default_rng(0)
    skin, tongue, jaw, eye, shots = {}, {}, {}, {}, []
    for si, n in enumerate(lengths):
        name = f"s{si}_{'joy' if si else 'neutral'}"
        frames = np.arange(n, dtype=np.float32)
        skin[name] = np.stack([frames + 1000 * si + k for k in range(KS)], axis=1)
        tongue[name] = np.stack([-frames - k for k in range(KT)], axis=1)
        jaw[name] = np.repeat(frames[:, None, None], 5, 1).repeat(3, 2) * 0.01
        eye[name] = np.zeros((n, 2, 2), np.float32) + si
        shots.append(["a", name, n, FPS, "joy" if si else "neutral"])
        # A ramp so every sample's value tells its position in the track.
        samples = int(round(n / FPS * SR))
        sf.write(audio_root / f"{name}.wav", (np.arange(samples) / samples * 0.5 + 0.1 * si).astype(np.float32), SR, subtype="FLOAT")
    np.savez(pdir / "pca/skin/skin_pca_shapes.npz", shapes_matrix=rng.normal(size=(KS, V, 3)).astype(np.float32), shapes_mean=np.zeros((V, 3), np.float32))
    np.savez(pdir / "pca/tongue/tongue_pca_shapes.npz", shapes_matrix=rng.normal(size=(KT, VT, 3)).astype(np.float32), shapes_mean=np.zeros((VT, 3), np.float32))
    np.savez(pdir / "pca/skin/skin_pca_coeffs_all.npz", **skin)
    np.savez(pdir / "pca/tongue/tongue_pca_coeffs_all.npz", **tongue)
    np.savez(tmp_path / "jaw.npz", **jaw)
    np.savez(tmp_path / "eye.npz", **eye)
    info = {"num_shapes_skin": KS, "num_verts_skin": V, "num_shapes_tongue": KT, "num_verts_tongue": VT,
            "num_keypoints_jaw": 5, "num_angles_eye": 2}
    (pdir / "deploy/data_info.json").write_text(json.dumps(info))
    (pdir / "deploy/shots.json").write_text(json.dumps(shots))
    train = ConfigDict({
        **train_regression.base_dict(),
        "PREPROC_ROOT": str(tmp_path), "PREPROC_RUN_NAME_FULL": {"a": "unused"},
        **{k: {"a": str(v)} for k, v in {
            "SKIN_PCA_COEFFS_FPATH": pdir / "pca/skin/skin_pca_coeffs_all.npz",
            "SKIN_PCA_SHAPES_FPATH": pdir / "pca/skin/skin_pca_shapes.npz",
            "TONGUE_PCA_COEFFS_FPATH": pdir / "pca/tongue/tongue_pca_coeffs_all.npz",
            "TONGUE_PCA_SHAPES_FPATH": pdir / "pca/tongue/tongue_pca_shapes.npz",
            "DATA_INFO_FPATH": pdir / "deploy/data_info.json",
            "SHOT_LIST_FPATH": pdir / "deploy/shots.json"}.items()},
        "TARGET_CHANNELS": ["skin_coeffs", "tongue_coeffs", "jaw", "eye"],
        "RESCALE_TARGET_CHANNEL_DATA": False,
        "SHOT_EMOTION_NAME_FOR_ALL_ZEROS": "neutral",
        "CLIPS": [("a", shots[0][1], (0, lengths[0] - 1), "a", "en", f"{shots[0][1]}.wav", 0),
                  ("a", shots[1][1], (0, lengths[1] - 1), "a", "en", f"{shots[1][1]}.wav", 2)],
        "AUG_MUTED_SHOTS": [("a", (shots[1][1], 3), 10, "neutral")],
        "AUG_MUTED_SKIN_IS_NEUTRAL_FOR_NEUTRAL_EMO": True, "AUG_MUTED_TONGUE_IS_NEUTRAL": False,
        "AUG_MUTED_AUDIO_NOISE_TYPE": "mic", "AUG_MUTED_AUDIO_NOISE_SCALE": 0.1,
        "AUG_MUTED_AUDIO_NOISE_LOCAL_SCALE_RANGE": (0.0, 1.0),
        "SEQ_LEN": 2, "SEQ_STRIDE": 1, "AUGMENT": {"timeshift": 1.0},
        "AUDIO_PARAMS": {"buffer_len": 8320, "buffer_ofs": 4160, "samplerate": SR},
        "AUDIO_PREPROC_METHOD": "w2v",
    })
    dataset = ConfigDict({
        **dataset_base.base_dict(),
        "ACTOR_NAMES": ["a"], "SHOT_EMOTION_NAMES": ["neutral", "joy", "anger"],
        "AUDIO_ROOT": {"a": str(audio_root)}, "CACHE_FPS": {"a": FPS},
        "JAW_ANIM_DATA_FPATH": {"a": str(tmp_path / "jaw.npz")}, "EYE_ANIM_DATA_FPATH": {"a": str(tmp_path / "eye.npz")},
    })
    return train, dataset, shots


@pytest.fixture()
def tiny(tmp_path):
    return _write_dataset(tmp_path)


def test_targets_and_muted_shots(tiny):
    train, dataset, shots = tiny
    data = load_training_data(train, dataset)
    assert data.target_dim == KS + KT + 15 + 4
    assert [s.start_global for s in data.shots] == [0, 40, 65]
    assert data.num_frames_total == 75
    np.testing.assert_allclose(data.targets[1][7, :KS], 1007 + np.arange(KS))
    muted = data.targets[2]
    assert muted.shape == (10, data.target_dim)
    assert np.all(muted[:, :KS] == 0)  # neutral muted shot: skin coeffs zeroed (= neutral pose)
    np.testing.assert_allclose(muted[0, KS:KS + KT], -3 - np.arange(KT))  # tongue kept from source frame 3
    assert data.explicit_emotions == ["joy", "anger"]
    np.testing.assert_array_equal(data.emotion_vector(1), [1, 0])
    np.testing.assert_array_equal(data.emotion_vector(0), [0, 0])
    # Offset 2 (> 0) clips two frames from the end of the clip.
    assert (data.clips[1].first, data.clips[1].last) == (0, 22)
    assert data.clips[2].muted


def test_sampler_counts_and_determinism(tiny):
    train, dataset, _ = tiny
    data = load_training_data(train, dataset)
    s = RegressionSampler(data, RegressionSamplerSettings.from_train_config(train), batch_size=8, seed=43)
    assert s.num_samples == (40 - 1) + (23 - 1) + (10 - 1)
    a, b = s.batch_index(5), s.batch_index(5)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(s.batch_index(6)["tgt_i0"], a["tgt_i0"])
    # An epoch covers every sample once (the last batch is filled up from the start of the permutation).
    ids = np.concatenate([s.sample_ids(k) for k in range(s.batches_per_epoch)])
    assert set(ids.tolist()) == set(range(s.num_samples))


def test_windows_and_targets_at_fractional_timeshift(tiny):
    train, dataset, _ = tiny
    data = load_training_data(train, dataset)
    s = RegressionSampler(data, RegressionSamplerSettings.from_train_config(train), batch_size=16, seed=1)
    step = 3
    idx = s.batch_index(step)
    out = jax.jit(gather_batch, static_argnums=2)(s.device, idx, 8320)
    x, y = np.asarray(out["x"]), np.asarray(out["y"])
    ids = s.sample_ids(step)
    rng = np.random.default_rng([1, 1, step])
    shift = (rng.uniform(size=len(ids)) - 0.5) * 1.0
    targets = np.concatenate(data.targets)
    checked = 0
    for b, gid in enumerate(ids):
        ci = int(np.searchsorted(s.cum, gid + 1))
        clip = s.clips[ci]
        start = gid - (s.cum[ci - 1] if ci else 0)
        shot = data.shots[clip.shot_index]
        for j in range(2):
            f = clip.first + start + j
            sft = shift[b]
            lo, hi = (f - 1, f) if sft < 0 else (f, f + 1)
            w = 1 + sft if sft < 0 else sft
            lo, hi = np.clip([lo, hi], 0, shot.length - 1)
            ref = (1 - w) * targets[shot.start_global + lo] + w * targets[shot.start_global + hi]
            np.testing.assert_allclose(y[b, j], ref, rtol=1e-5, atol=1e-4)
            if not clip.muted:
                track = s.device.audio[s.clip_track[ci, 0]: s.clip_track[ci, 0] + s.clip_track[ci, 1]]
                t = (f + 0.5) / FPS + (sft + clip.offset_frames) / FPS
                st = int(round(t * SR)) - 4160
                ref_x = np.zeros(8320, np.float32)
                lo_s, hi_s = max(st, 0), min(st + 8320, len(track))
                ref_x[lo_s - st:hi_s - st] = np.asarray(track)[lo_s:hi_s]
                np.testing.assert_allclose(x[b, j], ref_x, atol=1e-6)
                checked += 1
            else:
                assert np.abs(x[b, j]).max() < 1.0  # scaled mic noise
    assert checked > 0


def test_bad_clip_range_and_missing_audio(tmp_path):
    train, dataset, shots = _write_dataset(tmp_path)
    train.CLIPS = [("a", shots[0][1], (0, 99), "a", "en", f"{shots[0][1]}.wav", 0)]
    with pytest.raises(ConfigError, match="frame range inside shot"):
        load_training_data(train, dataset)
    train.CLIPS = [("a", shots[0][1], (0, 9), "a", "en", "missing.wav", 0)]
    with pytest.raises(DataError, match="missing.wav"):
        load_training_data(train, dataset)
