"""Base of `config_preproc.py`: skin/tongue PCA preprocessing of one actor."""

from __future__ import annotations

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(base_dict())


def base_dict() -> dict:
    return {
        "RUN_NAME": "default",
        # Written verbatim to <run>/configs/info.txt.
        "RUN_INFO": "",
        # Skin. Per-actor dicts; a missing actor means "use the full-resolution data / all shots /
        # all vertices / the variance threshold".
        "SKIN_PRUNE_CACHE_ROOT": {},
        "SKIN_PRUNE_MESH_MASK_FPATH": {},
        "SKIN_CACHE_SHOTS": {},
        "SKIN_PRUNE_CACHE_SHOTS": {},
        "SKIN_FORCE_COMPONENTS": {},
        "SKIN_PRUNE_SIM_DIST": 4.0,
        "SKIN_SELECT_DISTINCT_MAX_ITER": 787,
        "SKIN_PCA_VARIANCE_THRESHOLD": 0.9995,
        # Tongue.
        "TONGUE_CACHE_SHOTS": {},
        "TONGUE_FORCE_COMPONENTS": {},
        "TONGUE_PCA_VARIANCE_THRESHOLD": 0.9995,
        # Shapes of the zero placeholders written when the data is absent.
        "DEFAULT_JAW_KEYPOINTS_SHAPE": (5, 3),
        "DEFAULT_EYE_BLINK_KEYS_SHAPE": (10,),
        "DEFAULT_EYE_SACCADE_ROT_SHAPE": (5000, 2),
        "DEFAULT_TONGUE_PCA_SHAPE": (10, 520, 3),
        "PREPROC_OUTPUT_ROOT": "$A2F_WORKSPACE_ROOT/output_preproc",
        "VERBOSE": False,
    }
