"""ActorData: defaults when files are absent, validation of vertex lists and counts, shot emotions."""

from __future__ import annotations

import json

import ml_collections
import numpy as np
import pytest

from a2f_jax.config import dataset as dataset_base
from a2f_jax.config import preproc as preproc_base
from a2f_jax.data import actor as actor_lib
from a2f_jax.data import caches
from a2f_jax.data.actor import ActorData, ActorSettings, ShotEmotions, shot_emotion
from a2f_jax.errors import ConfigError, DataError

NAMES = ["neutral", "amazement", "anger", "cheekiness", "joy"]


def _cfg(**kwargs) -> ml_collections.ConfigDict:
    """A dataset config: the base with these values."""
    base = dataset_base.base_dict()
    base.update({"SHOT_EMOTION_NAMES": NAMES, "SHOT_EMOTION_MAP": [], "ACTOR_NAMES": ["a"], "CACHE_FPS": {"a": 30.0}})
    base.update(kwargs)
    return ml_collections.ConfigDict(base)


def _load(cfg, actor: str, preproc=None) -> ActorData:
    return ActorData.load(ActorSettings.from_configs(cfg, actor, preproc))


def _emotions(cfg) -> ShotEmotions:
    return ShotEmotions.from_configs(cfg)


# ---------------------------------------------------------------------------------------------
# Emotions (docs/dataset_format.md)
# ---------------------------------------------------------------------------------------------


def test_emotion_substring_first_match_in_names_order():
    cfg = _cfg()
    assert shot_emotion(_emotions(cfg), "a", "cp24_joy") == "joy"
    assert shot_emotion(_emotions(cfg), "a", "cp42_fastneutral") == "neutral"  # substring, not suffix
    assert shot_emotion(_emotions(cfg), "a", "x_joy_anger") == "anger"  # anger precedes joy in NAMES
    assert shot_emotion(_emotions(cfg), "a", "cp99_mystery") == "neutral"  # fallback
    assert shot_emotion(_emotions(_cfg(SHOT_EMOTION_NAMES=["joy"])), "a", "cp1_x") == "neutral"  # even if not listed


def test_emotion_map_first_and_tuple_or_list():
    cfg = _cfg(SHOT_EMOTION_MAP=[("a", "cp24_joy", "anger"), ["b", "cp1_neutral", "joy"]])
    assert shot_emotion(_emotions(cfg), "a", "cp24_joy") == "anger"  # map beats the substring
    assert shot_emotion(_emotions(cfg), "b", "cp1_neutral") == "joy"
    assert shot_emotion(_emotions(cfg), "b", "cp24_joy") == "joy"  # other actor: substring rule


def test_emotion_map_unknown_emotion_is_an_error():
    cfg = _cfg(SHOT_EMOTION_MAP=[("a", "take7", "happiness")])
    with pytest.raises(ConfigError) as err:
        shot_emotion(_emotions(cfg), "a", "take7")
    msg = str(err.value)
    assert "SHOT_EMOTION_MAP" in msg and "'take7'" in msg and "'happiness'" in msg and "amazement" in msg


def test_unresolvable_emotion_rejected_by_check():
    cfg = _cfg(SHOT_EMOTION_NAMES=["joy", "anger"])
    assert actor_lib.check_emotion_known(_emotions(cfg), "a", "s1_joy") == "joy"
    with pytest.raises(ConfigError, match=r"shot 'take1'.*fallback 'neutral' is not in the list"):
        actor_lib.check_emotion_known(_emotions(cfg), "a", "take1")


# ---------------------------------------------------------------------------------------------
# ActorData
# ---------------------------------------------------------------------------------------------


def _skin_root(tmp_path, num_verts=6, shots=("s1", "s2")):
    root = tmp_path / "cache" / "skin"
    for i, shot in enumerate(shots):
        caches.write_npy(root / shot / f"{shot}.npy", np.full((3 + i, num_verts, 3), float(i), np.float32))
    return root


def test_defaults_when_only_skin_cache(tmp_path):
    root = _skin_root(tmp_path)
    data = _load(_cfg(SKIN_CACHE_ROOT={"a": str(root)}, AUDIO_ROOT={"a": str(tmp_path)}), "a")
    assert data.num_skin_verts == 6
    assert data.lip_open_pose_delta.shape == (6, 3) and not data.lip_open_pose_delta.any()
    assert data.eye_close_pose_delta.shape == (6, 3) and not data.eye_close_pose_delta.any()
    assert data.jaw_keypoints_neutral.shape == (5, 3) and not data.jaw_keypoints_neutral.any()
    assert data.eye_blink_keys.shape == (10,) and data.eye_saccade_rotations.shape == (5000, 2)
    assert data.eye_blink_keys.dtype == np.float32
    for absent in (data.skin_neutral, data.lip_dist_verts, data.tongue_neutral, data.jaw_anim, data.eye_anim, data.blendshapes_skin):
        assert absent is None
    assert not data.has_tongue
    assert data.skin_shots() == ["s1", "s2"]


