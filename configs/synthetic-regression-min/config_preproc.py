"""Preprocessing of the synthetic dataset:
    python scripts/preproc.py --config configs/synthetic-regression-min --actor synth
"""


def get_config() -> dict:
    return {
        "RUN_NAME": "synthetic-min",
        "RUN_INFO": "Built-in synthetic dataset (a2f_jax.data.synthetic, seed 0)",
    }
