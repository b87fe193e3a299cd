"""Dataset of the example: the Claire dataset (Audio2Face-3D-Dataset-v1.0.0-claire) under $A2F_DATASETS_ROOT.

Same values as the original's configs/example-diffusion-min/config_dataset.py. Run:
    python scripts/preproc.py --config configs/example-diffusion-min --actor claire
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
            "TRANSFORM_SCALE": {
                "claire": {
                    "skin": 1.0,
                    "tongue": 1.0,
                    "jaw": 1.0,
                    "eye": 1.0,
                },
            },
        }
    )
