"""A synthetic dataset plus its preprocessing run in a temporary workspace, for trainer test modules."""

from __future__ import annotations

import contextlib
import pathlib
from typing import Iterator

import pytest

from a2f_jax import config


@contextlib.contextmanager
def synthetic_workspace(base: pathlib.Path, config_dir: pathlib.Path) -> Iterator[dict[str, str]]:
    """Point $A2F_DATASETS_ROOT / $A2F_WORKSPACE_ROOT into `base`, generate the seed-0 dataset and preprocess actor
    "synth" with `config_dir`; the variables are restored on exit."""
    from a2f_jax.data import synthetic
    from a2f_jax.preproc import run as preproc_run

    env = {"A2F_DATASETS_ROOT": str(base / "datasets"), "A2F_WORKSPACE_ROOT": str(base / "workspace")}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        synthetic.generate(base / "datasets" / "a2f-synthetic", seed=0)
        preproc_run(config.load(config_dir), "synth")
        yield env
