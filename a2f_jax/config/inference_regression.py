"""Base of `config_inference.py` for regression networks: post-processing knobs of the deploy bundle."""

from __future__ import annotations

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(base_dict())


def postprocess_config(upper_face_smoothing: float) -> dict:
    """The post-processing CONFIG shared by both network types (they differ in one smoothing value)."""
    return {
        "input_strength": 1.3,
        "upper_face_smoothing": upper_face_smoothing,
        "lower_face_smoothing": 0.0023,
        "upper_face_strength": 1.0,
        "lower_face_strength": 1.7,
        "face_mask_level": 0.6,
        "face_mask_softness": 0.0085,
        "skin_strength": 1.1,
        "blink_strength": 1.0,
        "lower_teeth_strength": 1.3,
        "lower_teeth_height_offset": -0.1,
        "lower_teeth_depth_offset": 0.25,
        "lip_open_offset": -0.05,
        "tongue_strength": 1.5,
        "tongue_height_offset": 0.2,
        "tongue_depth_offset": -0.3,
        "eyeballs_strength": 1.0,
        "saccade_strength": 0.9,
        "right_eye_rot_x_offset": 0.0,
        "right_eye_rot_y_offset": -2.0,
        "left_eye_rot_x_offset": 0.0,
        "left_eye_rot_y_offset": 2.0,
        "eyelid_open_offset": 0.06,
        "eye_saccade_seed": 0,
    }


def base_dict() -> dict:
    config = postprocess_config(upper_face_smoothing=0.001)
    # The reference frame (shot name, frame index) for the neutral-ish pose; regression only.
    items = list(config.items())
    items[7:7] = [("source_shot", None), ("source_frame", None)]
    return {"CONFIG": dict(items)}
