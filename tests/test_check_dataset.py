"""Dataset checker: a good dataset passes with a shot table; each kind of bad input is named precisely."""

from __future__ import annotations

import importlib.util
import pathlib
import shutil

import ml_collections
import numpy as np
import pytest
import soundfile

from a2f_jax.config import dataset as dataset_base
from a2f_jax.data import caches, synthetic
from a2f_jax.data.check import check_dataset, format_table

ROOT = pathlib.Path(__file__).resolve().parents[1]
NUM_SHOTS = 4


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> pathlib.Path:
    return synthetic.generate(tmp_path_factory.mktemp("check") / "ds", seed=0, num_shots=NUM_SHOTS)


@pytest.fixture()
def ds(pristine, tmp_path) -> pathlib.Path:
    """A private copy each test may break."""
    return pathlib.Path(shutil.copytree(pristine, tmp_path / "ds"))


def _cfg(ds: pathlib.Path, **changes) -> ml_collections.ConfigDict:
    actor = ds / "data" / "synth"
    cfg = {
        "AUDIO_ROOT": {"synth": str(actor / "audio")},
        "SKIN_CACHE_ROOT": {"synth": str(actor / "cache/skin")},
        "SKIN_NEUTRAL_FPATH": {"synth": str(actor / "geom/skin/neutral_pose.npy")},
        "SKIN_LIP_OPEN_POSE_DELTA_FPATH": {"synth": str(actor / "geom/skin/lip_open_pose_delta.npy")},
        "SKIN_LIP_DIST_VERTEX_LIST_FPATH": {"synth": str(actor / "geom/skin/lip_dist_vertex_list.json")},
        "SKIN_EYE_DIST_VERTEX_LIST_FPATH": {"synth": str(actor / "geom/skin/eye_dist_vertex_list.json")},
        "TONGUE_CACHE_ROOT": {"synth": str(actor / "cache/tongue")},
        "TONGUE_NEUTRAL_FPATH": {"synth": str(actor / "geom/tongue/neutral_pose.npy")},
        "TONGUE_RIGID_VERTEX_LIST_FPATH": {"synth": str(actor / "geom/tongue/rigid_vertex_list.json")},
        "JAW_ANIM_DATA_FPATH": {"synth": str(actor / "xform/jaw_keypoints_cache_all.npz")},
        "BLENDSHAPE_SKIN_FPATH": {"synth": str(actor / "bs_data/bs_skin.npz")},
        "SHOT_EMOTION_NAMES": ["neutral", "joy", "anger", "sadness"],
        "SHOT_EMOTION_MAP": [],
        "CACHE_FPS": {"synth": 30.0},
        "ACTOR_NAMES": ["synth"],
    }
    cfg.update(changes)
    return ml_collections.ConfigDict({**dataset_base.base_dict(), **cfg})


def _shots() -> list[str]:
    return [s for s, _ in synthetic.SHOTS[:NUM_SHOTS]]


def _errors(report) -> str:
    return "\n".join(report.errors)


def test_good_dataset_passes_with_table(ds):
    report = check_dataset(_cfg(ds))
    assert report.ok, report.errors
    assert [r.shot for r in report.rows] == _shots()
    frames = synthetic.shot_frames(0)
    for row in report.rows:
        assert row.frames == frames[row.shot] and row.audio_seconds == pytest.approx(row.seconds, abs=1 / 30)
        assert row.emotion == row.shot.split("_")[1] and row.language == "en" and row.tongue
    table = format_table(report.rows)
    assert "s03_neutral" in table and ".xml" in table and f"{NUM_SHOTS} shots" in table


def test_clip_audio_missing(ds):
    clips = [("synth", s, (0, 10), "synth", "en", f"{s}.wav", 0) for s in _shots()]
    clips[1] = ("synth", _shots()[1], (0, 10), "synth", "en", "aug/voice1/missing.wav", 0)
    report = check_dataset(_cfg(ds), cfg_train=ml_collections.ConfigDict({"CLIPS": clips}))
    assert not report.ok
    assert f"{ds}/data/synth/audio/aug/voice1/missing.wav: expected an audio file, found no such file" in _errors(report)


