"""Configuration: base configs mirroring the original's four config files, and the loader.

`load(config_dir, overrides)` returns `Configs` with `.dataset`, `.preproc`, `.train`, `.inference`
(`ml_collections.ConfigDict`s with the original's UPPER_CASE keys) and `.network_type`.
"""

from a2f_jax.config import base
from a2f_jax.config.loader import CONFIG_FILES, Configs, load, read_config_file
from a2f_jax.config.merge import deep_merge, expand_paths, path_roots, resolve_actor_value
from a2f_jax.config.overrides import parse_value
from a2f_jax.errors import ConfigError

__all__ = [
    "CONFIG_FILES",
    "ConfigError",
    "Configs",
    "base",
    "deep_merge",
    "expand_paths",
    "load",
    "parse_value",
    "path_roots",
    "read_config_file",
    "resolve_actor_value",
]
