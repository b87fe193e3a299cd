"""The audio encoder of a run, from the train config's AUDIO_ENCODER_* keys (shared by both trainers).

A local Hugging Face snapshot (AUDIO_ENCODER_SNAPSHOT) gives pretrained weights; AUDIO_ENCODER_RANDOM_INIT
gives random ones (tests, demo), optionally resized by AUDIO_ENCODER_CONFIG_OVERRIDES.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

from a2f_jax.errors import ConfigError, describe
from a2f_jax.models.encoder_weights import encoder_from_settings


def _tuples(d: Mapping[str, Any]) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def encoder_config(tcfg: Any, network_type: str, num_layers: int | None = None) -> tuple[Any, Any]:
    """(EncoderConfig, pretrained params or None) for "regression" (wav2vec2) or "diffusion" (HuBERT)."""
    network_type = {"wav2vec2": "regression", "hubert": "diffusion"}.get(network_type, network_type)
    random = bool(tcfg.AUDIO_ENCODER_RANDOM_INIT)
    overrides = _tuples(dict(tcfg.AUDIO_ENCODER_CONFIG_OVERRIDES or {}))
    cfg, params = encoder_from_settings(network_type, tcfg.AUDIO_ENCODER_SNAPSHOT, random, overrides,
                                        jax.random.PRNGKey(0), num_layers)
    return cfg, None if random else params  # random weights come from the network's own init


def replace_encoder_params(params: Mapping[str, Any], scope: str, encoder_params: Any) -> dict:
    """Copy pretrained encoder weights into `params[scope]` (only the layers the network keeps)."""
    params = dict(params)

    def pick(path, leaf):
        node = encoder_params
        for k in path:
            key = getattr(k, "key", str(k))
            if not isinstance(node, Mapping) or key not in node:
                raise ConfigError(describe("encoder snapshot", "/".join(getattr(p, "key", str(p)) for p in path),
                                           "weights for every kept encoder parameter", "none"))
            node = node[key]
        if tuple(node.shape) != tuple(leaf.shape):
            raise ConfigError(describe("encoder snapshot", str(path), f"shape {tuple(leaf.shape)}", f"{tuple(node.shape)}"))
        return jnp.asarray(node, leaf.dtype)

    params[scope] = jax.tree_util.tree_map_with_path(pick, params[scope])
    return params
