"""Import wav2vec2/HuBERT weights from a local snapshot folder into `AudioEncoder` params; random init.

A snapshot folder holds the weights as `model.safetensors` (read with NumPy, no torch needed), or
`pytorch_model.bin` / a `*.pth` state dict (read only when torch is importable), plus `config.json`
(Hugging Face `Wav2Vec2Config`/`HubertConfig` fields).

Accepted state-dict namings:
- Hugging Face `Wav2Vec2Model`/`HubertModel` (optionally prefixed `wav2vec2.` / `hubert.`, as in *ForCTC
  checkpoints); the positional conv's weight norm as `weight_g`/`weight_v` or
  `parametrizations.weight.original0`/`original1` (or a plain `weight`).
- torchaudio's `Wav2Vec2Model` (`torchaudio.pipelines.WAV2VEC2_BASE`, the regression net's encoder):
  `feature_extractor.conv_layers.N.{conv,layer_norm}.*`, `encoder.feature_projection.*`,
  `encoder.transformer.{pos_conv_embed,layer_norm,layers.N}.*`; without config.json the bundle's
  base-size config (`TORCHAUDIO_WAV2VEC2_BASE`) is used.
Task heads (`lm_head`, `quantizer`, `project_q`, `project_hid`, `aux`, ...) are ignored; any other
unknown key, or a missing one, is an error listing them.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import re
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from a2f_jax.errors import ConfigError
from a2f_jax.models.audio_encoder import TORCHAUDIO_WAV2VEC2_BASE, AudioEncoder, EncoderConfig, param_shapes

log = logging.getLogger(__name__)

REGRESSION_MODEL_HINT = (
    "the regression network uses wav2vec 2.0 base (torchaudio WAV2VEC2_BASE; Hugging Face equivalent "
    "'facebook/wav2vec2-base', or 'facebook/wav2vec2-base-960h')"
)
DIFFUSION_MODEL_HINT = "the diffusion network uses HuBERT base ('facebook/hubert-base-ls960')"

_HEAD_PREFIXES = ("lm_head.", "quantizer.", "project_q.", "project_hid.", "aux.", "classifier.", "projector.",
                  "final_proj.", "label_embs_concat", "dropout_features.")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _missing_snapshot_message(path: pathlib.Path, what: str) -> str:
    return (
        f"{path}: expected a local Hugging Face snapshot folder ({what}), found none. "
        f"Download one with `huggingface-cli download <model> --local-dir <dir>` on a machine with internet: "
        f"{REGRESSION_MODEL_HINT}; {DIFFUSION_MODEL_HINT}. Then set the train config key "
        f"AUDIO_ENCODER_SNAPSHOT to that folder, or set AUDIO_ENCODER_RANDOM_INIT=True to train with random "
        f"encoder weights (tests and demos only)."
    )


def _read_state_dict(snapshot: pathlib.Path) -> tuple[pathlib.Path, dict[str, np.ndarray]]:
    for name in _WEIGHT_FILES:
        if (snapshot / name).is_file():
            path = snapshot / name
            break
    else:
        pth = sorted(snapshot.glob("*.pth")) + sorted(snapshot.glob("*.pt"))
        if not pth:
            raise ConfigError(_missing_snapshot_message(snapshot, "model.safetensors, pytorch_model.bin or a *.pth state dict"))
        path = pth[0]
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file  # optional dependency: only for a safetensors snapshot

        return path, dict(load_file(str(path)))
    try:
        import torch  # heavy optional dependency: only for a PyTorch pickle
    except ImportError as err:
        raise ConfigError(
            f"{path}: expected model.safetensors (readable without torch), found a PyTorch pickle and torch is not "
            f"installed; convert it once with torch (safetensors.torch.save_file) or install torch"
        ) from err
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return path, {k: v.detach().cpu().float().numpy() for k, v in state.items()}


def _is_torchaudio(keys: list[str]) -> bool:
    return any(k.startswith(("encoder.transformer.", "encoder.feature_projection.")) for k in keys)


def _to_hf_names(state: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bool]:
    """Strip model prefixes and map torchaudio names onto Hugging Face ones. Returns (state, was_torchaudio)."""
    out: dict[str, np.ndarray] = {}
    for k, v in state.items():
        for prefix in ("wav2vec2.", "hubert.", "model."):
            if k.startswith(prefix):
                k = k[len(prefix):]
                break
        out[k] = v
    torchaudio = _is_torchaudio(list(out))
    if torchaudio:
        renamed = {}
        for k, v in out.items():
            if k.startswith("encoder.feature_projection."):
                k = k[len("encoder."):]
            elif k.startswith("encoder.transformer."):
                k = "encoder." + k[len("encoder.transformer."):]
            renamed[k] = v
        out = renamed
    return out, torchaudio


def _t(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.T)


def _conv(a: np.ndarray) -> np.ndarray:  # torch [Cout, Cin, K] -> ours [K, Cin, Cout]
    return np.ascontiguousarray(np.transpose(a, (2, 1, 0)))


_FLAT = lambda a: a.reshape(-1)
_IDENT = lambda a: a

# (transformers key pattern, our param path with {1}, {2} for the pattern's groups, array transform)
_RULES = [
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.weight", "feature_extractor/conv_layers_{1}/kernel", _conv),
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.bias", "feature_extractor/conv_layers_{1}/bias", _IDENT),
    (r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.weight", "feature_extractor/conv_layers_{1}/norm_scale", _IDENT),
    (r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.bias", "feature_extractor/conv_layers_{1}/norm_bias", _IDENT),
    (r"feature_projection\.layer_norm\.weight", "feature_projection/layer_norm/scale", _IDENT),
    (r"feature_projection\.layer_norm\.bias", "feature_projection/layer_norm/bias", _IDENT),
    (r"feature_projection\.projection\.weight", "feature_projection/projection/kernel", _t),
    (r"feature_projection\.projection\.bias", "feature_projection/projection/bias", _IDENT),
    (r"encoder\.pos_conv_embed\.conv\.(?:weight_g|parametrizations\.weight\.original0)", "encoder/pos_conv_embed/weight_g", _FLAT),
    (r"encoder\.pos_conv_embed\.conv\.(?:weight_v|parametrizations\.weight\.original1)", "encoder/pos_conv_embed/weight_v", _conv),
    (r"encoder\.pos_conv_embed\.conv\.bias", "encoder/pos_conv_embed/bias", _IDENT),
    (r"encoder\.layer_norm\.weight", "encoder/layer_norm/scale", _IDENT),
    (r"encoder\.layer_norm\.bias", "encoder/layer_norm/bias", _IDENT),
    (r"encoder\.layers\.(\d+)\.attention\.(q_proj|k_proj|v_proj|out_proj)\.weight", "encoder/layers_{1}/attention/{2}/kernel", _t),
    (r"encoder\.layers\.(\d+)\.attention\.(q_proj|k_proj|v_proj|out_proj)\.bias", "encoder/layers_{1}/attention/{2}/bias", _IDENT),
    (r"encoder\.layers\.(\d+)\.(layer_norm|final_layer_norm)\.weight", "encoder/layers_{1}/{2}/scale", _IDENT),
    (r"encoder\.layers\.(\d+)\.(layer_norm|final_layer_norm)\.bias", "encoder/layers_{1}/{2}/bias", _IDENT),
    (r"encoder\.layers\.(\d+)\.feed_forward\.(intermediate_dense|output_dense)\.weight", "encoder/layers_{1}/feed_forward/{2}/kernel", _t),
    (r"encoder\.layers\.(\d+)\.feed_forward\.(intermediate_dense|output_dense)\.bias", "encoder/layers_{1}/feed_forward/{2}/bias", _IDENT),
    (r"masked_spec_embed", "masked_spec_embed", _IDENT),
]
_COMPILED_RULES = [(re.compile(p + "$"), path, fn) for p, path, fn in _RULES]


def _param_path(key: str) -> tuple[tuple[str, ...], Callable] | None:
    """Our param path and array transform for a transformers-named key, or None if unknown."""
    for pattern, template, transform in _COMPILED_RULES:
        m = pattern.match(key)
        if m:
            return tuple(template.format(*([m[0]] + list(m.groups()))).split("/")), transform
    return None


def _flatten(tree: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flatten(v, prefix + (k,)))
        return out
    return {prefix: tree}


def _unflatten(flat: dict[tuple[str, ...], Any]) -> dict:
    tree: dict = {}
    for path, v in flat.items():
        node = tree
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = v
    return tree


def convert_state_dict(
    state: dict[str, np.ndarray], cfg: EncoderConfig, num_layers: int | None = None, source: str = "state dict"
) -> dict:
    """A transformers- or torchaudio-named state dict -> `AudioEncoder(cfg, num_layers)` params (jnp arrays).

    Blocks past `num_layers` are dropped; unknown keys (other than task heads) and missing params raise ConfigError.
    """
    state, _ = _to_hf_names(state)
    n_layers = cfg.num_hidden_layers if num_layers is None else num_layers
    expected = {path: s for path, s in _flatten(param_shapes(cfg, num_layers)).items()}
    got: dict[tuple[str, ...], np.ndarray] = {}
    unexpected: list[str] = []
    plain_pos_weight = None
    for key, value in state.items():
        if key.startswith(_HEAD_PREFIXES):
            continue
        if key == "encoder.pos_conv_embed.conv.weight":  # weight norm already folded in: g = |w| per tap, v = w
            plain_pos_weight = _conv(np.asarray(value, np.float32))
            continue
        found = _param_path(key)
        if found is None:
            unexpected.append(key)
            continue
        path, transform = found
        layer = re.match(r"layers_(\d+)$", path[1]) if len(path) > 1 else None
        if path[0] == "encoder" and layer and int(layer[1]) >= n_layers:
            if int(layer[1]) >= cfg.num_hidden_layers:
                unexpected.append(key)
            continue
        got[path] = np.asarray(transform(np.asarray(value, np.float32)), np.float32)
    if plain_pos_weight is not None:
        got[("encoder", "pos_conv_embed", "weight_v")] = plain_pos_weight
        got[("encoder", "pos_conv_embed", "weight_g")] = np.sqrt(np.sum(plain_pos_weight ** 2, axis=(1, 2)))
    missing = sorted(".".join(p) for p in expected if p not in got)
    if unexpected or missing:
        raise ConfigError(
            f"{source}: expected the parameters of a {cfg.model_type} encoder with {cfg.num_hidden_layers} layers; "
            f"found unexpected keys {sorted(unexpected)} and missing parameters {missing}"
        )
    bad = [
        f"{'.'.join(p)}: expected {tuple(expected[p].shape)}, found {got[p].shape}"
        for p in expected if tuple(expected[p].shape) != got[p].shape
    ]
    if bad:
        raise ConfigError(f"{source}: parameter shapes do not match config.json: " + "; ".join(bad))
    return jax.tree_util.tree_map(jnp.asarray, _unflatten({p: got[p] for p in expected}))


def load_pretrained(
    snapshot_dir: str | os.PathLike, num_layers: int | None = None, overrides: Mapping[str, Any] | None = None
) -> tuple[EncoderConfig, dict]:
    """(EncoderConfig, params) from a local snapshot folder; `num_layers` keeps the first N blocks' weights.

    `overrides`: EncoderConfig fields replaced after reading config.json (e.g. dropouts).
    """
    snapshot = pathlib.Path(os.path.expandvars(str(snapshot_dir))).expanduser()
    if not snapshot.is_dir():
        raise ConfigError(_missing_snapshot_message(snapshot, "config.json + model.safetensors"))
    path, state = _read_state_dict(snapshot)
    torchaudio = _is_torchaudio([k for k in state])
    config_path = snapshot / "config.json"
    if config_path.is_file():
        try:
            raw = json.loads(config_path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"{config_path}: expected JSON, found a parse error ({err})") from err
        cfg = EncoderConfig.from_hf(raw)
    elif torchaudio:
        cfg = TORCHAUDIO_WAV2VEC2_BASE
    else:
        raise ConfigError(_missing_snapshot_message(snapshot, "config.json next to the weights"))
    if torchaudio:
        # torchaudio's model has no SpecAugment embedding and its extract_features path has no LayerDrop.
        cfg = cfg.replace(mask_time_prob=0.0, apply_spec_augment=False)
    if overrides:
        cfg = cfg.replace(**dict(overrides))
    if num_layers is not None and not 0 <= num_layers <= cfg.num_hidden_layers:
        raise ConfigError(f"{config_path} [num_hidden_layers]: expected at least num_layers={num_layers}, found {cfg.num_hidden_layers}")
    params = convert_state_dict(state, cfg, num_layers, source=str(path))
    log.info("audio encoder: loaded %s (%s naming, %s layers kept)", path, "torchaudio" if torchaudio else "transformers",
             cfg.num_hidden_layers if num_layers is None else num_layers)
    return cfg, params


def random_init(cfg: EncoderConfig, key: jax.Array, num_layers: int | None = None) -> dict:
    """Randomly initialised params (HF-like init). Logged loudly: a random encoder learns nothing about speech."""
    log.warning(
        "AUDIO ENCODER IS RANDOMLY INITIALISED (%s, %d layers): fine for tests and demos, useless for real training. "
        "Set AUDIO_ENCODER_SNAPSHOT to a downloaded snapshot (%s; %s).",
        cfg.model_type, cfg.num_hidden_layers if num_layers is None else num_layers, REGRESSION_MODEL_HINT, DIFFUSION_MODEL_HINT,
    )
    model = AudioEncoder(cfg, num_layers)
    audio = jnp.zeros((1, cfg.receptive_field()), jnp.float32)
    return jax.jit(lambda k: model.init({"params": k}, audio, train=False))(key)["params"]


# HuBERT base (facebook/hubert-base-ls960) with the train-mode settings the original trains the diffusion network with.
HUBERT_BASE = EncoderConfig(
    model_type="hubert", hidden_dropout=0.1, attention_dropout=0.1, activation_dropout=0.1, feat_proj_dropout=0.1,
    layerdrop=0.1, apply_spec_augment=True, mask_time_prob=0.05, mask_time_length=10, mask_time_min_masks=2,
)


def encoder_from_settings(
    network_type: str,
    snapshot: str | os.PathLike | None,
    use_random_init: bool,
    overrides: Mapping[str, Any] | None,
    key: jax.Array,
    num_layers: int | None = None,
) -> tuple[EncoderConfig, dict]:
    """The train configs' AUDIO_ENCODER_SNAPSHOT / AUDIO_ENCODER_RANDOM_INIT / AUDIO_ENCODER_CONFIG_OVERRIDES.

    network_type "regression": wav2vec2 base with torchaudio's extract_features semantics (no LayerDrop, no
    SpecAugment); "diffusion": HuBERT base with HF train-mode behaviour. Random init starts from those base
    configs with `overrides` applied (tiny encoders for tests/demos).
    """
    if network_type not in ("regression", "diffusion"):
        raise ConfigError(f"network type: expected 'regression' or 'diffusion', found {network_type!r}")
    if use_random_init:
        base = TORCHAUDIO_WAV2VEC2_BASE if network_type == "regression" else HUBERT_BASE
        cfg = base.replace(**dict(overrides or {}))
        params = random_init(cfg, key, num_layers)
    else:
        if not snapshot:
            raise ConfigError(_missing_snapshot_message(pathlib.Path(str(snapshot)), "AUDIO_ENCODER_SNAPSHOT is empty"))
        cfg, params = load_pretrained(snapshot, num_layers, overrides)
    if network_type == "regression":
        cfg = cfg.extract_features_mode()
    return cfg, params


__all__ = ["HUBERT_BASE", "convert_state_dict", "encoder_from_settings", "load_pretrained", "random_init", "REGRESSION_MODEL_HINT", "DIFFUSION_MODEL_HINT"]
