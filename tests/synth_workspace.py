"""A synthetic dataset plus its preprocessing run in a temporary workspace, for trainer test modules."""

from __future__ import annotations

import contextlib
import pathlib
from typing import Any, Callable, Iterator

import pytest

from a2f_jax import config


@contextlib.contextmanager
def synthetic_workspace(base: pathlib.Path, config_dir: pathlib.Path | Callable[[], Any], minimal: bool = False,
                        num_shots: int | None = None) -> Iterator[dict[str, str]]:
    """Point $A2F_DATASETS_ROOT / $A2F_WORKSPACE_ROOT into `base`, generate the seed-0 dataset (the -min one with
    `minimal`, its first `num_shots` shots if given) and preprocess actor "synth" with `config_dir` (a config
    folder, or a function returning configs: loaded once the variables point into `base`); the variables are
    restored on exit."""
    from a2f_jax.data import synthetic
    from a2f_jax.preproc import run as preproc_run

    env = {"A2F_DATASETS_ROOT": str(base / "datasets"), "A2F_WORKSPACE_ROOT": str(base / "workspace")}
    name = "a2f-synthetic-min" if minimal else "a2f-synthetic"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        synthetic.generate(base / "datasets" / name, seed=0, minimal=minimal, num_shots=num_shots)
        preproc_run(config_dir() if callable(config_dir) else config.load(config_dir), "synth")
        yield env