def test_clip_range_outside_shot(ds):
    shot = _shots()[0]
    clips = [("synth", shot, (0, 10_000), "synth", "en", f"{shot}.wav", 0)]
    report = check_dataset(_cfg(ds), cfg_train=ml_collections.ConfigDict({"CLIPS": clips}))
    assert f"[clip of '{shot}']: expected a range inside [0, {synthetic.shot_frames(0)[shot] - 1}], found (0, 10000)" in _errors(report)


def test_shot_with_different_vertex_count(ds):
    shot = _shots()[1]
    path = ds / "data/synth/cache/skin" / shot / f"{shot}.npy"
    x = np.load(path)
    np.save(path, x[:, :-3])
    report = check_dataset(_cfg(ds))
    v = x.shape[1]
    assert f"{path} [skin vertices (as the neutral / first cache)]: expected {v} vertices, found {v - 3}" in _errors(report)


def test_nan_in_cache(ds):
    shot = _shots()[0]
    path = ds / "data/synth/cache/skin" / shot / f"{shot}.npy"
    x = np.load(path)
    x[5, 17, 2] = np.nan
    np.save(path, x)
    report = check_dataset(_cfg(ds))
    assert f"{path} [frame 5, vertex 17]: expected finite positions, found 1 NaN/Inf values" in _errors(report)


def test_truncated_maya_cache_reported(ds):
    mc = ds / "data/synth/cache/skin/s03_neutral/s03_neutral.mc"
    mc.write_bytes(mc.read_bytes()[:-100])
    report = check_dataset(_cfg(ds))
    assert "s03_neutral.mc" in _errors(report) and "truncated" in _errors(report)


