"""Dataset: the built-in synthetic dataset (audio and skin only), actor "synth".

Generate it first (seconds), then check and preprocess:
    python -m a2f_jax.data.synthetic "$A2F_DATASETS_ROOT/a2f-synthetic-min" --min
    python scripts/check_dataset.py --config configs/synthetic-diffusion-min
    python scripts/preproc.py --config configs/synthetic-diffusion-min --actor synth
"""

_SYNTH = "$A2F_DATASETS_ROOT/a2f-synthetic-min/data/synth"


def get_config() -> dict:
    return {
        "AUDIO_ROOT": {"synth": f"{_SYNTH}/audio"},
        "SKIN_CACHE_ROOT": {"synth": f"{_SYNTH}/cache/skin"},
        "SHOT_EMOTION_NAMES": ["neutral", "joy", "anger", "sadness"],
        "SHOT_EMOTION_MAP": [],
        "CACHE_FPS": {"synth": 30.0},
        "ACTOR_NAMES": ["synth"],
    }
