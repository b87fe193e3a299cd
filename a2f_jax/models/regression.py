"""The regression network `conv_w2v_autocorr` (docs/training.md) in Flax Linen.

Inputs: audio windows [B, S, 8320] (16 kHz, one 0.52 s window per animation frame), emotion [B, S, 16 + E]
(implicit vector from the emotion database, then the explicit one-hot) and optionally the per-track norm
factor [B]. Output [B, S, Ks + Kt + jaw + eye] ordered skin coeffs, tongue coeffs, jaw, eye.

Layout: channels last. The original's [B, S, C, H=time, W=lag] is held as [B*S, H, W, C]; every conv has a
kernel of width 1 on one of H/W, so each is a 1-D conv along the other axis (`layers.Conv1d`). Submodule and
parameter names follow the original's state-dict names (w2v, w2v_feature_coeffs, w2v_linear_mapping, freq1..5,
time1..5, linear_skin_jaw_eyes1/2, linear_tongue1/2, linear_explicit_emo, phoneme_conv1/2, phoneme_regressors_i).

RNG: GDropout and the frozen encoder's dropouts use the "dropout" stream and run only when `train=True`
(the original leaves its frozen wav2vec in train mode, so its dropouts are active while training).

`dtype` (`models.precision`): the compute dtype of the encoder, the convs and the Linear layers; the
autocorrelation features are computed in float32, and the outputs (coefficients, phoneme logits) are float32.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from a2f_jax.errors import ConfigError
from a2f_jax.models.audio_encoder import AudioEncoder, EncoderConfig
from a2f_jax.models.autocorr import autocorrelation  # divides by the norm factor, applies the x8.91 scale
from a2f_jax.models.layers import Conv1d, GDropout, Linear, concat_emotion, norm_relu
from a2f_jax.models.precision import cast

Array = jax.Array

W2V_X_SCALE = 1.0
W2V_FEATURE_DIM = 768
BRANCH_CHANNELS = 256


@dataclasses.dataclass(frozen=True)
class AutocorrParams:
    """`autocorr_params` of NETWORK_HYPER_PARAMS (base-config values as defaults)."""

    num_autocorr: int = 32
    num_windows: int = 25
    win_len: int = 640
    win_stride: int = 320
    preemph: float = 0.0
    remove_dc: bool = True
    win_func: str | None = "hanning"


@dataclasses.dataclass(frozen=True)
class RegressionNetConfig:
    """Everything that fixes the network's shapes. Build it with `from_network_params`."""

    num_shapes_skin: int
    num_shapes_tongue: int
    num_explicit_emotions: int
    result_jaw_size: int = 15
    result_eyes_size: int = 4
    use_w2v_features: bool = True
    use_autocorr_features: bool = True
    w2v_freeze: bool = True  # training only: the encoder's params are frozen (`models.freeze`, the train step)
    w2v_num_layers: int = 1
    autocorr: AutocorrParams = AutocorrParams()
    implicit_emotion_len: int = 16
    explicit_emo_emb_len: int = 8
    num_phonemes: tuple[tuple[str, int], ...] = ()  # ((lang, vocab size), ...) in PHONEME_FORCING_LANGS order
    encoder: Any = None  # audio_encoder.EncoderConfig; required when use_w2v_features
    conv_impl: str = "matmul"  # "matmul" or "xla" (same maths; matmul is faster on CPU)

    @property
    def emotion_len(self) -> int:
        return self.implicit_emotion_len + self.num_explicit_emotions

    @property
    def joint_emo_emb_len(self) -> int:
        return self.implicit_emotion_len + self.explicit_emo_emb_len

    @property
    def output_size(self) -> int:
        return self.num_shapes_skin + self.num_shapes_tongue + self.result_jaw_size + self.result_eyes_size

    @property
    def use_phoneme_forcing(self) -> bool:
        return len(self.num_phonemes) > 0 and self.use_w2v_features

    @classmethod
    def from_network_params(cls, params: Mapping[str, Any], encoder: Any = None, conv_impl: str = "matmul") -> "RegressionNetConfig":
        """From the original's network params: NETWORK_HYPER_PARAMS | {explicit_emotions, num_shapes_skin,
        num_shapes_tongue, result_jaw_size, result_eyes_size, [num_phonemes]} (network_info_full.json "params")."""
        known = {
            "use_w2v_features", "use_autocorr_features", "w2v_freeze", "w2v_num_layers", "autocorr_params",
            "implicit_emotion_len", "explicit_emo_emb_len", "explicit_emotions", "num_shapes_skin",
            "num_verts_skin", "num_shapes_tongue", "num_verts_tongue", "result_jaw_size", "result_eyes_size",
            "num_phonemes",
        }
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigError(f"NETWORK_HYPER_PARAMS: expected keys among {sorted(known)}, found unknown {unknown}")
        ac = dict(params.get("autocorr_params") or {})
        ac_fields = {f.name for f in dataclasses.fields(AutocorrParams)}
        if set(ac) - ac_fields:
            raise ConfigError(
                f"NETWORK_HYPER_PARAMS [autocorr_params]: expected keys among {sorted(ac_fields)}, "
                f"found unknown {sorted(set(ac) - ac_fields)}"
            )
        num_phonemes = params.get("num_phonemes") or {}
        cfg = cls(
            num_shapes_skin=int(params.get("num_shapes_skin", 0)),
            num_shapes_tongue=int(params.get("num_shapes_tongue", 0)),
            num_explicit_emotions=len(params.get("explicit_emotions", [])),
            result_jaw_size=int(params.get("result_jaw_size", 0)),
            result_eyes_size=int(params.get("result_eyes_size", 0)),
            use_w2v_features=bool(params.get("use_w2v_features", False)),
            use_autocorr_features=bool(params.get("use_autocorr_features", False)),
            w2v_freeze=bool(params.get("w2v_freeze", True)),
            w2v_num_layers=int(params.get("w2v_num_layers", 1)),
            autocorr=AutocorrParams(**ac),
            implicit_emotion_len=int(params.get("implicit_emotion_len", 16)),
            explicit_emo_emb_len=int(params.get("explicit_emo_emb_len", 8)),
            num_phonemes=tuple((str(k), int(v)) for k, v in dict(num_phonemes).items()),
            encoder=encoder,
            conv_impl=conv_impl,
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if not (self.use_w2v_features or self.use_autocorr_features):
            raise ConfigError("NETWORK_HYPER_PARAMS: expected use_w2v_features or use_autocorr_features, found neither")
        if self.use_w2v_features and self.encoder is None:
            raise ConfigError("RegressionNetConfig [encoder]: expected an EncoderConfig when use_w2v_features, found None")
        if self.use_w2v_features and self.w2v_num_layers < 1:
            raise ConfigError(f"NETWORK_HYPER_PARAMS [w2v_num_layers]: expected >= 1, found {self.w2v_num_layers}")
        if self.conv_impl not in ("matmul", "xla"):
            raise ConfigError(f"RegressionNetConfig [conv_impl]: expected 'matmul' or 'xla', found {self.conv_impl!r}")
        for name in ("num_shapes_skin", "num_shapes_tongue", "result_jaw_size", "result_eyes_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"network params [{name}]: expected >= 0, found {getattr(self, name)}")


class ConvW2VAutocorr(nn.Module):
    """conv_w2v_autocorr. `__call__` returns (out [B, S, D], aux); aux["phonemes"] holds the per-language
    phoneme logits [B, S, 25, P] when the phoneme head is enabled and `with_phonemes` (the original's "train"
    mode). `infer` is the export path: (audio [B, S, 8320], emotion [B, S, 16 + E]) -> [B, S, D], no norm factor."""

    cfg: RegressionNetConfig
    dtype: Any = jnp.float32  # compute dtype; parameters and outputs are float32

    def _check_inputs(self, audio: Array, emotion: Array) -> None:
        c = self.cfg
        if audio.ndim != 3:
            raise ValueError(f"ConvW2VAutocorr: audio expected [B, S, samples], found shape {audio.shape}")
        if emotion.shape != audio.shape[:2] + (c.emotion_len,):
            raise ValueError(
                f"ConvW2VAutocorr: emotion expected {audio.shape[:2] + (c.emotion_len,)} "
                f"(implicit {c.implicit_emotion_len} + explicit {c.num_explicit_emotions}), found {emotion.shape}"
            )

    def _conv(self, name: str, features: int, k: int, stride: int, pad: int) -> Conv1d:
        return Conv1d(features, k, stride, (pad, pad), impl=self.cfg.conv_impl, dtype=self.dtype, name=name)

    def _linear(self, features: int, name: str) -> Linear:
        return Linear(features, dtype=self.dtype, name=name)

    def _w2v_features(self, audio: Array, train: bool) -> Array:
        """audio [B*S, N] -> [B*S, 25, 256] (time-major, channels last)."""
        c = self.cfg
        # torchaudio's extract_features path (the original's): dropouts active in training, but never
        # LayerDrop and no SpecAugment, whatever the snapshot's config says.
        enc = AudioEncoder(c.encoder.extract_features_mode(), c.w2v_num_layers, self.dtype, name="w2v")
        hidden = enc(audio * W2V_X_SCALE, train=train).hidden_states
        # hidden_states[0] is the transformer input; [1:] are the outputs of the kept blocks.
        feats = jnp.stack(hidden[1 : c.w2v_num_layers + 1], axis=-1)  # [N, T, 768, L]
        coeffs = self.param("w2v_feature_coeffs", nn.initializers.ones, (c.w2v_num_layers,))
        feats = jnp.sum(feats * cast(coeffs, feats.dtype), axis=-1) / cast(jnp.sum(coeffs), feats.dtype)
        return nn.relu(self._linear(BRANCH_CHANNELS, "w2v_linear_mapping")(feats))

    def _autocorr_features(self, audio: Array, norm_factor: Array | None, train: bool) -> Array:
        """audio [B, S, N], norm factor [B] -> [B*S, 25, 256]."""
        p = self.cfg.autocorr
        b = audio.shape[0]
        ac = autocorrelation(
            audio,
            norm_factor,
            num_autocorr=p.num_autocorr,
            num_windows=p.num_windows,
            win_len=p.win_len,
            win_stride=p.win_stride,
            preemph=p.preemph,
            remove_dc=p.remove_dc,
            win_func=p.win_func,
        )  # [B, S, H=25, W=32], float32 (sums of 640 products)
        ac = cast(ac.reshape((-1,) + ac.shape[2:]), self.dtype)
        n, h = ac.shape[0], ac.shape[1]
        drop = GDropout()

        def gdrop(y: Array) -> Array:  # y [B*S*H, W, C]: one multiplier per (batch item, channel)
            return drop(y.reshape(b, -1, y.shape[-1]), train).reshape(y.shape)

        y = gdrop(ac.reshape(n * h, ac.shape[2], 1))
        for i, ch in enumerate((72, 108, 162, 243), start=1):
            y = gdrop(norm_relu(self._conv(f"freq{i}", ch, 3, 2, 1)(y)))
        y = gdrop(norm_relu(self._conv("freq5", BRANCH_CHANNELS, 2, 1, 0)(y)))  # [B*S*H, 1, 256]
        if y.shape[1] != 1:
            raise ConfigError(f"autocorr_params [num_autocorr]: expected the freq stack to end at width 1, found {y.shape[1]}")
        return y.reshape(n, h, BRANCH_CHANNELS)

    @nn.compact
    def __call__(
        self,
        audio: Array,
        emotion: Array,
        x_norm_factor: Array | None = None,
        *,
        train: bool = False,
        with_phonemes: bool = True,
    ) -> tuple[Array, dict[str, Any]]:
        c = self.cfg
        self._check_inputs(audio, emotion)
        b, s = audio.shape[:2]
        flat_audio = audio.reshape(b * s, audio.shape[2])
        drop = GDropout()

        def gdrop(y: Array) -> Array:  # y [B*S, ..., C]
            return drop(y.reshape(b, -1, y.shape[-1]), train).reshape(y.shape)

        emotion = cast(emotion, self.dtype)
        implicit = emotion[..., : c.implicit_emotion_len]
        explicit_emb = self._linear(c.explicit_emo_emb_len, "linear_explicit_emo")(emotion[..., c.implicit_emotion_len :])
        joint_emo = jnp.concatenate([implicit, explicit_emb], axis=-1)  # [B, S, 24]

        def add_emo(y: Array) -> Array:  # y [B*S, ..., C] -> [B*S, ..., C + 24]
            y = concat_emotion(y.reshape((b, s) + y.shape[1:]), joint_emo)
            return y.reshape((b * s,) + y.shape[2:])

        features, aux = [], {}
        if c.use_w2v_features:
            x_w2v = self._w2v_features(flat_audio, train)
            features.append(x_w2v)
        if c.use_autocorr_features:
            features.append(self._autocorr_features(audio, x_norm_factor, train))
        x = jnp.concatenate(features, axis=-1) if len(features) > 1 else features[0]  # [B*S, 25, 512]

        if c.use_phoneme_forcing and with_phonemes:
            ph = gdrop(norm_relu(self._conv("phoneme_conv1", BRANCH_CHANNELS, 3, 1, 1)(x_w2v)))
            ph = gdrop(norm_relu(self._conv("phoneme_conv2", BRANCH_CHANNELS, 3, 1, 1)(ph)))
            ph = ph.reshape(b, s, ph.shape[1], BRANCH_CHANNELS)
            aux["phonemes"] = [
                cast(self._linear(n, f"phoneme_regressors_{i}")(ph), jnp.float32) for i, (_, n) in enumerate(c.num_phonemes)
            ]

        for i in range(1, 5):
            x = add_emo(gdrop(norm_relu(self._conv(f"time{i}", BRANCH_CHANNELS, 3, 2, 1)(x))))
        # Flatten in the original's channel-major order (index = c * H + h) so ported weights line up.
        x = jnp.transpose(x, (0, 2, 1)).reshape(b * s, -1)
        x = add_emo(norm_relu(self._linear(BRANCH_CHANNELS, "time5")(x)))  # [B*S, 280]

        a = c.num_shapes_skin + c.result_jaw_size + c.result_eyes_size
        out_a = self._linear(a, "linear_skin_jaw_eyes2")(self._linear(a, "linear_skin_jaw_eyes1")(x))
        out_t = self._linear(c.num_shapes_tongue, "linear_tongue2")(self._linear(c.num_shapes_tongue, "linear_tongue1")(x))
        ks = c.num_shapes_skin
        out = jnp.concatenate([out_a[:, :ks], out_t, out_a[:, ks:]], axis=-1)
        return cast(out.reshape(b, s, c.output_size), jnp.float32), aux  # the losses see float32

    def infer(self, audio: Array, emotion: Array) -> Array:
        """Export/inference path (the original's "onnx" mode): eval, no norm factor, no phoneme head."""
        out, _ = self(audio, emotion, None, train=False, with_phonemes=False)
        return out


def init_params(model: ConvW2VAutocorr, key: Array, batch: int = 1, seq: int = 2, buffer_len: int = 8320) -> Any:
    """Random (PyTorch-style) init of every parameter from zero inputs of the given shape."""
    audio = jnp.zeros((batch, seq, buffer_len), jnp.float32)
    emotion = jnp.zeros((batch, seq, model.cfg.emotion_len), jnp.float32)
    return model.init({"params": key}, audio, emotion, jnp.ones((batch,), jnp.float32), train=False)["params"]


MODEL_DEF_NETWORK = "conv_w2v_autocorr"  # model_def "network" of this network


def net_from_model_def(model_def: Mapping[str, Any]) -> ConvW2VAutocorr:
    """The float32 network a run's model_def describes ({"network", "params", "encoder", "window"}, written by
    `a2f_jax.networks.regression`); its input windows are `model_def["window"]` samples long."""
    return ConvW2VAutocorr(RegressionNetConfig.from_network_params(model_def["params"],
                                                                   EncoderConfig.from_dict(model_def["encoder"])))


def count_params(tree: Any) -> int:
    """Number of scalars in a pytree of arrays or ShapeDtypeStructs (works on `jax.eval_shape` output)."""
    total = 0
    for leaf in jax.tree_util.tree_leaves(tree):
        n = 1
        for d in leaf.shape:
            n *= int(d)
        total += n
    return total


def params_from_torch_state_dict(
    cfg: RegressionNetConfig, state_dict: Mapping[str, Any], encoder_params: Any = None
) -> tuple[dict[str, Any], list[str]]:
    """The original's `weights.pth` state dict (as NumPy arrays) -> this network's params.

    Linear weights [out, in] become kernels [in, out]; Conv2d weights [Cout, Cin, kH, kW] with kH or kW = 1
    become Conv1d kernels [k, Cin, Cout]. The frozen wav2vec (`w2v.*`, torchaudio names) is not converted here:
    pass its Flax params as `encoder_params` (required when cfg.use_w2v_features). Returns (params, the
    state-dict keys left unused); a missing or misshapen entry raises ConfigError naming the key.
    """
    used: set[str] = set()

    def get(key: str, shape: tuple[int, ...]) -> Any:
        if key not in state_dict:
            raise ConfigError(f"weights.pth [{key}]: expected an array of shape {shape}, found no such key")
        arr = np.asarray(state_dict[key], np.float32)
        if arr.shape != shape:
            raise ConfigError(f"weights.pth [{key}]: expected shape {shape}, found {arr.shape}")
        used.add(key)
        return arr

    def linear(name: str, fan_in: int, out: int, torch_name: str | None = None) -> dict[str, Any]:
        t = torch_name or name
        return {"kernel": jnp.asarray(get(f"{t}.weight", (out, fan_in)).T), "bias": jnp.asarray(get(f"{t}.bias", (out,)))}

    def conv(name: str, cin: int, cout: int, kh: int, kw: int) -> dict[str, Any]:
        w = get(f"{name}.weight", (cout, cin, kh, kw)).reshape(cout, cin, kh * kw)
        return {"kernel": jnp.asarray(w.transpose(2, 1, 0)), "bias": jnp.asarray(get(f"{name}.bias", (cout,)))}

    c = cfg
    j = c.joint_emo_emb_len
    params: dict[str, Any] = {}
    audio_ch = 0
    if c.use_w2v_features:
        if encoder_params is None:
            raise ConfigError("params_from_torch_state_dict [encoder_params]: expected the wav2vec params, found None")
        params["w2v"] = encoder_params
        params["w2v_feature_coeffs"] = jnp.asarray(get("w2v_feature_coeffs", (c.w2v_num_layers,)))
        hidden = int(getattr(c.encoder, "hidden_size", W2V_FEATURE_DIM))
        params["w2v_linear_mapping"] = linear("w2v_linear_mapping", hidden, BRANCH_CHANNELS)
        audio_ch += BRANCH_CHANNELS
    if c.use_autocorr_features:
        chans = (1, 72, 108, 162, 243)
        for i in range(4):
            params[f"freq{i + 1}"] = conv(f"freq{i + 1}", chans[i], chans[i + 1], 1, 3)
        params["freq5"] = conv("freq5", 243, BRANCH_CHANNELS, 1, 2)
        audio_ch += BRANCH_CHANNELS
    if c.use_phoneme_forcing:
        params["phoneme_conv1"] = conv("phoneme_conv1", BRANCH_CHANNELS, BRANCH_CHANNELS, 3, 1)
        params["phoneme_conv2"] = conv("phoneme_conv2", BRANCH_CHANNELS, BRANCH_CHANNELS, 3, 1)
        for i, (_, n) in enumerate(c.num_phonemes):
            params[f"phoneme_regressors_{i}"] = linear("", BRANCH_CHANNELS, n, f"phoneme_regressors.{i}")
    params["time1"] = conv("time1", audio_ch, BRANCH_CHANNELS, 3, 1)
    for i in (2, 3, 4):
        params[f"time{i}"] = conv(f"time{i}", BRANCH_CHANNELS + j, BRANCH_CHANNELS, 3, 1)
    params["time5"] = linear("time5", 2 * (BRANCH_CHANNELS + j), BRANCH_CHANNELS)
    a = c.num_shapes_skin + c.result_jaw_size + c.result_eyes_size
    params["linear_skin_jaw_eyes1"] = linear("linear_skin_jaw_eyes1", BRANCH_CHANNELS + j, a)
    params["linear_skin_jaw_eyes2"] = linear("linear_skin_jaw_eyes2", a, a)
    params["linear_tongue1"] = linear("linear_tongue1", BRANCH_CHANNELS + j, c.num_shapes_tongue)
    params["linear_tongue2"] = linear("linear_tongue2", c.num_shapes_tongue, c.num_shapes_tongue)
    params["linear_explicit_emo"] = linear("linear_explicit_emo", c.num_explicit_emotions, c.explicit_emo_emb_len)
    unused = sorted(k for k in state_dict if k not in used and not k.startswith("w2v."))
    return params, unused
