"""Inference / deploy settings for the synthetic dataset (regression)."""


def get_config() -> dict:
    return {
        "CONFIG": {
            "source_shot": "s01_neutral",
            "source_frame": 0,
        },
    }
