"""Training checks its clips' audio as scripts/check_dataset.py does, before the first step."""

from __future__ import annotations

import pytest
import soundfile as sf

from a2f_jax.errors import DataError
from a2f_jax.train.dataset import build_clips, load_training_data
from test_sampler_regression import FPS, SR, _write_dataset  # the tiny preproc run + audio

# _write_dataset's shots: s0_neutral (40 frames, 1.333 s), s1_joy (25 frames, 0.833 s).


def _halve(path) -> int:
    """Keep the first half of a wav's samples; returns how many are left."""
    x, sr = sf.read(path, dtype="float32")
    sf.write(path, x[: len(x) // 2], sr, subtype="FLOAT")
    return len(x) // 2


def test_audio_half_as_long_as_its_animation_is_refused(tmp_path):
    train, dataset, _ = _write_dataset(tmp_path)
    left = _halve(tmp_path / "audio/s0_neutral.wav")
    with pytest.raises(DataError) as err:
        load_training_data(train, dataset)
    msg = str(err.value)
    assert "config_train.CLIPS: 1 clip(s) fail the audio checks of scripts/check_dataset.py" in msg
    assert (
        f"CLIPS[0] (shot 's0_neutral'): {tmp_path / 'audio/s0_neutral.wav'} [duration]: expected {40 / FPS:.3f} s "
        f"(the 40 frames of the skin cache at 30 fps) within one frame, found {left / SR:.3f} s"
    ) in msg


def test_every_failing_clip_is_listed(tmp_path):
    train, dataset, _ = _write_dataset(tmp_path)
    _halve(tmp_path / "audio/s0_neutral.wav")
    torn = tmp_path / "audio/s1_joy.wav"
    torn.write_bytes(torn.read_bytes()[:-400])  # 100 float samples short: the data chunk is torn
    with pytest.raises(DataError) as err:
        load_training_data(train, dataset)
    msg = str(err.value)
    assert "2 clip(s) fail" in msg
    assert "CLIPS[0] (shot 's0_neutral')" in msg and "[duration]" in msg
    assert "CLIPS[1] (shot 's1_joy')" in msg and "[chunk 'data' at byte" in msg and "(file truncated)" in msg


def test_validation_clips_are_checked_too(tmp_path):
    train, dataset, _ = _write_dataset(tmp_path)
    data = load_training_data(train, dataset)
    _halve(tmp_path / "audio/s1_joy.wav")
    entries = [("a", "s1_joy", (0, 24), "a", "en", "s1_joy.wav", 0)]
    with pytest.raises(DataError, match=r"(?s)config_train\.VALIDATION_CLIPS: 1 clip.*VALIDATION_CLIPS\[0\] \(shot 's1_joy'\)"):
        build_clips(entries, data, dataset, key="VALIDATION_CLIPS")



def test_torn_preproc_json_is_a_data_error(tmp_path):
    train, dataset, _ = _write_dataset(tmp_path)
    shots = tmp_path / "preproc/deploy/shots.json"
    shots.write_text(shots.read_text()[:-5])
    with pytest.raises(DataError, match=r"shots\.json: expected JSON, found JSONDecodeError"):
        load_training_data(train, dataset)
    shots.write_text('{"s0_neutral": 40}')
    with pytest.raises(DataError, match=r"shots\.json: expected a JSON list of \[actor, shot, len, fps, emotion\] rows"):
        load_training_data(train, dataset)
