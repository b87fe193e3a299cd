"""Checking a user modifier against its base, merging it in, and canonicalising the result.

Merge rule of the original: where base and modifier values are both dicts they merge key by key,
anything else (lists included) is replaced. Validation follows the original's allowed-path rule
(a non-empty base dict checks its children; an empty one, like every per-actor dict, accepts any
content) and adds type checks the original did not have.
"""

from __future__ import annotations

import copy
import difflib
import os
from typing import Any, Mapping

from a2f_jax.config.base import OPEN_CHILDREN, is_nullable
from a2f_jax.errors import ConfigError, describe

PATH_VARS = ("A2F_DATASETS_ROOT", "A2F_WORKSPACE_ROOT")
_PATH_DEFAULTS = {"A2F_DATASETS_ROOT": "datasets", "A2F_WORKSPACE_ROOT": "workspace"}


def did_you_mean(key: str, candidates: object) -> str:
    """' (did you mean 'X'?)' for the closest candidate, or '' when nothing is close."""
    names = [str(c) for c in candidates]
    close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
    if not close:
        close = [n for n in names if n.lower() == str(key).lower()]
    return f" (did you mean '{close[0]}'?)" if close else ""


def type_name(value: object) -> str:
    return type(value).__name__


def _check_type(value: Any, base: Any, key: str, path: str, source: str) -> Any:
    """The modifier value, checked against the base value's type (int accepted for float, list/tuple
    interchangeable, None where the key allows it). Returns the value with ints cast to float."""
    if value is None:
        if is_nullable(key, base):
            return None
        raise ConfigError(describe(source, path, f"{type_name(base)} (None is not allowed here)", "None"))
    if base is None:
        return value
    if isinstance(base, bool):
        ok = isinstance(value, bool)
    elif isinstance(base, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
    elif isinstance(base, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(base, str):
        ok = isinstance(value, str)
    elif isinstance(base, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    elif isinstance(base, Mapping):
        ok = isinstance(value, Mapping)
    else:
        ok = isinstance(value, type(base))
    if not ok:
        expected = "dict" if isinstance(base, Mapping) else type_name(base)
        if isinstance(base, Mapping) and not base:
            expected = "dict keyed by actor name" if key.isupper() else "dict"
        if isinstance(base, float):
            expected = "float (or int)"
        if isinstance(base, (list, tuple)):
            expected = "list (or tuple)"
        raise ConfigError(describe(source, path, expected, f"{type_name(value)} {value!r}"))
    return value


def plain_value(value: Any, path: str, source: str) -> Any:
    """A copy of a user value in JSON-compatible types: paths become strings, tuples stay tuples (made
    lists later), dict keys become strings. Anything else (numpy scalars, objects) is an error."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int, float)) or isinstance(k, bool):
                raise ConfigError(describe(source, f"{path}[{k!r}]", "a string key", f"{type_name(k)} key"))
            out[str(k)] = plain_value(v, f"{path}.{k}", source)
        return out
    if isinstance(value, (list, tuple)):
        items = [plain_value(v, f"{path}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    raise ConfigError(
        describe(source, path, "a JSON-compatible value (str, int, float, bool, None, list, tuple, dict)",
                 f"{type_name(value)} {value!r}")
    )


def check_modifier(mod: Mapping, base: Mapping, source: str, prefix: str = "") -> dict:
    """Validate `mod` against `base`; return a checked copy (ints cast to float where the base is float).

    `source` names the file (or command line) for error messages; `prefix` is the key path so far.
    """
    checked: dict = {}
    for key, value in mod.items():
        key = str(key)
        path = f"{prefix}{key}"
        value = plain_value(value, path, source)
        if key not in base:
            open_children = OPEN_CHILDREN.get(prefix.rstrip("."), ())
            if "*" in open_children or key in open_children:
                checked[key] = value
                continue
            hint = did_you_mean(key, list(base.keys()) + list(open_children))
            raise ConfigError(f"{source}: unknown config key '{path}'{hint}")
        base_value = base[key]
        value = _check_type(value, base_value, key, path, source)
        if isinstance(base_value, Mapping) and base_value and isinstance(value, Mapping):
            if "*" in OPEN_CHILDREN.get(path, ()):
                checked[key] = value
            else:
                checked[key] = check_modifier(value, base_value, source, prefix=f"{path}.")
        else:
            checked[key] = value
    return checked


def deep_merge(base: Mapping, mod: Mapping) -> dict:
    """A new dict: `base` with `mod` applied (dicts merge key by key, everything else replaces)."""
    merged = {k: copy.deepcopy(v) for k, v in base.items()}
    for key, value in mod.items():
        if isinstance(merged.get(key), Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def to_json_types(value: Any) -> Any:
    """The value as JSON would carry it: tuples become lists, dict keys strings (as in the original,
    whose configs reach the runners through json.dumps)."""
    if isinstance(value, Mapping):
        return {str(k): to_json_types(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_types(v) for v in value]
    return value


def path_roots() -> dict[str, str]:
    """Absolute values of $A2F_DATASETS_ROOT / $A2F_WORKSPACE_ROOT (defaults ./datasets, ./workspace)."""
    roots = {}
    for var in PATH_VARS:
        value = os.environ.get(var) or _PATH_DEFAULTS[var]
        roots[var] = os.path.abspath(os.path.expanduser(value))
    return roots


def expand_paths(value: Any, roots: Mapping[str, str] | None = None) -> Any:
    """Replace `$A2F_DATASETS_ROOT` / `${A2F_DATASETS_ROOT}` (and the workspace one) in every string.

    Only these two variables are expanded, so other `$` text (e.g. in RUN_INFO) is left alone.
    """
    roots = path_roots() if roots is None else roots
    if isinstance(value, str):
        for var, root in roots.items():
            value = value.replace("${" + var + "}", root).replace("$" + var, root)
        return value
    if isinstance(value, Mapping):
        return {k: expand_paths(v, roots) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_paths(v, roots) for v in value]
    return value


def resolve_actor_value(cfg_dict: Mapping | None, actor: str, default: Any = None) -> Any:
    """The value of a per-actor dict for `actor`, or `default` when the actor has none (or it is None)."""
    if cfg_dict is None:
        return default
    value = cfg_dict.get(actor) if hasattr(cfg_dict, "get") else None
    return default if value is None else value
