"""Base of `config_dataset.py`: where each actor's data lives and what the dataset holds.

Per-actor parameters are dicts keyed by actor name; they are empty here and filled by the user.
"""

from __future__ import annotations

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(base_dict())


def base_dict() -> dict:
    return {
        # Audio: directory of <shot>.wav files (per actor).
        "AUDIO_ROOT": {},
        # Skin: animation caches (<root>/<shot>/<shot>.{npy,xml,pc2}) and geometry extras.
        "SKIN_CACHE_ROOT": {},
        "SKIN_NEUTRAL_FPATH": {},
        "SKIN_NEUTRAL_INFERENCE_FPATH": {},
        "SKIN_LIP_OPEN_POSE_DELTA_FPATH": {},
        "SKIN_EYE_CLOSE_POSE_DELTA_FPATH": {},
        "SKIN_LIP_DIST_VERTEX_LIST_FPATH": {},
        "SKIN_LIP_SIZE_VERTEX_LIST_FPATH": {},
        "SKIN_EYE_DIST_VERTEX_LIST_FPATH": {},
        # Tongue.
        "TONGUE_CACHE_ROOT": {},
        "TONGUE_NEUTRAL_FPATH": {},
        "TONGUE_NEUTRAL_INFERENCE_FPATH": {},
        "TONGUE_RIGID_VERTEX_LIST_FPATH": {},
        # Jaw.
        "JAW_KEYPOINTS_NEUTRAL_FPATH": {},
        "JAW_ANIM_DATA_FPATH": {},
        # Eyes.
        "EYE_ANIM_DATA_FPATH": {},
        "EYE_BLINK_KEYS_FPATH": {},
        "EYE_SACCADE_ROTATIONS_FPATH": {},
        # Blendshapes (passed through to the deploy bundle).
        "BLENDSHAPE_SKIN_FPATH": {},
        "BLENDSHAPE_SKIN_CONFIG_FPATH": {},
        "BLENDSHAPE_TONGUE_FPATH": {},
        "BLENDSHAPE_TONGUE_CONFIG_FPATH": {},
        # Emotions performed in the shots; a shot's emotion is the first name that is a substring
        # of the shot name, unless SHOT_EMOTION_MAP lists (actor, shot, emotion) for it.
        "SHOT_EMOTION_NAMES": ["neutral"],
        "SHOT_EMOTION_MAP": [],
        # Frame rate of every animation cache (per actor).
        "CACHE_FPS": {},
        "ACTOR_NAMES": [],
        # {"actor": {"channel": scale}} applied to the target channels.
        "TRANSFORM_SCALE": {},
    }
