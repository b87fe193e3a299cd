"""wav2vec 2.0 / HuBERT base-family audio encoder in Flax Linen.

One module covers both models (they share the architecture): a conv feature encoder
(group-norm or layer-norm variant), a feature projection, a weight-normed grouped positional
conv, and post-LN transformer blocks (`do_stable_layer_norm=False`).

Train mode reproduces the original's stochastic behaviour, driven by explicit RNG streams:
- `"dropout"`: every dropout, and LayerDrop (one draw per block and forward, for the whole batch);
- `"mask"`: SpecAugment time masking with the learned `masked_spec_embed` (HF semantics).

How the original uses it:
- regression: torchaudio WAV2VEC2_BASE truncated to 1 block, `extract_features` -> the block's output, i.e.
  `AudioEncoder(cfg.extract_features_mode(), num_layers=1)(x).last_hidden_state` ([B*S, 25, 768] for 8320
  samples). That path never applies LayerDrop and has no SpecAugment (hence `extract_features_mode()`);
  torchaudio applies the encoder LayerNorm before the blocks for base models, as transformers does.
- diffusion: HF HubertModel in train mode, `last_hidden_state` [B, T50, 768] (dropouts, LayerDrop 0.1,
  SpecAugment time masking all active in training).

Weights are imported, and random encoders built, by `a2f_jax.models.encoder_weights` (which imports this
module, not the other way round).

`dtype` (every module; `models.precision`): the compute dtype of the convs, projections and attention
matmuls. Parameters stay float32 and are cast where used; group/layer norm statistics and the softmax are
computed in float32. The feature convs go through `ops.conv`: the first conv's matmul form, its folded group
norm and the Winograd k=3/s=2 convs are the CPU-tuned forms; the plain reference is `lax.conv_general_dilated`
and a separate normalisation pass (`ops.switch` picks).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from a2f_jax.errors import ConfigError
from a2f_jax.models.layers import Dropout, torch_uniform
from a2f_jax.models.precision import cast
from a2f_jax.ops import conv as conv_ops

_SUPPORTED_MODEL_TYPES = ("wav2vec2", "hubert")


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Sizes and train-mode settings of a wav2vec2/HuBERT encoder (Hugging Face field names)."""

    model_type: str = "hubert"
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    conv_dim: tuple[int, ...] = (512, 512, 512, 512, 512, 512, 512)
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = False
    feat_extract_norm: str = "group"
    feat_extract_activation: str = "gelu"
    feat_proj_layer_norm: bool = True
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    layer_norm_eps: float = 1e-5
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.1
    feat_proj_dropout: float = 0.0
    layerdrop: float = 0.1
    apply_spec_augment: bool = True
    mask_time_prob: float = 0.05
    mask_time_length: int = 10
    mask_time_min_masks: int = 2
    mask_feature_prob: float = 0.0
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        if self.model_type not in _SUPPORTED_MODEL_TYPES:
            raise ConfigError(f"encoder config [model_type]: expected one of {_SUPPORTED_MODEL_TYPES}, found {self.model_type!r}")
        if not (len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride)):
            raise ConfigError(
                "encoder config [conv_dim/conv_kernel/conv_stride]: expected equal lengths, found "
                f"{len(self.conv_dim)}/{len(self.conv_kernel)}/{len(self.conv_stride)}"
            )
        if self.feat_extract_norm not in ("group", "layer"):
            raise ConfigError(f"encoder config [feat_extract_norm]: expected 'group' or 'layer', found {self.feat_extract_norm!r}")
        for field in ("hidden_act", "feat_extract_activation"):
            if getattr(self, field) != "gelu":
                raise ConfigError(f"encoder config [{field}]: expected 'gelu', found {getattr(self, field)!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"encoder config [num_attention_heads]: expected a divisor of hidden_size {self.hidden_size}, "
                f"found {self.num_attention_heads}"
            )
        if self.hidden_size % self.num_conv_pos_embedding_groups:
            raise ConfigError(
                f"encoder config [num_conv_pos_embedding_groups]: expected a divisor of hidden_size {self.hidden_size}, "
                f"found {self.num_conv_pos_embedding_groups}"
            )
        if self.mask_feature_prob > 0:
            raise ConfigError(
                f"encoder config [mask_feature_prob]: expected 0 (feature masking is not implemented; the original's "
                f"models use 0), found {self.mask_feature_prob}"
            )

    @classmethod
    def from_hf(cls, config: Any, overrides: Mapping[str, Any] | None = None) -> "EncoderConfig":
        """From a `transformers` `Wav2Vec2Config`/`HubertConfig` or a `config.json` dict.

        Fields missing from a dict take the transformers defaults of its `model_type`.
        """
        if isinstance(config, Mapping):
            model_type = config.get("model_type", "wav2vec2")
            if model_type not in _SUPPORTED_MODEL_TYPES:
                raise ConfigError(
                    f"encoder config.json [model_type]: expected one of {_SUPPORTED_MODEL_TYPES}, found {model_type!r}"
                )
            import transformers  # heavy optional dependency: only for a dict config.json

            hf_cls = transformers.HubertConfig if model_type == "hubert" else transformers.Wav2Vec2Config
            known = set(hf_cls().to_dict())
            config = hf_cls(**{k: v for k, v in config.items() if k in known})
        values = config.to_dict() if hasattr(config, "to_dict") else dict(vars(config))
        for flag, meaning in (("do_stable_layer_norm", "pre-LN (large) models"), ("add_adapter", "adapters"),
                              ("conv_pos_batch_norm", "batch-norm positional conv")):
            if values.get(flag):
                raise ConfigError(f"encoder config [{flag}]: expected False ({meaning} are not supported), found True")
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in fields}
        for key in ("conv_dim", "conv_kernel", "conv_stride"):
            kwargs[key] = tuple(int(v) for v in kwargs[key])
        # wav2vec2 models always normalise before the projection; the flag only exists for HuBERT.
        kwargs["feat_proj_layer_norm"] = bool(values.get("feat_proj_layer_norm", True)) if values.get("model_type") == "hubert" else True
        kwargs.update(dict(overrides or {}))
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "EncoderConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (the "encoder" entry of a run's model_def)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> "EncoderConfig":
        """Inverse of `to_dict` (JSON lists back to tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})

    def extract_features_mode(self) -> "EncoderConfig":
        """torchaudio's `extract_features` semantics (regression): no LayerDrop, no SpecAugment; dropouts stay."""
        return self.replace(layerdrop=0.0, apply_spec_augment=False)

    def num_frames(self, num_samples: int) -> int:
        """Frames the conv feature encoder makes from `num_samples` samples (e.g. 8320 -> 25, 16000 -> 49)."""
        n = num_samples
        for k, s in zip(self.conv_kernel, self.conv_stride):
            n = (n - k) // s + 1
        return n

    def receptive_field(self) -> int:
        """The fewest samples that give one frame (400 for the base models)."""
        n = 1
        for k, s in reversed(list(zip(self.conv_kernel, self.conv_stride))):
            n = (n - 1) * s + k
        return n


