"""Base of `config_inference.py` for diffusion networks: post-processing plus Python inference options."""

from __future__ import annotations

import ml_collections

from a2f_jax.config.inference_regression import postprocess_config


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(base_dict())


def base_dict() -> dict:
    return {
        "CONFIG": postprocess_config(upper_face_smoothing=0.003),
        # Python inference: conditioning actor, emotion, audio file and sampler.
        "CONDITION": None,
        "ACTOR_NAME": None,
        "EMOTION_LABEL": None,
        "TIMESTEP_RESPACING": None,
        "AUDIO_PATH": None,
        "NUM_DIFFUSION_STEPS": 2,
        "SKIP_STEPS": 0,
        "USE_DDIM": False,
        # "offline" or a streaming mode.
        "INFERENCE_MODE": None,
        "DETERMINISTIC_NOISE_PATH": None,
        "INFERENCE_OUTPUT_ROOT": "$A2F_WORKSPACE_ROOT/output_inference",
        "OUTPUT_MAYA_CACHE": True,
        "OUTPUT_NPY_FILE": False,
        # ONNX export.
        "USE_PER_FRAME_EMO_LABEL": True,
        # Noise as a graph input, for reproducible inference.
        "USE_EXTERNAL_NOISE_INPUT": True,
        # Output position deltas (original scale) instead of absolute positions.
        "USE_DELTA_OUTPUT": True,
    }
