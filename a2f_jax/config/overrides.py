"""Command-line overrides: `train.BATCH_SIZE=4`, `dataset.CACHE_FPS.synth=30`, `BATCH_SIZE=4`."""

from __future__ import annotations

import ast
from typing import Any, Mapping, Sequence

from a2f_jax.config.base import CONFIG_TYPES
from a2f_jax.config.merge import did_you_mean
from a2f_jax.errors import ConfigError


def parse_value(text: str) -> Any:
    """A Python literal (`4`, `1e-3`, `None`, `[1, 2]`, `{"a": 1}`, `'x'`), else the text as a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def split_override(text: str) -> tuple[str | None, list[str], Any]:
    """`"train.X.y=v"` -> ("train", ["X", "y"], v); the prefix is None when it is not a config type."""
    if "=" not in text:
        raise ConfigError(f"command line override '{text}': expected KEY=VALUE (e.g. train.BATCH_SIZE=4)")
    lhs, rhs = text.split("=", 1)
    parts = [p for p in lhs.strip().split(".")]
    if not lhs.strip() or any(not p for p in parts):
        raise ConfigError(f"command line override '{text}': expected KEY=VALUE, found an empty key part")
    value = parse_value(rhs.strip())
    if parts[0] in CONFIG_TYPES:
        if len(parts) == 1:
            raise ConfigError(f"command line override '{text}': expected {parts[0]}.KEY=VALUE")
        return parts[0], parts[1:], value
    if parts[0].islower() and len(parts) > 1:
        # A lower-case first part can only be meant as a config type.
        hint = did_you_mean(parts[0], CONFIG_TYPES)
        raise ConfigError(
            f"command line override '{text}': unknown config '{parts[0]}'{hint}; "
            f"expected one of {', '.join(CONFIG_TYPES)}"
        )
    return None, parts, value


def find_config_type(key: str, bases: Mapping[str, Mapping], text: str) -> str:
    """The one config type whose base has the top-level `key` (for overrides without a prefix)."""
    owners = [name for name in CONFIG_TYPES if key in bases[name]]
    if len(owners) == 1:
        return owners[0]
    if not owners:
        every_key = sorted({k for name in CONFIG_TYPES for k in bases[name]})
        raise ConfigError(f"command line override '{text}': unknown config key '{key}'{did_you_mean(key, every_key)}")
    choices = " or ".join(f"{name}.{key}" for name in owners)
    raise ConfigError(f"command line override '{text}': '{key}' exists in several configs; write {choices}")


def overrides_to_modifiers(overrides: Sequence[str], bases: Mapping[str, Mapping]) -> dict[str, list[tuple[str, dict]]]:
    """Per config type, a list of (override text, nested modifier dict), in command line order."""
    result: dict[str, list[tuple[str, dict]]] = {name: [] for name in CONFIG_TYPES}
    for text in overrides:
        prefix, parts, value = split_override(text)
        if prefix is None:
            prefix = find_config_type(parts[0], bases, text)
        nested: Any = value
        for part in reversed(parts):
            nested = {part: nested}
        result[prefix].append((text, nested))
    return result


def override_network_type(overrides: Sequence[str]) -> str | None:
    """NETWORK_TYPE named on the command line (train.NETWORK_TYPE=... or NETWORK_TYPE=...), if any."""
    found = None
    for text in overrides:
        prefix, parts, value = split_override(text)
        if parts == ["NETWORK_TYPE"] and prefix in (None, "train"):
            found = value
    return found
