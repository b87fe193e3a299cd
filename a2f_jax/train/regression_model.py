"""The regression network as the trainer and inference use it: built from the train config, with its
encoder weights (a local snapshot, or random init for tests and the demo), and pure apply functions."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Mapping

import jax

from a2f_jax.errors import ConfigError, describe
from a2f_jax.train.encoder_setup import encoder_config, encoder_from_dict, encoder_to_dict, replace_encoder_params

log = logging.getLogger(__name__)

ENCODER_SCOPE = "w2v"  # the encoder's Linen scope inside ConvW2VAutocorr
TARGET_CHANNELS = ("skin_coeffs", "tongue_coeffs", "jaw", "eye")  # the network's output order


@dataclasses.dataclass
class RegressionModel:
    """ConvW2VAutocorr plus the pure functions the trainer, validation and export call."""

    net: Any  # a2f_jax.models.regression.ConvW2VAutocorr
    window: int = 8320

    def init_params(self, key: jax.Array) -> Any:
        from a2f_jax.models.regression import init_params

        return init_params(self.net, key, buffer_len=self.window)

    def with_encoder_params(self, params: Any, encoder_params: Any) -> Any:
        """Replace the random encoder weights by pretrained ones (only the layers the network keeps)."""
        return replace_encoder_params(params, ENCODER_SCOPE, encoder_params)

    def apply_train(self, params: Any, audio: jax.Array, emotion: jax.Array, norm: jax.Array, rng: jax.Array) -> jax.Array:
        k_drop, k_mask = jax.random.split(rng)
        out, _ = self.net.apply({"params": params}, audio, emotion, norm, train=True, with_phonemes=False,
                                rngs={"dropout": k_drop, "mask": k_mask})
        return out

    def apply_train_phonemes(self, params: Any, audio: jax.Array, emotion: jax.Array, norm: jax.Array,
                             rng: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
        """Train-mode forward with the phoneme head: (out, per-language logits [B, S, 25, P_lang]).
        Same dropout/mask keys as `apply_train`."""
        k_drop, k_mask = jax.random.split(rng)
        out, aux = self.net.apply({"params": params}, audio, emotion, norm, train=True, with_phonemes=True,
                                  rngs={"dropout": k_drop, "mask": k_mask})
        return out, list(aux.get("phonemes", []))

    def apply_eval(self, params: Any, audio: jax.Array, emotion: jax.Array, norm: jax.Array | None) -> jax.Array:
        out, _ = self.net.apply({"params": params}, audio, emotion, norm, train=False, with_phonemes=False)
        return out


def network_params(tcfg: Any, channel_sizes: Mapping[str, int], explicit_emotions: list[str],
                   num_phonemes: Mapping[str, int] | None = None) -> dict:
    """The original's network params: NETWORK_HYPER_PARAMS ∪ sizes (network_info_full.json "params"), plus
    `num_phonemes` ({lang: vocab size}) only when phoneme supervision is on.

    TARGET_CHANNELS must be all four channels in the network's output order: the original reads every one of
    them here, and a dataset without tongue, jaw or eye data gets zero placeholders of the default sizes from
    preprocessing instead of an empty head. A subset would train a network that the deploy bundle (whose
    network_info carries the preprocessed sizes) no longer matches, so it is refused before training.
    """
    if tuple(channel_sizes) != TARGET_CHANNELS:
        raise ConfigError(describe("config_train", "TARGET_CHANNELS", f"{list(TARGET_CHANNELS)} for conv_w2v_autocorr "
                                   "(its output order; missing tongue/jaw/eye data become zero placeholders)",
                                   repr(list(channel_sizes))))
    hp = tcfg.NETWORK_HYPER_PARAMS.to_dict() if hasattr(tcfg.NETWORK_HYPER_PARAMS, "to_dict") else dict(tcfg.NETWORK_HYPER_PARAMS)
    extra = {"num_phonemes": {str(k): int(v) for k, v in num_phonemes.items()}} if num_phonemes else {}
    return {
        **hp,
        "explicit_emotions": list(explicit_emotions),
        "num_shapes_skin": int(channel_sizes.get("skin_coeffs", 0)),
        "num_shapes_tongue": int(channel_sizes.get("tongue_coeffs", 0)),
        "result_jaw_size": int(channel_sizes.get("jaw", 0)),
        "result_eyes_size": int(channel_sizes.get("eye", 0)),
        **extra,
    }


def build(params: Mapping[str, Any], encoder_cfg: Any, window: int = 8320, compute_dtype: str = "float32") -> RegressionModel:
    """`compute_dtype`: "float32" or "bfloat16" (mixed precision, `models.precision`); parameters stay float32."""
    from a2f_jax.models.precision import compute_dtype as resolve_dtype
    from a2f_jax.models.regression import ConvW2VAutocorr, RegressionNetConfig

    net = ConvW2VAutocorr(RegressionNetConfig.from_network_params(params, encoder_cfg), resolve_dtype(compute_dtype))
    return RegressionModel(net, window)


def from_configs(tcfg: Any, channel_sizes: Mapping[str, int], explicit_emotions: list[str],
                 num_phonemes: Mapping[str, int] | None = None) -> tuple[RegressionModel, dict, Any]:
    """(model, JSON model definition, pretrained encoder params or None). The model computes in the train
    config's COMPUTE_DTYPE; the model definition does not record it (inference runs float32)."""
    from a2f_jax.models.precision import compute_dtype as resolve_dtype

    dtype = tcfg.get("COMPUTE_DTYPE", "float32")
    resolve_dtype(dtype)  # a bad value fails before the encoder snapshot is read
    enc_cfg, enc_params = encoder_config(tcfg, "regression", int(tcfg.NETWORK_HYPER_PARAMS.get("w2v_num_layers", 1)))
    params = network_params(tcfg, channel_sizes, explicit_emotions, num_phonemes)
    window = int(tcfg.AUDIO_PARAMS["buffer_len"])
    model = build(params, enc_cfg, window, dtype)
    model_def = {"network": "conv_w2v_autocorr", "params": params, "encoder": encoder_to_dict(enc_cfg), "window": window}
    return model, model_def, enc_params


def from_model_def(model_def: Mapping[str, Any]) -> RegressionModel:
    """Rebuild the model saved in a run dir's `model_def.json`."""
    return build(model_def["params"], encoder_from_dict(model_def["encoder"]), int(model_def["window"]))
