"""The audio encoder of a run, from the train config's AUDIO_ENCODER_* keys (shared by both trainers).

A local Hugging Face snapshot (AUDIO_ENCODER_SNAPSHOT) gives pretrained weights; AUDIO_ENCODER_RANDOM_INIT
gives random ones (tests, demo), optionally resized by AUDIO_ENCODER_CONFIG_OVERRIDES.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from a2f_jax.errors import ConfigError, describe

log = logging.getLogger(__name__)


def _tuples(d: Mapping[str, Any]) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def encoder_config(tcfg: Any, kind: str, num_layers: int | None = None) -> tuple[Any, Any]:
    """(EncoderConfig, pretrained params or None). kind: "wav2vec2" (regression) or "hubert" (diffusion)."""
    from a2f_jax.models import audio_encoder, encoder_weights

    overrides = _tuples(dict(tcfg.get("AUDIO_ENCODER_CONFIG_OVERRIDES", None) or {}))
    if tcfg.get("AUDIO_ENCODER_RANDOM_INIT", False):
        log.warning("AUDIO_ENCODER_RANDOM_INIT=True: the audio encoder has RANDOM weights (fine for tests and the "
                    "demo, useless for a real model); set AUDIO_ENCODER_SNAPSHOT to a local snapshot instead")
        if kind == "wav2vec2":
            return audio_encoder.TORCHAUDIO_WAV2VEC2_BASE.replace(**overrides), None
        return audio_encoder.EncoderConfig.from_hf({"model_type": "hubert", "feat_proj_dropout": 0.1}, overrides), None
    if overrides:
        raise ConfigError(describe("config_train", "AUDIO_ENCODER_CONFIG_OVERRIDES",
                                   "{} with a pretrained snapshot (overrides only apply to random init)", repr(overrides)))
    return encoder_weights.load_pretrained(str(tcfg.AUDIO_ENCODER_SNAPSHOT), num_layers)


def encoder_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def encoder_from_dict(d: Mapping[str, Any]) -> Any:
    from a2f_jax.models.audio_encoder import EncoderConfig

    return EncoderConfig(**_tuples(d))


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
