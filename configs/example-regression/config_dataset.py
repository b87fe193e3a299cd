"""Dataset of the example: the Claire dataset (Audio2Face-3D-Dataset-v1.0.0-claire) under $A2F_DATASETS_ROOT.

Same values as the original's configs/example-regression/config_dataset.py. Run:
    python scripts/preproc.py --config configs/example-regression --actor claire
"""

import ml_collections

_CLAIRE = "$A2F_DATASETS_ROOT/Audio2Face-3D-Dataset-v1.0.0-claire/data/claire"


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            "AUDIO_ROOT": {
                "claire": f"{_CLAIRE}/audio",
            },
            "SKIN_CACHE_ROOT": {
                "claire": f"{_CLAIRE}/cache/skin",
            },
            "SKIN_NEUTRAL_FPATH": {
                "claire": f"{_CLAIRE}/geom/skin/neutral_pose.npy",
            },
            "SKIN_LIP_OPEN_POSE_DELTA_FPATH": {
                "claire": f"{_CLAIRE}/geom/skin/lip_open_pose_delta.npy",
            },
            "SKIN_EYE_CLOSE_POSE_DELTA_FPATH": {
                "claire": f"{_CLAIRE}/geom/skin/eye_close_pose_delta.npy",
            },
            "SKIN_LIP_DIST_VERTEX_LIST_FPATH": {
                "claire": f"{_CLAIRE}/geom/skin/lip_dist_vertex_list.json",
            },
            "SKIN_LIP_SIZE_VERTEX_LIST_FPATH": {
                "claire": f"{_CLAIRE}/geom/skin/lip_size_vertex_list.json",
            },
            "SKIN_EYE_DIST_VERTEX_LIST_FPATH": {
                "claire": f"{_CLAIRE}/geom/skin/eye_dist_vertex_list.json",
            },
            "TONGUE_CACHE_ROOT": {
                "claire": f"{_CLAIRE}/cache/tongue",
            },
            "TONGUE_NEUTRAL_FPATH": {
                "claire": f"{_CLAIRE}/geom/tongue/neutral_pose.npy",
            },
            "TONGUE_RIGID_VERTEX_LIST_FPATH": {
                "claire": f"{_CLAIRE}/geom/tongue/rigid_vertex_list.json",
            },
            "JAW_KEYPOINTS_NEUTRAL_FPATH": {
                "claire": f"{_CLAIRE}/xform/jaw_keypoints_neutral.npy",
            },
            "JAW_ANIM_DATA_FPATH": {
                "claire": f"{_CLAIRE}/xform/jaw_keypoints_cache_all.npz",
            },
            "EYE_ANIM_DATA_FPATH": {
                "claire": f"{_CLAIRE}/xform/eye_rotations_all.npz",
            },
            "EYE_BLINK_KEYS_FPATH": {
                "claire": f"{_CLAIRE}/xform/eye_blink_keys.npy",
            },
            "EYE_SACCADE_ROTATIONS_FPATH": {
                "claire": f"{_CLAIRE}/xform/eye_saccade_rotations.npy",
            },
            "BLENDSHAPE_SKIN_FPATH": {
                "claire": f"{_CLAIRE}/bs_data/bs_skin.npz",
            },
            "BLENDSHAPE_SKIN_CONFIG_FPATH": {
                "claire": f"{_CLAIRE}/bs_data/bs_skin_config.json",
            },
            "BLENDSHAPE_TONGUE_FPATH": {
                "claire": f"{_CLAIRE}/bs_data/bs_tongue.npz",
            },
            "BLENDSHAPE_TONGUE_CONFIG_FPATH": {
                "claire": f"{_CLAIRE}/bs_data/bs_tongue_config.json",
            },
            "SHOT_EMOTION_NAMES": [
                "neutral",
                "amazement",
                "anger",
                "cheekiness",
                "disgust",
                "fear",
                "grief",
                "joy",
                "outofbreath",
                "pain",
                "sadness",
            ],
            "CACHE_FPS": {
                "claire": 30.0,
            },
            "ACTOR_NAMES": [
                "claire",
            ],
        }
    )