# torchaudio.pipelines.WAV2VEC2_BASE (the regression net's encoder): fairseq wav2vec 2.0 base, LS-960 pretraining.
# It has no SpecAugment and no masked_spec_embed; its extract_features path never applies LayerDrop.
TORCHAUDIO_WAV2VEC2_BASE = EncoderConfig(
    model_type="wav2vec2",
    hidden_dropout=0.1,
    attention_dropout=0.1,
    activation_dropout=0.0,
    feat_proj_dropout=0.1,
    layerdrop=0.05,
    apply_spec_augment=False,
    mask_time_prob=0.0,
)


@flax.struct.dataclass
class EncoderOutput:
    """`hidden_states`: input of block 0 (after positional conv, LayerNorm, dropout), then each block's output,
    all [B, T, H], as transformers returns them; `last_hidden_state` == `hidden_states[-1]`;
    `conv_features`: the conv feature encoder output [B, T, conv_dim[-1]]."""

    last_hidden_state: jax.Array
    hidden_states: tuple[jax.Array, ...]
    conv_features: jax.Array


def _gelu(x: jax.Array) -> jax.Array:
    return jax.nn.gelu(x, approximate=False)  # erf form, as torch's default GELU


def _normalize(x: jax.Array, axis: int, eps: float) -> jax.Array:
    """Zero mean, unit (biased) variance along `axis`, two-pass variance for fp32 accuracy."""
    centred = x - conv_ops.mean(x, axis)  # sum * (1/n): exports at ONNX opset 14
    var = conv_ops.mean(centred * centred, axis)
    return centred * jax.lax.rsqrt(var + eps)