def test_default_shapes_follow_preproc_config(tmp_path):
    root = _skin_root(tmp_path)
    pre = ml_collections.ConfigDict({**preproc_base.base_dict(), "DEFAULT_JAW_KEYPOINTS_SHAPE": [4, 3],
                                     "DEFAULT_EYE_BLINK_KEYS_SHAPE": [7], "DEFAULT_EYE_SACCADE_ROT_SHAPE": [10, 2]})
    data = _load(_cfg(SKIN_CACHE_ROOT={"a": str(root)}), "a", pre)
    assert data.jaw_keypoints_neutral.shape == (4, 3) and data.eye_blink_keys.shape == (7,)
    assert data.eye_saccade_rotations.shape == (10, 2)


def _write_json(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def test_full_actor_loads_and_validates(tmp_path):
    root = _skin_root(tmp_path)
    np.save(tmp_path / "neutral.npy", np.zeros((6, 3), np.float32))
    np.save(tmp_path / "tongue.npy", np.zeros((8, 3), np.float32))
    np.save(tmp_path / "lip_open.npy", np.ones((6, 3), np.float32))
    np.savez(tmp_path / "jaw.npz", s1=np.zeros((3, 5, 3), np.float32))
    np.save(tmp_path / "jaw_neutral.npy", np.ones((5, 3), np.float32))
    np.savez(tmp_path / "eye.npz", s1=np.zeros((3, 2, 2), np.float32))
    cfg = _cfg(
        SKIN_CACHE_ROOT={"a": str(root)},
        SKIN_NEUTRAL_FPATH={"a": str(tmp_path / "neutral.npy")},
        SKIN_LIP_OPEN_POSE_DELTA_FPATH={"a": str(tmp_path / "lip_open.npy")},
        SKIN_LIP_DIST_VERTEX_LIST_FPATH={"a": _write_json(tmp_path / "ld.json", {"upper": [0, 1], "lower": [2, 3]})},
        SKIN_LIP_SIZE_VERTEX_LIST_FPATH={
            "a": _write_json(tmp_path / "ls.json", {"upper_lip": {"top": [4], "bottom": [0]}, "lower_lip": {"top": [2], "bottom": [5]}})
        },
        SKIN_EYE_DIST_VERTEX_LIST_FPATH={"a": _write_json(tmp_path / "ed.json", {"upper": [4, 5], "lower": [0, 1]})},
        TONGUE_CACHE_ROOT={"a": str(root)},
        TONGUE_NEUTRAL_FPATH={"a": str(tmp_path / "tongue.npy")},
        TONGUE_RIGID_VERTEX_LIST_FPATH={"a": _write_json(tmp_path / "rigid.json", [0, 1, 2, 7])},
        JAW_KEYPOINTS_NEUTRAL_FPATH={"a": str(tmp_path / "jaw_neutral.npy")},
        JAW_ANIM_DATA_FPATH={"a": str(tmp_path / "jaw.npz")},
        EYE_ANIM_DATA_FPATH={"a": str(tmp_path / "eye.npz")},
    )
    data = _load(cfg, "a")
    assert data.lip_dist_verts == {"upper": [0, 1], "lower": [2, 3]}
    assert data.lip_size_verts["lower_lip"]["bottom"] == [5]
    assert data.tongue_rigid_verts == [0, 1, 2, 7] and data.has_tongue
    assert data.lip_open_pose_delta.sum() == 18 and not data.eye_close_pose_delta.any()
    assert set(data.jaw_anim) == {"s1"} and data.eye_anim["s1"].shape == (3, 2, 2)
    assert data.paths["SKIN_NEUTRAL_FPATH"].name == "neutral.npy" and data.paths["EYE_BLINK_KEYS_FPATH"] is None


def test_vertex_index_out_of_range(tmp_path):
    root = _skin_root(tmp_path)
    path = _write_json(tmp_path / "lip_dist.json", {"upper": [0, 1], "lower": [2, 6]})
    cfg = _cfg(SKIN_CACHE_ROOT={"a": str(root)}, SKIN_LIP_DIST_VERTEX_LIST_FPATH={"a": path})
    with pytest.raises(DataError) as err:
        _load(cfg, "a")
    msg = str(err.value)
    assert "lip_dist.json" in msg and "vertex indices in [0, 6)" in msg and "1 out of range, e.g. 6" in msg


def test_tongue_rigid_index_out_of_range_and_too_few(tmp_path):
    root = _skin_root(tmp_path)
    np.save(tmp_path / "tongue.npy", np.zeros((8, 3), np.float32))
    cfg = _cfg(
        SKIN_CACHE_ROOT={"a": str(root)},
        TONGUE_NEUTRAL_FPATH={"a": str(tmp_path / "tongue.npy")},
        TONGUE_RIGID_VERTEX_LIST_FPATH={"a": _write_json(tmp_path / "rigid.json", [0, 1, 2, 8])},
    )
    with pytest.raises(DataError, match=r"rigid\.json: expected vertex indices in \[0, 8\)"):
        _load(cfg, "a")
    cfg.TONGUE_RIGID_VERTEX_LIST_FPATH = {"a": _write_json(tmp_path / "rigid2.json", [0, 1])}
    with pytest.raises(DataError, match="at least 4 rigid vertex indices, found 2"):
        _load(cfg, "a")


def test_delta_vertex_count_mismatch(tmp_path):
    root = _skin_root(tmp_path)
    np.save(tmp_path / "eye_close.npy", np.zeros((7, 3), np.float32))
    cfg = _cfg(SKIN_CACHE_ROOT={"a": str(root)}, SKIN_EYE_CLOSE_POSE_DELTA_FPATH={"a": str(tmp_path / "eye_close.npy")})
    with pytest.raises(DataError, match=r"eye_close\.npy \[shape\]: expected \[6, 3\], found \[7, 3\]"):
        _load(cfg, "a")


def test_malformed_lists_and_missing_file(tmp_path):
    root = _skin_root(tmp_path)
    cfg = _cfg(SKIN_CACHE_ROOT={"a": str(root)}, SKIN_EYE_DIST_VERTEX_LIST_FPATH={"a": _write_json(tmp_path / "e.json", {"upper": [0, 1]})})
    with pytest.raises(DataError, match=r'e\.json: expected \{"upper"'):
        _load(cfg, "a")
    cfg.SKIN_EYE_DIST_VERTEX_LIST_FPATH = {"a": _write_json(tmp_path / "e2.json", {"upper": [0, 1.5], "lower": [2, 3]})}
    with pytest.raises(DataError, match=r"e2\.json \[upper\]: expected a list of vertex indices"):
        _load(cfg, "a")
    cfg.SKIN_EYE_DIST_VERTEX_LIST_FPATH = {"a": str(tmp_path / "gone.json")}
    with pytest.raises(DataError, match=r"gone\.json \[SKIN_EYE_DIST_VERTEX_LIST_FPATH\[a\]\]: expected an existing file"):
        _load(cfg, "a")


def test_jaw_anim_shape_checked(tmp_path):
    root = _skin_root(tmp_path)
    np.savez(tmp_path / "jaw.npz", s1=np.zeros((3, 4, 3), np.float32))
    cfg = _cfg(SKIN_CACHE_ROOT={"a": str(root)}, JAW_ANIM_DATA_FPATH={"a": str(tmp_path / "jaw.npz")})
    with pytest.raises(DataError, match=r"jaw\.npz \[s1\]: expected \[T, 5, 3\] keypoint deltas, found \[3, 4, 3\]"):
        _load(cfg, "a")


def test_configured_but_missing_root(tmp_path):
    root = _skin_root(tmp_path)
    cfg = _cfg(SKIN_CACHE_ROOT={"a": str(root)}, TONGUE_CACHE_ROOT={"a": str(tmp_path / "no_tongue")})
    with pytest.raises(DataError, match=r"no_tongue \[TONGUE_CACHE_ROOT\[a\]\]: expected an existing folder"):
        _load(cfg, "a")


def test_no_skin_cache_root_is_a_config_error():
    with pytest.raises(ConfigError, match="SKIN_CACHE_ROOT"):
        _load(_cfg(), "a")


def test_settings_from_loaded_configs_and_core_only(tmp_path):
    """From a loaded (locked) config: the actor's entries only, the preproc shot lists; core_only keeps the
    skin caches and the audio."""
    root = _skin_root(tmp_path)
    cfg = _cfg(SKIN_CACHE_ROOT={"a": str(root), "b": "/elsewhere"}, AUDIO_ROOT={"a": str(tmp_path)},
               SKIN_NEUTRAL_FPATH={"a": str(tmp_path / "gone.npy")})
    pre = ml_collections.ConfigDict({**preproc_base.base_dict(), "SKIN_CACHE_SHOTS": {"a": ["s2"]}})
    cfg.lock()
    settings = ActorSettings.from_configs(cfg, "a", pre)
    assert settings.files == {"AUDIO_ROOT": str(tmp_path), "SKIN_CACHE_ROOT": str(root), "SKIN_NEUTRAL_FPATH": str(tmp_path / "gone.npy")}
    assert settings.skin_cache_shots == ("s2",) and settings.tongue_cache_shots == ()
    assert settings.jaw_keypoints_shape == (5, 3) and settings.emotions.names == tuple(NAMES)
    with pytest.raises(DataError, match="gone.npy"):
        ActorData.load(settings)
    data = ActorData.load(settings.core_only())
    assert data.skin_shots() == ["s2"] and data.skin_neutral is None and data.settings.actor == "a"
    with pytest.raises(ConfigError, match="a dict keyed by actor name"):
        ActorSettings.from_configs(_cfg(SKIN_CACHE_ROOT="/not/a/dict"), "a")
