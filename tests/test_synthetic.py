"""The synthetic dataset: layout, determinism, audio driving the face, the blendshape model, configs."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import soundfile

from a2f_jax.config import load as load_config
from a2f_jax.data import caches, synthetic
from a2f_jax.data import synthetic_face as face_mod
from a2f_jax.data import synthetic_speech as speech

NUM_SHOTS = 6  # s03 is a Maya cache, s06 a pc2


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> pathlib.Path:
    return synthetic.generate(tmp_path_factory.mktemp("ds") / "synthetic", seed=0, num_shots=NUM_SHOTS)


def _files(root: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout(dataset):
    actor = dataset / "data" / "synth"
    expected = [
        "audio/s01_neutral.wav",
        "cache/skin/s01_neutral/s01_neutral.npy",
        "cache/skin/s03_neutral/s03_neutral.xml",
        "cache/skin/s03_neutral/s03_neutral.mc",
        "cache/skin/s06_joy/s06_joy.pc2",
        "cache/tongue/s02_neutral/s02_neutral.npy",
        "geom/skin/neutral_pose.npy",
        "geom/skin/lip_open_pose_delta.npy",
        "geom/skin/eye_close_pose_delta.npy",
        "geom/skin/lip_dist_vertex_list.json",
        "geom/skin/lip_size_vertex_list.json",
        "geom/skin/eye_dist_vertex_list.json",
        "geom/tongue/neutral_pose.npy",
        "geom/tongue/rigid_vertex_list.json",
        "xform/jaw_keypoints_neutral.npy",
        "xform/jaw_keypoints_cache_all.npz",
        "xform/eye_rotations_all.npz",
        "xform/eye_blink_keys.npy",
        "xform/eye_saccade_rotations.npy",
        "bs_data/bs_skin.npz",
        "bs_data/bs_skin_config.json",
        "bs_data/bs_tongue.npz",
        "bs_data/bs_tongue_config.json",
    ]
    for rel in expected:
        assert (actor / rel).is_file(), rel
    assert caches.list_shots(actor / "cache" / "skin") == [s for s, _ in synthetic.SHOTS[:NUM_SHOTS]]
    info, sr = soundfile.info(str(actor / "audio" / "s01_neutral.wav")), 16000
    assert info.samplerate == sr and info.channels == 1 and info.subtype == "PCM_16"
    neutral = np.load(actor / "geom/skin/neutral_pose.npy")
    assert neutral.dtype == np.float32 and 1000 <= neutral.shape[0] <= 5000
    assert 18.0 < np.ptp(neutral[:, 1]) < 26.0  # a face-sized height in cm, Y up
    assert np.load(actor / "xform/eye_saccade_rotations.npy").shape == (5000, 2)
    assert np.load(actor / "xform/jaw_keypoints_neutral.npy").shape == (5, 3)
    tongue_neutral = np.load(actor / "geom/tongue/neutral_pose.npy")
    assert 100 <= tongue_neutral.shape[0] <= 1000
    with np.load(actor / "xform/jaw_keypoints_cache_all.npz", allow_pickle=False) as jaw:
        frames = caches.read_cache(caches.find_cache_file(actor / "cache/skin", "s01_neutral")).shape[0]
        assert jaw["s01_neutral"].shape == (frames, 5, 3)
    with np.load(actor / "xform/eye_rotations_all.npz", allow_pickle=False) as eye:
        assert eye["s02_neutral"].shape[1:] == (2, 2)
    tongue = caches.read_cache(actor / "cache/tongue/s02_neutral/s02_neutral.npy")
    assert tongue.shape[1] == tongue_neutral.shape[0]


def test_blendshape_files_sdk_format(dataset):
    bs = dataset / "data/synth/bs_data"
    with np.load(bs / "bs_skin.npz", allow_pickle=False) as skin:
        assert skin["poseNames"].dtype.kind == "S"  # the SDK reads byte strings, "neutral" first
        names = [n.decode() for n in skin["poseNames"]]
        assert names[0] == "neutral"
        names = names[1:]
        assert names == list(face_mod.SKIN_POSES) and len(names) >= 10
        assert skin["frontalMask"].dtype == np.int32 and skin["neutral"].shape[1] == 3
        assert all(skin[n].shape == skin["neutral"].shape for n in names)
        assert str(skin["rig_version"])
    cfg = json.loads((bs / "bs_skin_config.json").read_text())["blendshape_params"]
    n = cfg["numPoses"]
    assert n == len(names)
    for key in ("bsSolveActivePoses", "bsSolveCancelPoses", "bsSolveSymmetryPoses", "bsWeightMultipliers", "bsWeightOffsets"):
        assert len(cfg[key]) == n
    sym = dict(zip(names, cfg["bsSolveSymmetryPoses"]))
    assert sym["eyeBlinkLeft"] == sym["eyeBlinkRight"] != -1 and sym["jawOpen"] == -1
    with np.load(bs / "bs_tongue.npz", allow_pickle=False) as tongue:
        assert len(tongue["poseNames"]) == 17 and tongue["poseNames"][0] == b"neutral" and "frontalMask" not in tongue.files


def test_same_seed_same_bytes_other_seed_differs(dataset, tmp_path):
    again = synthetic.generate(tmp_path / "again", seed=0, num_shots=NUM_SHOTS)
    assert _files(dataset) == _files(again)
    other = synthetic.generate(tmp_path / "other", seed=1, num_shots=2, minimal=True)
    a = (dataset / "data/synth/audio/s01_neutral.wav").read_bytes()
    assert a != (other / "data/synth/audio/s01_neutral.wav").read_bytes()


def test_minimal_writes_audio_and_skin_only(tmp_path):
    out = synthetic.generate(tmp_path / "m", seed=0, num_shots=2, minimal=True)
    assert sorted(p.name for p in (out / "data/synth").iterdir()) == ["audio", "cache"]
    assert sorted(p.name for p in (out / "data/synth/cache").iterdir()) == ["skin"]


def test_refuses_to_overwrite_foreign_folder(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(ValueError, match="does not exist yet"):
        synthetic.generate(tmp_path / "x", num_shots=1)
    with pytest.raises(ValueError, match="synthetic dataset"):
        synthetic.generate(tmp_path / "x", num_shots=1, overwrite=True)


def _lip_distance(dataset: pathlib.Path, shot: str) -> np.ndarray:
    actor = dataset / "data/synth"
    lists = json.loads((actor / "geom/skin/lip_dist_vertex_list.json").read_text())
    x = caches.read_cache(caches.find_cache_file(actor / "cache/skin", shot))
    return (x[:, lists["upper"], 1] - x[:, lists["lower"], 1]).mean(axis=1)


def test_lip_distance_follows_audio_energy_in_voiced_segments(dataset):
    """Per shot: Pearson r between frame RMS (+-1/60 s) and lip distance over frames inside vowels."""
    actor = dataset / "data/synth"
    phonemes = json.loads((dataset / "ground_truth/synth/phonemes.json").read_text())
    correlations = []
    for shot, _ in synthetic.SHOTS[:NUM_SHOTS]:
        wav, sr = soundfile.read(actor / "audio" / f"{shot}.wav", dtype="float32")
        dist = _lip_distance(dataset, shot)
        t = (np.arange(dist.size) + 0.5) / 30.0
        voiced = np.zeros(dist.size, bool)
        for start, end, phone in phonemes[shot]:
            if phone in speech.VOWELS:
                voiced |= (t >= start) & (t < end)
        centres = np.rint(t * sr).astype(int)
        rms = np.array([np.sqrt(np.mean(wav[max(c - 267, 0) : c + 267] ** 2)) for c in centres])
        correlations.append(np.corrcoef(rms[voiced], dist[voiced])[0, 1])
    print("lip distance vs audio energy (voiced frames), r per shot:", np.round(correlations, 3))
    assert np.mean(correlations) > 0.8 and min(correlations) > 0.6


def test_lips_close_on_bilabials_and_open_on_a(dataset):
    phonemes = json.loads((dataset / "ground_truth/synth/phonemes.json").read_text())
    closed, open_a = [], []
    for shot, _ in synthetic.SHOTS[:NUM_SHOTS]:
        dist = _lip_distance(dataset, shot)
        for start, end, phone in phonemes[shot]:
            frame = min(int((start + end) / 2 * 30.0), dist.size - 1)
            if phone in speech.BILABIALS:
                closed.append(dist[frame])
            elif phone == "a":
                open_a.append(dist[frame])
    assert np.median(closed) < 0.4 < 1.0 < np.median(open_a)  # cm


def test_skin_is_blendshape_combination_plus_small_noise(dataset):
    actor = dataset / "data/synth"
    with np.load(actor / "bs_data/bs_skin.npz", allow_pickle=False) as bs:
        names = [n.decode() for n in bs["poseNames"]][1:]  # skip "neutral" (absolute pose)
        neutral = bs["neutral"].astype(np.float64)
        basis = np.stack([bs[n] for n in names]).reshape(len(names), -1).astype(np.float64)
    with np.load(dataset / "ground_truth/synth/skin_weights.npz") as gt:
        weights = gt["s05_joy"].astype(np.float64)
    x = caches.read_cache(caches.find_cache_file(actor / "cache/skin", "s05_joy")).reshape(weights.shape[0], -1)
    residual = x - neutral.reshape(1, -1) - weights @ basis
    rms = float(np.sqrt(np.mean(residual**2)))
    info = json.loads((dataset / "ground_truth/synth/info.json").read_text())
    assert rms == pytest.approx(synthetic.SKIN_NOISE_STD, rel=0.05)
    assert info["skin_residual_rms_cm"] == pytest.approx(synthetic.SKIN_NOISE_STD, rel=0.05)
    assert weights.min() >= 0.0 and weights.max() <= 1.0
    # Least squares recovers the weights from the cache alone.
    solved, *_ = np.linalg.lstsq(basis.T, (x - neutral.reshape(1, -1)).T, rcond=None)
    assert np.max(np.abs(solved.T - weights)) < 0.03
    joy = names.index("mouthSmileLeft")
    assert weights[weights.shape[0] // 2, joy] > 0.3  # the emotion shows on the face


def test_tongue_and_jaw_follow_the_jaw_rotation(dataset):
    actor = dataset / "data/synth"
    with np.load(actor / "xform/jaw_keypoints_cache_all.npz") as jaw, np.load(dataset / "ground_truth/synth/skin_weights.npz") as gt:
        chin_drop = -jaw["s02_neutral"][:, 0, 1]
        jaw_open = gt["s02_neutral"][:, face_mod.SKIN_POSES.index("jawOpen")]
    assert np.corrcoef(chin_drop, jaw_open)[0, 1] > 0.99
    rigid = json.loads((actor / "geom/tongue/rigid_vertex_list.json").read_text())
    neutral = np.load(actor / "geom/tongue/neutral_pose.npy")
    tongue = caches.read_cache(actor / "cache/tongue/s02_neutral/s02_neutral.npy")
    assert len(rigid) >= 4 and np.ptp(tongue[:, rigid, 1], axis=0).max() > 0.1  # rigid part moves with the jaw
    frame = int(np.argmax(jaw_open))
    assert not np.allclose(tongue[frame], neutral, atol=1e-3)


def test_shot_frames_matches_generated(dataset):
    frames = synthetic.shot_frames(0)
    for shot, _ in synthetic.SHOTS[:NUM_SHOTS]:
        x = caches.read_cache(caches.find_cache_file(dataset / "data/synth/cache/skin", shot))
        assert x.shape[0] == frames[shot]
    assert len(synthetic.SHOTS) >= 20
    seconds = np.array(list(frames.values())) / 30.0
    assert seconds.min() >= 3.0 and seconds.max() <= 10.0


@pytest.mark.parametrize("name", ["synthetic-regression", "synthetic-regression-min", "synthetic-diffusion", "synthetic-diffusion-min"])
def test_config_dirs_load_and_match_the_dataset(name, monkeypatch, tmp_path):
    monkeypatch.setenv("A2F_DATASETS_ROOT", str(tmp_path))
    root = pathlib.Path(__file__).resolve().parents[1] / "configs" / name
    cfg = load_config(root)
    assert cfg.network_type == name.split("-")[1]
    ds = "a2f-synthetic-min" if name.endswith("-min") else "a2f-synthetic"
    assert cfg.dataset.SKIN_CACHE_ROOT["synth"] == f"{tmp_path}/{ds}/data/synth/cache/skin"
    assert cfg.dataset.ACTOR_NAMES == ["synth"] and cfg.dataset.CACHE_FPS["synth"] == 30.0
    run = "synthetic-min" if name.endswith("-min") else "synthetic"
    assert cfg.train.PREPROC_RUN_NAME_FULL["synth"] == f"latest:{run}" and cfg.preproc.RUN_NAME == run
    assert cfg.train.AUDIO_ENCODER_RANDOM_INIT
    assert tuple(cfg.train.AUDIO_ENCODER_CONFIG_OVERRIDES["conv_dim"]) == (32,) * 7
    frames = synthetic.shot_frames(0)
    clips = [tuple(c) for c in cfg.train.CLIPS]
    held_out = [tuple(c) for c in cfg.train.VALIDATION_CLIPS]
    assert 2 <= len(held_out) <= 3 and not {c[1] for c in clips} & {c[1] for c in held_out}
    assert {c[1] for c in clips} | {c[1] for c in held_out} == set(frames)
    for clip in clips + held_out:
        assert tuple(clip[2]) == (0, frames[clip[1]] - 1) and clip[5] == f"{clip[1]}.wav"
    for actor, (shot, frame), length, emotion in cfg.train.AUG_MUTED_SHOTS:
        assert actor == "synth" and frame < frames[shot] and emotion in shot and emotion in cfg.dataset.SHOT_EMOTION_NAMES


def test_audio_is_phone_dependent(dataset):
    """Vowels carry their first formant (a ~800 Hz, i ~300 Hz); bilabial closures and pauses are quiet."""
    actor = dataset / "data/synth"
    phonemes = json.loads((dataset / "ground_truth/synth/phonemes.json").read_text())
    band = {"a": [], "i": []}
    level = {"vowel": [], "sil": []}
    for shot, _ in synthetic.SHOTS[:NUM_SHOTS]:
        wav, sr = soundfile.read(actor / "audio" / f"{shot}.wav", dtype="float32")
        for start, end, phone in phonemes[shot]:
            a, b = int(start * sr) + 160, int(end * sr) - 160  # skip the 10 ms cross-fades
            if b - a < 512:
                continue
            seg = wav[a:b]
            rms = float(np.sqrt(np.mean(seg**2)))
            if phone in speech.VOWELS:
                level["vowel"].append(rms)
            elif phone == speech.SILENCE:
                level["sil"].append(rms)
            if phone in band:
                spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size))) ** 2
                f = np.fft.rfftfreq(seg.size, 1 / sr)
                band[phone].append(spec[(f > 650) & (f < 950)].sum() / spec[(f > 200) & (f < 400)].sum())
    print("F1-band ratio a, i:", np.median(band["a"]), np.median(band["i"]), "silence/vowel rms:", np.median(level["sil"]) / np.median(level["vowel"]))
    assert band["a"] and band["i"]
    assert np.median(band["a"]) > 10 * np.median(band["i"])
    assert np.median(level["sil"]) < 0.05 * np.median(level["vowel"])


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    assert synthetic.main([str(out), "--min", "--seed", "3"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert len(caches.list_shots(out / "data/synth/cache/skin")) == len(synthetic.SHOTS)
    assert synthetic.main([str(out), "--min"]) == 2  # exists: refuse without --force
    assert "does not exist yet" in capsys.readouterr().err
    assert synthetic.main([str(out), "--min", "--force", "--seed", "4"]) == 0
    assert json.loads((out / "ground_truth/synth/info.json").read_text())["seed"] == 4
