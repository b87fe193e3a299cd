"""Preprocessing of the example.

Same values as the original's configs/example-diffusion/config_preproc.py. Run:
    python scripts/preproc.py --config configs/example-diffusion --actor claire
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            "RUN_NAME": "example",
            "RUN_INFO": "",
        }
    )