def _lengths_after(lengths: jax.Array, kernel: int, stride: int) -> jax.Array:
    return jnp.maximum((lengths - kernel) // stride + 1, 0)


class _LayerNorm(nn.Module):
    eps: float = 1e-5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        # Statistics and affine in float32 (a bf16 mean of 768 values is off in the third digit).
        return cast(_normalize(cast(x, jnp.float32), -1, self.eps) * scale + bias, self.dtype)


class _ConvLayer(nn.Module):
    """One feature-encoder conv (NWC layout), optional norm, GELU. Kernel [K, Cin, Cout]."""

    features: int
    kernel: int
    stride: int
    use_bias: bool
    norm: str | None  # "group" (per-channel over time), "layer" (over channels) or None
    eps: float
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, valid: jax.Array | None = None) -> jax.Array:  # [B, N, Cin] -> [B, T, Cout]
        """`valid` [B]: output frames per row that see only real samples; GroupNorm statistics use only those."""
        cin = x.shape[-1]
        kernel32 = self.param("kernel", nn.initializers.he_normal(in_axis=(0, 1), out_axis=2), (self.kernel, cin, self.features))
        conv_bias = self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
        if self.norm is not None:
            scale = self.param("norm_scale", nn.initializers.ones, (self.features,))
            bias = self.param("norm_bias", nn.initializers.zeros, (self.features,))
        x = cast(x, self.dtype)
        if self.norm == "group":  # statistics in float32; the first layer's norm folds into its matmul (CPU-tuned)
            return _gelu(conv_ops.conv_group_norm(x, kernel32, self.stride, conv_bias, scale, bias, self.eps, valid,
                                                  self.dtype))
        y = conv_ops.feature_conv(x, cast(kernel32, self.dtype), self.stride)
        if conv_bias is not None:
            y = y + cast(conv_bias, self.dtype)
        if self.norm == "layer":
            y = cast(_normalize(cast(y, jnp.float32), -1, self.eps) * scale + bias, self.dtype)  # float32 statistics
        return _gelu(y)


class FeatureEncoder(nn.Module):
    """Raw audio [B, N] -> conv features [B, T, conv_dim[-1]]."""

    cfg: EncoderConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, audio: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
        cfg = self.cfg
        x = audio[:, :, None]
        for i, (dim, k, s) in enumerate(zip(cfg.conv_dim, cfg.conv_kernel, cfg.conv_stride)):
            lengths = None if lengths is None else _lengths_after(lengths, k, s)
            if cfg.feat_extract_norm == "group":
                norm = "group" if i == 0 else None
            else:
                norm = "layer"
            # torch's GroupNorm/LayerNorm default eps: transformers does not pass layer_norm_eps to these norms.
            x = _ConvLayer(dim, k, s, cfg.conv_bias, norm, 1e-5, self.dtype, name=f"conv_layers_{i}")(x, lengths)
        return x


class FeatureProjection(nn.Module):
    cfg: EncoderConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:  # [B, T, C] -> [B, T, H]
        cfg = self.cfg
        if cfg.feat_proj_layer_norm:
            x = _LayerNorm(cfg.layer_norm_eps, self.dtype, name="layer_norm")(x)
        init = torch_uniform(x.shape[-1])
        x = nn.Dense(cfg.hidden_size, kernel_init=init, bias_init=init, dtype=self.dtype, name="projection")(x)
        return Dropout(cfg.feat_proj_dropout)(x, deterministic=not train)


