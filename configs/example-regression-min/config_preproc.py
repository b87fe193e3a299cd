"""Preprocessing of the example.

Same values as the original's configs/example-regression-min/config_preproc.py. Run:
    python scripts/preproc.py --config configs/example-regression-min --actor claire
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            "RUN_NAME": "example-min",
            "RUN_INFO": "Minimal preprocessing setup - only requires AUDIO_ROOT and SKIN_CACHE_ROOT",
        }
    )