def test_corrupt_and_empty_wav(ds):
    audio = ds / "data/synth/audio"
    (audio / f"{_shots()[0]}.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    soundfile.write(audio / f"{_shots()[1]}.wav", np.zeros(0, np.float32), 16000, subtype="PCM_16")
    (audio / f"{_shots()[2]}.wav").write_bytes(b"garbage, not audio")
    errors = _errors(check_dataset(_cfg(ds)))
    assert f"{audio / _shots()[0]}.wav [chunk 'fmt ' at byte 12]: expected 1651663207 bytes of data" in errors
    assert f"{audio / _shots()[2]}.wav: expected a readable audio file (WAV)" in errors
    assert f"{audio / _shots()[1]}.wav [samples]: expected at least one audio sample, found an empty track" in errors


def test_audio_duration_mismatch(ds):
    shot = _shots()[2]
    path = ds / "data/synth/audio" / f"{shot}.wav"
    wav, sr = soundfile.read(path, dtype="int16")
    soundfile.write(path, wav[: -sr // 10], sr, subtype="PCM_16")  # 0.1 s short: 3 frames
    frames = synthetic.shot_frames(0)[shot]
    errors = _errors(check_dataset(_cfg(ds)))
    assert f"{path} [duration]: expected {frames / 30:.3f} s (the {frames} frames of the skin cache at 30 fps)" in errors


def test_truncated_wav_reported(ds):
    shot = _shots()[1]
    path = ds / "data/synth/audio" / f"{shot}.wav"
    raw = path.read_bytes()
    path.write_bytes(raw[:-200])  # 100 samples short: within one frame, so only the layout check sees it
    errors = _errors(check_dataset(_cfg(ds)))
    assert f"{path} [chunk 'data' at byte 36]: expected {len(raw) - 44} bytes of data (its header's size), found {len(raw) - 244} bytes present" in errors


def test_duration_checked_for_clips_with_other_audio_names(ds):
    shot = _shots()[0]
    wav, sr = soundfile.read(ds / "data/synth/audio" / f"{shot}.wav", dtype="int16")
    other = ds / "data/synth/audio/aug/voice1" / f"{shot}.wav"
    other.parent.mkdir(parents=True)
    soundfile.write(other, wav[: len(wav) // 2], sr, subtype="PCM_16")  # training reads it from frame 0 of the shot
    clips = [("synth", shot, (0, 10), "voice1", "en", f"aug/voice1/{shot}.wav", 0)]
    frames = synthetic.shot_frames(0)[shot]
    errors = _errors(check_dataset(_cfg(ds), cfg_train=ml_collections.ConfigDict({"CLIPS": clips})))
    assert f"{other} [duration]: expected {frames / 30:.3f} s (the {frames} frames of the skin cache at 30 fps) within one frame, found {len(wav) // 2 / sr:.3f} s" in errors


def test_unresolvable_emotion_and_bad_map(ds):
    report = check_dataset(_cfg(ds, SHOT_EMOTION_NAMES=["joy", "anger", "sadness"]))
    assert "shot 's01_neutral' of actor 'synth' [emotion]" in _errors(report)
    report = check_dataset(_cfg(ds, SHOT_EMOTION_MAP=[("synth", "s02_neutral", "boredom")]))
    assert "SHOT_EMOTION_MAP [('synth', 's02_neutral')]" in _errors(report) and "'boredom'" in _errors(report)


def test_vertex_index_out_of_range(ds):
    path = ds / "data/synth/geom/skin/lip_dist_vertex_list.json"
    path.write_text('{"upper": [0, 1], "lower": [2, 99999]}')
    np.save(ds / "data/synth/cache/skin/s02_neutral/s02_neutral.npy", np.full((3, 4, 3), np.inf, np.float32))
    errors = _errors(check_dataset(_cfg(ds)))
    v = np.load(ds / "data/synth/geom/skin/neutral_pose.npy").shape[0]
    assert f"{path}: expected vertex indices in [0, {v}), found 1 out of range, e.g. 99999" in errors
    assert "s02_neutral.npy [frame 0, vertex 0]: expected finite positions" in errors  # checks go on


def test_tongue_vertex_count_and_jaw_anim_shot_missing(ds):
    shot = _shots()[0]
    path = ds / "data/synth/cache/tongue" / shot / f"{shot}.npy"
    np.save(path, np.load(path)[:, :10])
    jaw = ds / "data/synth/xform/jaw_keypoints_cache_all.npz"
    with np.load(jaw) as data:
        kept = {k: data[k] for k in data.files if k != _shots()[1]}
    np.savez(jaw, **kept)
    errors = _errors(check_dataset(_cfg(ds)))
    assert f"{path} [tongue vertices (as the tongue neutral)]: expected 288 vertices, found 10" in errors
    assert f"{jaw} [{_shots()[1]}]: expected an entry for every skin shot, found none" in errors


def test_tongue_only_shot_is_a_warning(ds):
    caches.write_npy(ds / "data/synth/cache/tongue/extra/extra.npy", np.zeros((3, 288, 3), np.float32))
    report = check_dataset(_cfg(ds))
    assert report.ok and any("extra.npy [shot]" in w for w in report.warnings)


def test_script_exit_codes(ds, tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("check_dataset_script", ROOT / "scripts" / "check_dataset.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    actor = ds / "data/synth"
    (cfg_dir / "config_dataset.py").write_text(
        "def get_config():\n    return "
        + repr(
            {
                "AUDIO_ROOT": {"synth": str(actor / "audio")},
                "SKIN_CACHE_ROOT": {"synth": str(actor / "cache/skin")},
                "SHOT_EMOTION_NAMES": ["neutral", "joy", "anger", "sadness"],
                "CACHE_FPS": {"synth": 30.0},
                "ACTOR_NAMES": ["synth"],
            }
        )
        + "\n"
    )
    assert script.main(["--config", str(cfg_dir)]) == 0
    out = capsys.readouterr().out
    assert "dataset OK" in out and "s02_neutral" in out
    (actor / "audio" / "s01_neutral.wav").write_bytes(b"not a wav")
    caches.write_npy(actor / "cache/skin/s04_neutral/s04_neutral.npy", np.zeros((3, 5, 3), np.float32))
    assert script.main(["--config", str(cfg_dir)]) == 1
    err = capsys.readouterr().err
    assert "s01_neutral.wav: expected a readable audio file" in err and "s04_neutral.npy" in err
    assert "dataset check failed: " in err