class PositionalConvEmbedding(nn.Module):
    """Grouped, weight-normed conv over time with "same" padding; the last frame is dropped for even kernels.

    weight[k] = g[k] * v[k] / ||v[k]||  (PyTorch `weight_norm(dim=2)`: one norm per kernel tap).
    Only taps within T-1 of the centre can touch real frames, so the kernel is cropped to those taps
    for short sequences (the result is identical; 25 frames use 49 of 128 taps).
    """

    cfg: EncoderConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, T, H] -> [B, T, H]
        cfg = self.cfg
        k, groups, h = cfg.num_conv_pos_embeddings, cfg.num_conv_pos_embedding_groups, cfg.hidden_size
        cg = h // groups
        std = math.sqrt(2.0 / (k * cg))
        v = self.param("weight_v", nn.initializers.normal(std), (k, cg, h))
        g = self.param("weight_g", lambda key, shape: jnp.sqrt(jnp.sum(jnp.square(v), axis=(1, 2))), (k,))
        bias = self.param("bias", nn.initializers.zeros, (h,))
        t = x.shape[1]
        centre = k // 2
        lo, hi = max(0, centre - (t - 1)), min(k - 1, centre + (t - 1))
        # The norm is per tap, so cropping first gives the same weights without touching the unused taps.
        v, g = v[lo : hi + 1], g[lo : hi + 1]
        w = v * (g / jnp.sqrt(jnp.sum(jnp.square(v), axis=(1, 2))))[:, None, None]
        pad_left = centre - lo
        pad_right = (hi - lo) - pad_left
        y = jax.lax.conv_general_dilated(
            cast(x, self.dtype), cast(w, self.dtype), window_strides=(1,), padding=[(pad_left, pad_right)],
            dimension_numbers=("NWC", "WIO", "NWC"), feature_group_count=groups,
        )  # the weight norm above stays float32
        return _gelu(y + cast(bias, self.dtype))


class SelfAttention(nn.Module):
    cfg: EncoderConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, frame_mask: jax.Array | None = None) -> jax.Array:  # [B, T, H]
        cfg = self.cfg
        b, t, h = x.shape
        nh = cfg.num_attention_heads
        hd = h // nh
        dense = lambda name: nn.Dense(h, kernel_init=nn.initializers.normal(cfg.initializer_range), dtype=self.dtype, name=name)
        q = dense("q_proj")(x) * (hd ** -0.5)
        k = dense("k_proj")(x)
        v = dense("v_proj")(x)
        q, k, v = (a.reshape(b, t, nh, hd) for a in (q, k, v))
        logits = cast(jnp.einsum("bqhd,bkhd->bhqk", q, k), jnp.float32)  # softmax in float32
        if frame_mask is not None:  # padded keys get no attention
            logits = jnp.where(frame_mask[:, None, None, :], logits, jnp.finfo(logits.dtype).min)
        probs = cast(jax.nn.softmax(logits, axis=-1), self.dtype)
        probs = Dropout(cfg.attention_dropout)(probs, deterministic=not train)
        out = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(b, t, h)
        return dense("out_proj")(out)


class FeedForward(nn.Module):
    cfg: EncoderConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        cfg = self.cfg
        init = nn.initializers.normal(cfg.initializer_range)
        y = _gelu(nn.Dense(cfg.intermediate_size, kernel_init=init, dtype=self.dtype, name="intermediate_dense")(x))
        y = Dropout(cfg.activation_dropout)(y, deterministic=not train)
        y = nn.Dense(cfg.hidden_size, kernel_init=init, dtype=self.dtype, name="output_dense")(y)
        return Dropout(cfg.hidden_dropout)(y, deterministic=not train)


