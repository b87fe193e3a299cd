"""Inference / deploy post-processing of the example.

Same values as the original's configs/example-diffusion/config_inference.py. Run:
    python scripts/infer.py --config configs/example-diffusion
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            "CONDITION": "claire",
            "ACTOR_NAME": "claire",
            "EMOTION_LABEL": "neutral",
            "TIMESTEP_RESPACING": "2",
            "INFERENCE_MODE": "offline",
            "AUDIO_PATH": "$A2F_DATASETS_ROOT/Audio2Face-3D-Dataset-v1.0.0-claire/data/claire/audio/eg1_neutral.wav",
            "INFERENCE_OUTPUT_ROOT": "$A2F_WORKSPACE_ROOT/output_inference",
        }
    )
