"""Inference / deploy settings for the synthetic dataset (diffusion)."""


def get_config() -> dict:
    return {
        "CONDITION": "synth",
        "ACTOR_NAME": "synth",
        "EMOTION_LABEL": "neutral",
        "TIMESTEP_RESPACING": "2",
        "INFERENCE_MODE": "offline",
        # A held-out shot (VALIDATION_CLIPS).
        "AUDIO_PATH": "$A2F_DATASETS_ROOT/a2f-synthetic/data/synth/audio/s22_neutral.wav",
    }