class EncoderLayer(nn.Module):
    """Post-LN block: LN(x + drop(attn(x))), then LN(h + ffn(h))."""

    cfg: EncoderConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, frame_mask: jax.Array | None = None) -> jax.Array:
        cfg = self.cfg
        a = SelfAttention(cfg, self.dtype, name="attention")(x, train, frame_mask)
        a = Dropout(cfg.hidden_dropout)(a, deterministic=not train)
        h = _LayerNorm(cfg.layer_norm_eps, self.dtype, name="layer_norm")(x + a)
        h = h + FeedForward(cfg, self.dtype, name="feed_forward")(h, train)
        return _LayerNorm(cfg.layer_norm_eps, self.dtype, name="final_layer_norm")(h)


class Encoder(nn.Module):
    """Positional conv + LayerNorm + dropout, then the (truncated) blocks with LayerDrop in training."""

    cfg: EncoderConfig
    num_layers: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, frame_mask: jax.Array | None = None) -> tuple[jax.Array, ...]:
        cfg = self.cfg
        if frame_mask is not None:  # padded frames must not leak into real ones through the positional conv
            x = jnp.where(frame_mask[:, :, None], x, 0.0)
        x = x + PositionalConvEmbedding(cfg, self.dtype, name="pos_conv_embed")(x)
        x = _LayerNorm(cfg.layer_norm_eps, self.dtype, name="layer_norm")(x)
        x = Dropout(cfg.hidden_dropout)(x, deterministic=not train)
        states = [x]
        for i in range(self.num_layers):
            y = EncoderLayer(cfg, self.dtype, name=f"layers_{i}")(x, train, frame_mask)
            if train and cfg.layerdrop > 0:
                # One uniform draw per block for the whole batch, as HF; a traced select keeps it jit/ONNX friendly.
                skip = jax.random.uniform(self.make_rng("dropout"), ()) < cfg.layerdrop
                y = jnp.where(skip, x, y)
            x = y
            states.append(x)
        return tuple(states)


