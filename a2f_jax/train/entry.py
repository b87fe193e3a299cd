"""Dispatch to the trainer of the configured network type."""

from __future__ import annotations

import pathlib
from typing import Any


def train(configs: Any, **kwargs: Any) -> pathlib.Path:
    """Train the network chosen by NETWORK_TYPE; returns the run directory."""
    if configs.network_type == "regression":
        from a2f_jax.train import trainer_regression

        return trainer_regression.train(configs, **kwargs)
    from a2f_jax.train import trainer_diffusion

    return trainer_diffusion.train(configs, **kwargs)
