"""Loading a config directory: user files (either style) merged over the bases, plus CLI overrides.

A config directory holds up to four files: config_dataset.py, config_preproc.py, config_train.py and
config_inference.py; a missing file means "base only". A file is written either
- in a2f-jax style: `get_config()` returning an `ml_collections.ConfigDict` or a dict of overrides; or
- in the original's style: plain UPPER_CASE assignments; every public name that is not a module,
  function or class is taken, as the original does (prefix helper names with "_").
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import json
import pathlib
import types
from typing import Any, Mapping, Sequence

import ml_collections

from a2f_jax.config import base as base_lib
from a2f_jax.config.base import CONFIG_TYPES, MANDATORY_ACTOR_KEYS, NETWORK_TYPES
from a2f_jax.config.merge import check_modifier, deep_merge, did_you_mean, expand_paths, to_json_types
from a2f_jax.config.overrides import override_network_type, overrides_to_modifiers
from a2f_jax.errors import ConfigError, describe

CONFIG_FILES = {name: f"config_{name}.py" for name in CONFIG_TYPES}


@dataclasses.dataclass
class Configs:
    """The four resolved configs of one run, and what the user changed."""

    dataset: ml_collections.ConfigDict
    preproc: ml_collections.ConfigDict
    train: ml_collections.ConfigDict
    inference: ml_collections.ConfigDict
    network_type: str
    # Per config type: the user's overrides (files, then command line), JSON types, paths unexpanded.
    modifiers: dict[str, dict] = dataclasses.field(default_factory=dict)
    config_dir: pathlib.Path | None = None

    def get(self, config_type: str) -> ml_collections.ConfigDict:
        if config_type not in CONFIG_TYPES:
            raise ConfigError(f"config type: expected one of {CONFIG_TYPES}, found {config_type!r}")
        return getattr(self, config_type)

    def to_dict(self) -> dict:
        return {
            "network_type": self.network_type,
            "config_dir": None if self.config_dir is None else str(self.config_dir),
            "configs": {name: self.get(name).to_dict() for name in CONFIG_TYPES},
            "modifiers": {name: self.modifiers.get(name, {}) for name in CONFIG_TYPES},
        }

    def to_json(self, indent: int | None = 4) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping) -> "Configs":
        configs = data["configs"]
        return cls(
            **{name: locked(ml_collections.ConfigDict(dict(configs[name]))) for name in CONFIG_TYPES},
            network_type=data["network_type"],
            modifiers={name: dict(data.get("modifiers", {}).get(name, {})) for name in CONFIG_TYPES},
            config_dir=None if data.get("config_dir") is None else pathlib.Path(data["config_dir"]),
        )

    @classmethod
    def from_json(cls, text: str) -> "Configs":
        return cls.from_dict(json.loads(text))


def locked(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """`cfg` locked: its keys (and those of its nested dicts) are fixed, so setting a misspelt key raises
    instead of adding one that nothing reads; existing keys stay editable (tests and benchmarks set them)."""
    cfg.lock()
    return cfg


def _load_module(path: pathlib.Path) -> types.ModuleType:
    name = "a2f_user_config_" + "".join(c if c.isalnum() else "_" for c in str(path))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: expected a Python config file, found something importlib cannot load")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ConfigError:
        raise
    except Exception as exc:  # a user file: report which one broke and how
        raise ConfigError(f"{path}: failed to execute config file: {type(exc).__name__}: {exc}") from exc
    return module


def read_config_file(path: str | pathlib.Path) -> dict:
    """The overrides a config file holds, as a plain dict (either file style)."""
    path = pathlib.Path(path)
    module = _load_module(path)
    get_config = getattr(module, "get_config", None)
    if callable(get_config):
        result = get_config()
        if isinstance(result, ml_collections.ConfigDict):
            return result.to_dict()
        if isinstance(result, Mapping):
            return dict(result)
        raise ConfigError(
            f"{path}: expected get_config() to return a ConfigDict or dict, found {type(result).__name__}"
        )
    return {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and not inspect.isroutine(value)
        and not inspect.isclass(value)
    }


def _choose_network_type(
    requested: str | None, cli_type: Any, file_mod: Mapping | None, train_file: pathlib.Path
) -> str:
    """The network type: the command line's NETWORK_TYPE, else config_train's, checked against `requested`."""
    file_type = None if file_mod is None else file_mod.get("NETWORK_TYPE")
    for where, value in (("command line", cli_type), (str(train_file), file_type)):
        if value is not None and value not in NETWORK_TYPES:
            raise ConfigError(f"{where} [NETWORK_TYPE]: expected one of {NETWORK_TYPES}, found {value!r}")
    effective, where = (cli_type, "command line") if cli_type is not None else (file_type, str(train_file))
    if requested is not None:
        if effective is not None and effective != requested:
            raise ConfigError(f"{where} [NETWORK_TYPE]: expected {requested!r} (requested), found {effective!r}")
        return requested
    if effective is None:
        if file_mod is not None:
            raise ConfigError(f"{train_file} [NETWORK_TYPE]: expected 'regression' or 'diffusion', found nothing")
        return "regression"
    return effective


def _check_actors(dataset: Mapping, source: str) -> None:
    """Every actor of ACTOR_NAMES needs the per-actor values that preprocessing/training index directly."""
    for key in MANDATORY_ACTOR_KEYS:
        per_actor = dataset.get(key) or {}
        missing = [actor for actor in dataset.get("ACTOR_NAMES", []) if per_actor.get(actor) is None]
        if missing:
            raise ConfigError(
                f"{source} [{key}]: expected a value for every actor in ACTOR_NAMES "
                f"{list(dataset['ACTOR_NAMES'])}, found none for {missing}"
                + (f" (it has {sorted(per_actor)}{did_you_mean(missing[0], per_actor)})" if per_actor else "")
            )
    for actor, fps in (dataset.get("CACHE_FPS") or {}).items():
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0:
            expected = "a positive number of frames per second"
            raise ConfigError(describe(source, f"CACHE_FPS[{actor!r}]", expected, repr(fps)))


def load(
    config_dir: str | pathlib.Path | None,
    overrides: Sequence[str] = (),
    network_type: str | None = None,
) -> Configs:
    """Resolve the configs of `config_dir` (None: bases only) with command line `overrides` applied.

    `network_type` forces the train/inference bases; otherwise config_train's NETWORK_TYPE decides.
    Raises ConfigError naming the file and key for unknown keys, wrong types and missing actor values.
    The resolved configs are locked (see `locked`).
    """
    directory = None if config_dir is None else pathlib.Path(config_dir).resolve()
    if directory is not None and not directory.is_dir():
        found = "a file" if directory.exists() else "nothing"
        raise ConfigError(f"{config_dir}: expected a config directory, found {found}")
    if network_type is not None and network_type not in NETWORK_TYPES:
        raise ConfigError(f"network_type: expected one of {NETWORK_TYPES}, found {network_type!r}")

    file_mods: dict[str, dict | None] = {}
    paths: dict[str, pathlib.Path] = {}
    for name, fname in CONFIG_FILES.items():
        paths[name] = (directory or pathlib.Path(".")) / fname
        file_mods[name] = read_config_file(paths[name]) if directory is not None and paths[name].is_file() else None

    cli_type = override_network_type(overrides)
    chosen = _choose_network_type(network_type, cli_type, file_mods["train"], paths["train"])
    bases = base_lib.base_dicts(chosen)
    cli_mods = overrides_to_modifiers(overrides, bases)

    resolved: dict[str, ml_collections.ConfigDict] = {}
    modifiers: dict[str, dict] = {}
    for name in CONFIG_TYPES:
        merged_mod: dict = {}
        if file_mods[name] is not None:
            merged_mod = check_modifier(file_mods[name], bases[name], str(paths[name]))
        for text, nested in cli_mods[name]:
            merged_mod = deep_merge(merged_mod, check_modifier(nested, bases[name], f"command line override '{text}'"))
        merged = to_json_types(deep_merge(bases[name], merged_mod))
        modifiers[name] = to_json_types(merged_mod)
        if name == "dataset":
            _check_actors(merged, str(paths[name]) if file_mods[name] is not None else "dataset config")
        resolved[name] = locked(ml_collections.ConfigDict(expand_paths(merged)))

    return Configs(**resolved, network_type=chosen, modifiers=modifiers, config_dir=directory)