def spec_augment_time_mask(
    key: jax.Array, batch: int, length: int, prob: float, span: int, min_masks: int, valid: jax.Array | None = None
) -> jax.Array:
    """[B, T] bool mask with the distribution of HF's `_compute_mask_indices`:

    n = max(int(prob*L/span + eps), min_masks) spans (L = the row's valid frames, `valid` [B] or T; eps ~ U[0,1)
    shared by the batch; n capped so spans fit), span starts drawn without replacement from [0, L-span]
    independently per row; spans may overlap.
    """
    if span < 1 or span > length:
        raise ConfigError(f"encoder config [mask_time_length]: expected 1..{length} (frames in this input), found {span}")
    k_eps, k_perm = jax.random.split(key)
    eps = jax.random.uniform(k_eps, ())
    starts_available = length - span + 1
    cap = min(length // span, starts_available)
    n_max = min(max(int(prob * length / span + 1.0), min_masks), cap)  # the largest count any eps can give
    if n_max <= 0:
        return jnp.zeros((batch, length), bool)
    rows = jnp.full((batch,), length, jnp.int32) if valid is None else jnp.asarray(valid, jnp.int32)
    n = jnp.floor(prob * rows.astype(jnp.float32) / span + eps).astype(jnp.int32)
    n = jnp.minimum(jnp.maximum(n, min_masks), length // span)
    n = jnp.minimum(n, jnp.maximum(rows - span + 1, 0))  # [B]
    # A random permutation of the row's candidate starts (others sort last); the first n are the sampled starts.
    u = jax.random.uniform(k_perm, (batch, starts_available))
    u = jnp.where(jnp.arange(starts_available)[None, :] <= (rows - span)[:, None], u, 2.0)
    order = jnp.argsort(u, axis=-1)[:, :n_max]  # [B, n_max]
    active = jnp.arange(n_max)[None, :] < n[:, None]  # [B, n_max]
    frames = jnp.arange(length)[None, None, :]
    hit = (frames >= order[:, :, None]) & (frames < order[:, :, None] + span) & active[:, :, None]
    return jnp.any(hit, axis=1)


class AudioEncoder(nn.Module):
    """wav2vec2/HuBERT encoder. `num_layers` keeps the first N transformer blocks (None: all).

    audio [B, N] float32 (raw waveform, not standardised) -> `EncoderOutput` with T = cfg.num_frames(N) frames.
    `lengths` [B] int (optional): real samples per row of a zero-padded batch. The group-norm statistics, the
    positional conv, attention and SpecAugment then see only the real part, so a row's first
    cfg.num_frames(lengths[b]) frames equal those of the unpadded clip (the rest are padding). The original has
    no such path (batch 1 only).
    RNG streams in training: "dropout" (dropouts, LayerDrop), "mask" (SpecAugment, when enabled).
    `dtype`: compute dtype (float32, or bfloat16 for mixed precision); the outputs are in it.
    """

    cfg: EncoderConfig
    num_layers: int | None = None
    dtype: Any = jnp.float32

    def _layers(self) -> int:
        n = self.cfg.num_hidden_layers if self.num_layers is None else self.num_layers
        if not 0 <= n <= self.cfg.num_hidden_layers:
            raise ConfigError(f"AudioEncoder [num_layers]: expected 0..{self.cfg.num_hidden_layers}, found {n}")
        return n

    @nn.compact
    def __call__(self, audio: jax.Array, *, train: bool, lengths: jax.Array | None = None) -> EncoderOutput:
        cfg = self.cfg
        if audio.ndim != 2:
            raise ValueError(f"AudioEncoder input: expected audio [B, N], found shape {audio.shape}")
        if audio.shape[1] < cfg.receptive_field():
            raise ValueError(f"AudioEncoder input: expected at least {cfg.receptive_field()} samples, found {audio.shape[1]}")
        frames = None
        if lengths is not None:
            frames = jnp.asarray(lengths, jnp.int32)
            for k, s in zip(cfg.conv_kernel, cfg.conv_stride):
                frames = _lengths_after(frames, k, s)  # [B] real frames per row
        feats = FeatureEncoder(cfg, self.dtype, name="feature_extractor")(
            audio.astype(jnp.float32), None if lengths is None else jnp.asarray(lengths, jnp.int32)
        )
        frame_mask = None if frames is None else jnp.arange(feats.shape[1])[None, :] < frames[:, None]  # [B, T]
        x = FeatureProjection(cfg, self.dtype, name="feature_projection")(feats, train)
        if cfg.mask_time_prob > 0 or cfg.mask_feature_prob > 0:
            embed = self.param("masked_spec_embed", nn.initializers.uniform(1.0), (cfg.hidden_size,))
            if train and cfg.apply_spec_augment and cfg.mask_time_prob > 0:
                mask = spec_augment_time_mask(
                    self.make_rng("mask"), x.shape[0], x.shape[1], cfg.mask_time_prob, cfg.mask_time_length,
                    cfg.mask_time_min_masks, frames,
                )
                x = jnp.where(mask[:, :, None], embed.astype(x.dtype), x)
        states = Encoder(cfg, self._layers(), self.dtype, name="encoder")(x, train, frame_mask)
        return EncoderOutput(last_hidden_state=states[-1], hidden_states=states, conv_features=feats)


def param_shapes(cfg: EncoderConfig, num_layers: int | None = None) -> Any:
    """The parameter tree's shapes (`jax.ShapeDtypeStruct`s), without allocating weights."""
    model = AudioEncoder(cfg, num_layers)
    audio = jax.ShapeDtypeStruct((1, cfg.receptive_field()), jnp.float32)
    return jax.eval_shape(lambda a: model.init({"params": jax.random.key(0)}, a, train=False), audio)["params"]


__all__ = [
    "AudioEncoder", "EncoderConfig", "EncoderOutput", "TORCHAUDIO_WAV2VEC2_BASE", "param_shapes",
    "spec_augment_time_mask",
]
