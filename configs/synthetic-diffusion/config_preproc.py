"""Preprocessing of the synthetic dataset:
    python scripts/preproc.py --config configs/synthetic-diffusion --actor synth
"""


def get_config() -> dict:
    return {
        "RUN_NAME": "synthetic",
        "RUN_INFO": "Built-in synthetic dataset (a2f_jax.data.synthetic, seed 0)",
    }
