"""Dataset: the built-in synthetic dataset, actor "synth".

Generate it first (seconds), then check and preprocess:
    python -m a2f_jax.data.synthetic "$A2F_DATASETS_ROOT/a2f-synthetic"
    python scripts/check_dataset.py --config configs/synthetic-regression
    python scripts/preproc.py --config configs/synthetic-regression --actor synth
"""

_SYNTH = "$A2F_DATASETS_ROOT/a2f-synthetic/data/synth"


def get_config() -> dict:
    return {
        "AUDIO_ROOT": {"synth": f"{_SYNTH}/audio"},
        "SKIN_CACHE_ROOT": {"synth": f"{_SYNTH}/cache/skin"},
        "SKIN_NEUTRAL_FPATH": {"synth": f"{_SYNTH}/geom/skin/neutral_pose.npy"},
        "SKIN_LIP_OPEN_POSE_DELTA_FPATH": {"synth": f"{_SYNTH}/geom/skin/lip_open_pose_delta.npy"},
        "SKIN_EYE_CLOSE_POSE_DELTA_FPATH": {"synth": f"{_SYNTH}/geom/skin/eye_close_pose_delta.npy"},
        "SKIN_LIP_DIST_VERTEX_LIST_FPATH": {"synth": f"{_SYNTH}/geom/skin/lip_dist_vertex_list.json"},
        "SKIN_LIP_SIZE_VERTEX_LIST_FPATH": {"synth": f"{_SYNTH}/geom/skin/lip_size_vertex_list.json"},
        "SKIN_EYE_DIST_VERTEX_LIST_FPATH": {"synth": f"{_SYNTH}/geom/skin/eye_dist_vertex_list.json"},
        "TONGUE_CACHE_ROOT": {"synth": f"{_SYNTH}/cache/tongue"},
        "TONGUE_NEUTRAL_FPATH": {"synth": f"{_SYNTH}/geom/tongue/neutral_pose.npy"},
        "TONGUE_RIGID_VERTEX_LIST_FPATH": {"synth": f"{_SYNTH}/geom/tongue/rigid_vertex_list.json"},
        "JAW_KEYPOINTS_NEUTRAL_FPATH": {"synth": f"{_SYNTH}/xform/jaw_keypoints_neutral.npy"},
        "JAW_ANIM_DATA_FPATH": {"synth": f"{_SYNTH}/xform/jaw_keypoints_cache_all.npz"},
        "EYE_ANIM_DATA_FPATH": {"synth": f"{_SYNTH}/xform/eye_rotations_all.npz"},
        "EYE_BLINK_KEYS_FPATH": {"synth": f"{_SYNTH}/xform/eye_blink_keys.npy"},
        "EYE_SACCADE_ROTATIONS_FPATH": {"synth": f"{_SYNTH}/xform/eye_saccade_rotations.npy"},
        "BLENDSHAPE_SKIN_FPATH": {"synth": f"{_SYNTH}/bs_data/bs_skin.npz"},
        "BLENDSHAPE_SKIN_CONFIG_FPATH": {"synth": f"{_SYNTH}/bs_data/bs_skin_config.json"},
        "BLENDSHAPE_TONGUE_FPATH": {"synth": f"{_SYNTH}/bs_data/bs_tongue.npz"},
        "BLENDSHAPE_TONGUE_CONFIG_FPATH": {"synth": f"{_SYNTH}/bs_data/bs_tongue_config.json"},
        "SHOT_EMOTION_NAMES": ["neutral", "joy", "anger", "sadness"],
        "SHOT_EMOTION_MAP": [],
        "CACHE_FPS": {"synth": 30.0},
        "ACTOR_NAMES": ["synth"],
        "TRANSFORM_SCALE": {"synth": {"skin": 1.0, "tongue": 1.0, "jaw": 1.0, "eye": 1.0}},
    }
