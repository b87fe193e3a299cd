"""Small output formats of preprocessing: the JSON layout, shots.json / clips template text, emotions,
transform parameters, and the quick benchmark."""

import json

import ml_collections
import numpy as np
import pytest

from a2f_jax.errors import ConfigError
from a2f_jax.preproc.deploy_artifacts import (
    build_clips_template,
    build_shots_json,
    shot_emotion,
    transform_channels,
    transform_params,
)
from a2f_jax.preproc.jsonfmt import dumps_pretty


def test_pretty_json_layout():
    obj = {"a": [1, 2.5], "b": ["x", "y"], "c": {}, "d": [], "e": [[1, 2], [3]], "f": [{"k": "v" * 130}]}
    text = dumps_pretty(obj)
    assert json.loads(text) == obj
    assert '    "a": [1, 2.5],\n' in text
    assert '    "b": [\n        "x",\n        "y"\n    ],\n' in text
    assert '"c": {},' in text and '"d": [],' in text and '"e": [[1, 2], [3]],' in text
    assert '    "f": [\n        {\n' in text  # over 120 characters: one item per line
    assert not text.endswith("\n")
    with pytest.raises(TypeError):
        dumps_pretty({"x": np.float32(1.0)})


def test_shots_json_text_is_the_originals():
    text = build_shots_json("claire", {"cp10_neutral": 349, "cp1_neutral": 12}, 30.0, {"cp10_neutral": "neutral", "cp1_neutral": "neutral"})
    assert text == '[\n    ["claire", "cp10_neutral", 349, 30.0, "neutral"],\n    ["claire", "cp1_neutral", 12, 30.0, "neutral"]\n]\n'
    assert build_shots_json("claire", {}, 30.0, {}) == "[\n]\n"


def test_clips_template_with_aug_voices(tmp_path):
    for voice, name in (("v2", "cp1_neutral.wav"), ("v1", "x_cp1_neutral_y.wav"), ("v1", "other.wav")):
        (tmp_path / "aug" / voice).mkdir(parents=True, exist_ok=True)
        (tmp_path / "aug" / voice / name).write_bytes(b"")
    text = build_clips_template("claire", {"cp1_neutral": 5, "cp2_joy": 3}, str(tmp_path))
    lines = text.splitlines()
    assert lines[0] == "CLIPS = ["
    assert lines[1] == '    ("claire", "cp1_neutral", (0, 4), "claire", "en", "cp1_neutral.wav", 0),  # Shot: [0, 4]'
    assert lines[3] == "    " + "#" * 116
    assert lines[4] == '    ("claire", "cp1_neutral", (0, 4), "aug_v1", "en", "aug/v1/x_cp1_neutral_y.wav", 0),  # Shot: [0, 4]'
    assert lines[6] == '    ("claire", "cp1_neutral", (0, 4), "aug_v2", "en", "aug/v2/cp1_neutral.wav", 0),  # Shot: [0, 4]'
    assert lines[-1] == "]" and len(lines) == 8


def test_emotion_resolution():
    ds = ml_collections.ConfigDict({"SHOT_EMOTION_NAMES": ["neutral", "joy"], "SHOT_EMOTION_MAP": [["a", "s_joy", "neutral"]]})
    assert shot_emotion(ds, "a", "s_joy") == "neutral"  # the map wins
    assert shot_emotion(ds, "b", "s_joy") == "joy"
    assert shot_emotion(ds, "b", "cp42_fastneutral") == "neutral"
    assert shot_emotion(ds, "b", "s_sad") == "neutral"
    bad = ml_collections.ConfigDict({"SHOT_EMOTION_NAMES": ["neutral"], "SHOT_EMOTION_MAP": [["a", "s", "joy"]]})
    with pytest.raises(ConfigError, match="SHOT_EMOTION_MAP"):
        shot_emotion(bad, "a", "s")


def test_transform_params_values_and_types():
    ref = np.array([[0.0, 1.0, 2.0], [2.0, 5.0, 2.0]], np.float32)
    translate, scale = transform_params(ref, 0.5)
    assert translate == [1.0, 3.0, 2.0] and all(type(v) is float for v in translate)
    assert type(scale) is float and scale == 4.0  # max |ref - mean| = 2, / 0.5
    assert transform_params(np.zeros((4, 2), np.float32), 1) == ([0.0, 0.0], 1.0)


def test_transform_channels_order_and_errors():
    ds = ml_collections.ConfigDict({"TRANSFORM_SCALE": {"a": {"skin": 1.0, "tongue": 2.0, "eye": 1.0}}})
    assert transform_channels(ds, None, "a") == [("skin", 1.0), ("tongue", 2.0), ("eye", 1.0)]
    mods = {"TRANSFORM_SCALE": {"a": {"eye": 1.0, "tongue": 2.0, "skin": 1.0}}}
    assert [c for c, _ in transform_channels(ds, mods, "a")] == ["eye", "tongue", "skin"]
    assert [c for c, _ in transform_channels(ds, None, "other")] == ["skin", "tongue", "jaw", "eye"]
    with pytest.raises(ConfigError, match="'lips'"):
        transform_channels(ml_collections.ConfigDict({"TRANSFORM_SCALE": {"a": {"skin": 1, "tongue": 1, "lips": 1}}}), None, "a")
    with pytest.raises(ConfigError, match="'tongue' channel"):
        transform_channels(ml_collections.ConfigDict({"TRANSFORM_SCALE": {"a": {"skin": 1}}}), None, "a")


def test_quick_benchmark_runs():
    from a2f_jax.benchmarks.preproc import BENCHMARKS

    result = BENCHMARKS["claire_size"](True)
    json.dumps(result)
    assert result["frames"] == 360 and result["preproc_peak_rss_mb"] > 0
    assert 0 < result["pruned_skin_frames"] <= 360


def test_npz_dict_accepts_any_shot_name(tmp_path):
    from a2f_jax.preproc.sources import save_npz_dict

    arrays = {"file": np.ones((2, 3), np.float32), "path": np.zeros((1, 3), np.float32), "cp1_neutral": np.arange(3.0)}
    save_npz_dict(tmp_path / "c.npz", arrays)
    with np.load(tmp_path / "c.npz") as f:
        assert f.files == ["file", "path", "cp1_neutral"]
        for k, v in arrays.items():
            np.testing.assert_array_equal(f[k], v)
            assert f[k].dtype == v.dtype
