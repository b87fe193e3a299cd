"""The networks, one module each, behind one interface (`docs/networks.md`); `get(NETWORK_TYPE)` picks one.

Each module (`regression`, `diffusion`) exposes the same functions: `build(configs) -> Setup`,
`from_model_def(model_def) -> Network`, `make_sampler`, `feed`, `init`, `make_optimizer`, `init_state`,
`make_train_step(setup, tx, steps_per_epoch) -> train_step(state, batch) -> (state, metrics)`,
`validation_metrics`, `write_run_metadata`, `save_results`, `export_onnx`, plus `predict` / `sample`.
A third network is one more module registered in `NETWORKS`.
"""

from __future__ import annotations

from types import ModuleType

from a2f_jax.errors import ConfigError, describe
from a2f_jax.networks import diffusion, regression

NETWORKS: dict[str, ModuleType] = {regression.NAME: regression, diffusion.NAME: diffusion}


def get(network_type: str) -> ModuleType:
    """The module of NETWORK_TYPE ("regression" or "diffusion"); ConfigError naming the known ones otherwise."""
    try:
        return NETWORKS[network_type]
    except (KeyError, TypeError):
        raise ConfigError(describe("config_train", "NETWORK_TYPE", f"one of {sorted(NETWORKS)}", repr(network_type))) from None


__all__ = ["NETWORKS", "diffusion", "get", "regression"]
