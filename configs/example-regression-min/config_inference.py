"""Inference / deploy post-processing of the example.

Same values as the original's configs/example-regression-min/config_inference.py. Run:
    python scripts/infer.py --config configs/example-regression-min
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            "CONFIG": {
                "source_shot": "cp1_neutral",
                "source_frame": 220,
            },
        }
    )
