"""The diffusion network `diffusion_rnn` (docs/training.md "Diffusion network") in Flax Linen.

x̂0 = net(x_t [B, T, C], t [B] original diffusion index, audio [B, N], actor_vec [B, A], emotion_vec [B, E])
with C = 3Vs + 3Vt + jaw + eye (skin xyz, tongue xyz, jaw, eye), in rescaled absolute coordinates:
the per-actor mean geometry is added inside the network.

Pipeline: HuBERT (`AudioEncoder`, last hidden state, 50 fps) → linear alignment to T frames
(align_corners, 60 fps; 30 fps interpolates to 2T and folds pairs) → Linear to 256;
per-frame geometry embedding of x_t (285); actor / timestep (Mish) / emotion tokens;
a 2-layer torch-layout GRU (861 → 256); four Linear-ReLU-Linear heads (last layers zero-initialised);
+ actor_vec @ mean_geometry.

Beyond the original: batch > 1 with right padding. `mask` [B, T] (1 = real frame) keeps the GRU state
on padded frames, and `audio_lengths` [B] (real samples per item) aligns each item's own HuBERT frames to
its own frame count, exactly as the unpadded item alone. The HuBERT encoder itself has no padding mask
(group norm over time and bidirectional attention see the padded audio); `condition` therefore also
accepts encoder features computed per item (see `encode`), which is exact.

Parameter paths mirror the original's state dict (`proj_hubert`, `geometry_embedding/skin_embedding/0`,
`final_layer_skin/2`, `proj_time/0`, `gru/weight_ih_l0`, `audio_model/...`), so a torch checkpoint maps by
splitting keys on "." (Linear kernels are the transposed torch weights, Conv1d kernels [k, in, out]).
The call is pure: constants are NumPy, no Python branching on traced values.

`dtype` (`models.precision`): the compute dtype of HuBERT, the Linear layers and the GRU's matmuls. The
parameters stay float32; the heads' outputs are cast to float32 before the mean geometry is added, so x̂0
(and every loss on it) is float32.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from a2f_jax.errors import ConfigError
from a2f_jax.models import freeze, layers
from a2f_jax.models.audio_encoder import AudioEncoder, EncoderConfig
from a2f_jax.models.encoder_weights import convert_state_dict
from a2f_jax.models.gru import TorchGRU
from a2f_jax.models.precision import cast

Array = jax.Array

HUBERT_FPS = 50
ENCODER_SCOPE = "audio_model"  # the encoder's Linen scope (the original's `audio_model`)
# The original freezes the conv feature encoder, the feature projection and transformer blocks 0 and 1.
FREEZE_SCHEME = "front_and_first_two"


def frozen_param_predicate() -> Callable[[tuple[str, ...]], bool]:
    """Predicate on a param path of this network: True for the params the original freezes."""
    return freeze.encoder_frozen(FREEZE_SCHEME, (ENCODER_SCOPE,))


def stop_frozen_gradients(params: Any) -> Any:
    """`params` with `stop_gradient` on the frozen leaves (`freeze.stop_gradient_frozen`; apply inside the
    differentiated function).

    Their gradients become constant zeros, so XLA drops the backward pass through the conv feature
    encoder, as PyTorch does for `requires_grad=False`, even when the gradients are returned (accumulation).
    """
    return freeze.stop_gradient_frozen(params, freeze.param_labels(params, frozen_param_predicate()))


# ---------------------------------------------------------------------------------------------------------
# Configuration and per-actor constants
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DiffusionNetConfig:
    """Sizes of `diffusion_rnn` (NETWORK_HYPER_PARAMS + dataset-derived sizes) and the encoder config."""

    skin_dim: int  # 3·Vs
    tongue_dim: int  # 3·Vt
    num_actors: int
    num_emotions: int
    jaw_dim: int = 15
    eye_dim: int = 4
    target_fps: int = 60
    diffusion_steps: int = 1000
    feature_dim: int = 256
    tongue_latent_dim: int = 10
    jaw_latent_dim: int = 15
    eye_latent_dim: int = 4
    gru_feature_dim: int = 256
    num_gru_layers: int = 2
    emo_embedding_dim: int = 32
    actor_embedding_dim: int = 32
    hubert_feature_dim: int = 768
    gru_dropout: float = 0.3
    encoder: Any = None  # audio_encoder.EncoderConfig
    encoder_layers: int | None = None  # None: all blocks (the original uses HuBERT's last hidden state)
    gru_unroll: int = 1
    # STREAMING_CFG of TARGET_FPS: (left_truncate, block_frame_size, right_truncate)
    streaming: tuple[int, int, int] = (15, 30, 15)

    def __post_init__(self) -> None:
        if self.target_fps not in (30, 60):
            raise ConfigError(f"config_train [TARGET_FPS]: expected 30 or 60 for diffusion_rnn, found {self.target_fps}")
        hidden = None if self.encoder is None else self.encoder.hidden_size
        if hidden is not None:
            want = hidden * (2 if self.target_fps == 30 else 1)
            if self.hubert_feature_dim != want:
                raise ConfigError(
                    f"config_train [NETWORK_HYPER_PARAMS.hubert_feature_dim]: expected {want} at TARGET_FPS "
                    f"{self.target_fps} (encoder hidden size {hidden}), found {self.hubert_feature_dim}"
                )
        if self.skin_dim % 3 or self.tongue_dim % 3:
            raise ConfigError(f"diffusion_rnn: skin/tongue dims must be multiples of 3, found {self.skin_dim}, {self.tongue_dim}")

    @property
    def output_dim(self) -> int:
        return self.skin_dim + self.tongue_dim + self.jaw_dim + self.eye_dim

    @property
    def gru_input_dim(self) -> int:
        return (
            self.feature_dim * 3 + self.emo_embedding_dim + self.actor_embedding_dim
            + self.tongue_latent_dim + self.jaw_latent_dim + self.eye_latent_dim
        )

    @classmethod
    def from_train_config(
        cls,
        tcfg: Mapping[str, Any],
        *,
        skin_dim: int,
        tongue_dim: int,
        jaw_dim: int,
        eye_dim: int,
        num_actors: int,
        num_emotions: int,
        encoder: Any,
    ) -> "DiffusionNetConfig":
        """From a train config (NETWORK_HYPER_PARAMS, TARGET_FPS, DIFFUSION_STEPS, STREAMING_CFG) and dataset sizes."""
        hp = dict(tcfg["NETWORK_HYPER_PARAMS"])
        fps = float(tcfg["TARGET_FPS"])
        if fps not in (30.0, 60.0):
            raise ConfigError(f"config_train [TARGET_FPS]: expected 30 or 60 for diffusion_rnn, found {fps}")
        known = {
            "feature_dim", "jaw_latent_dim", "tongue_latent_dim", "eye_latent_dim", "gru_feature_dim",
            "num_gru_layers", "emo_embedding_dim", "actor_embedding_dim", "hubert_feature_dim",
        }
        unknown = set(hp) - known
        if unknown:
            raise ConfigError(f"config_train [NETWORK_HYPER_PARAMS]: expected keys {sorted(known)}, found {sorted(unknown)}")
        sc = dict(tcfg["STREAMING_CFG"])[str(int(fps))]
        return cls(
            skin_dim=skin_dim, tongue_dim=tongue_dim, jaw_dim=jaw_dim, eye_dim=eye_dim, num_actors=num_actors,
            num_emotions=num_emotions, target_fps=int(fps), diffusion_steps=int(tcfg["DIFFUSION_STEPS"]),
            encoder=encoder, streaming=(int(sc["left_truncate"]), int(sc["block_frame_size"]), int(sc["right_truncate"])),
            **{k: int(v) for k, v in hp.items()},
        )


@dataclasses.dataclass(frozen=True, eq=False)
class ActorConstants:
    """Per-actor constants baked into the network (identity-hashed so the module stays hashable).

    mean_geometry [A, C] (preproc `mean_geometry.npy`, rescaled; zeros on jaw/eye), and the scales
    scale_skin / scale_tongue / scale_jaw / scale_eye [A] used by the delta output of the export.
    """

    mean_geometry: np.ndarray
    scale_skin: np.ndarray | None = None
    scale_tongue: np.ndarray | None = None
    scale_jaw: np.ndarray | None = None
    scale_eye: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean_geometry", np.asarray(self.mean_geometry, np.float32))
        for name in ("scale_skin", "scale_tongue", "scale_jaw", "scale_eye"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, np.asarray(v, np.float32).reshape(-1))


# ---------------------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------------------


# The shared `layers.Linear`, its matmul through `ops.dense.linear` (with the CPU-tuned ops a backward pass made
# for the 72,006-wide geometry layers; the same values and gradients within rounding).
Linear = functools.partial(layers.Linear, wide=True)


class FeatureConv1d(nn.Module):
    """torch Conv1d(1, 1, kernel_size=9, padding=4) applied along the feature vector of each frame.

    kernel [9, 1, 1] (torch weight [1, 1, 9] transposed), bias [1]. Written as 9 shifted slices (a
    cross-correlation, as torch), which keeps the graph small and exports to plain ONNX ops.
    """

    kernel_size: int = 9
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:  # [..., F] -> [..., F]
        k = self.kernel_size
        pad = k // 2
        w = cast(self.param("kernel", layers.torch_uniform(k), (k, 1, 1)), self.dtype)  # fan_in = 1 channel * k
        b = cast(self.param("bias", layers.torch_uniform(k), (1,)), self.dtype)
        x = cast(x, self.dtype)
        f = x.shape[-1]
        xp = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)])
        out = b[0] + sum(w[j, 0, 0] * xp[..., j : j + f] for j in range(k))
        return out


def mish(x: Array) -> Array:
    """Mish(x) = x·tanh(softplus(x)), spelled out so ONNX export needs no opset-18 Mish op."""
    return x * jnp.tanh(jax.nn.softplus(x))


class LinearConv(nn.Module):
    """torch Sequential(Linear(in, features), Conv1d(1, 1, 9, padding=4), ReLU): submodules "0" and "1"."""

    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        return nn.relu(FeatureConv1d(dtype=self.dtype, name="1")(Linear(self.features, dtype=self.dtype, name="0")(x)))


class TwoLayer(nn.Module):
    """torch Sequential(Linear(in, hidden), ReLU, Linear(hidden, out)[, ReLU]): submodules "0" and "2".

    `zero_last` zero-initialises the last Linear (the original's output heads).
    """

    hidden: int
    out: int
    relu_out: bool = False
    zero_last: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        first = Linear(self.hidden, dtype=self.dtype, name="0")
        y = Linear(self.out, zero_init=self.zero_last, dtype=self.dtype, name="2")(nn.relu(first(x)))
        return nn.relu(y) if self.relu_out else y


class TimeProjection(nn.Module):
    """torch Sequential(Linear(steps, F), Mish) on the one-hot timestep: submodule "0"."""

    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, t_onehot: Array) -> Array:
        return mish(Linear(self.features, dtype=self.dtype, name="0")(t_onehot))


class EmbedGeometry(nn.Module):
    """Per-frame embedding of x_t [B, T, C] → [B, T, F + tongue + jaw + eye latent] (docs/training.md)."""

    cfg: DiffusionNetConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        c = self.cfg
        s, tg, j = c.skin_dim, c.tongue_dim, c.jaw_dim
        skin, tongue = x[..., :s], x[..., s : s + tg]
        jaw, eye = x[..., s + tg : s + tg + j], x[..., s + tg + j :]
        dt = self.dtype
        skin = LinearConv(2 * c.feature_dim, dt, name="skin_embedding")(skin)
        tongue = LinearConv(2 * c.tongue_latent_dim, dt, name="tongue_embedding")(tongue)
        jaw = TwoLayer(2 * c.jaw_latent_dim, 2 * c.jaw_latent_dim, relu_out=True, dtype=dt, name="jaw_embedding")(jaw)
        eye = TwoLayer(2 * c.eye_latent_dim, 2 * c.eye_latent_dim, relu_out=True, dtype=dt, name="eye_embedding")(eye)
        total = c.feature_dim + c.tongue_latent_dim + c.jaw_latent_dim + c.eye_latent_dim
        h = jnp.concatenate([skin, tongue, jaw, eye], axis=-1)
        return TwoLayer(2 * total, total, dtype=dt, name="final")(h)


# ---------------------------------------------------------------------------------------------------------
# Alignment of 50 fps encoder frames to animation frames (`interp_input`)
# ---------------------------------------------------------------------------------------------------------


def linear_align_indices(src_len: int, out_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower [out], upper [out], weight [out]) of the original's `linear1d(align_corners=True)`.

    Float32 arithmetic as the original: scale = (src − 1)/(out − 1); x = i·scale; lower = floor(x),
    upper = min(ceil(x), src − 1), weight = x − floor(x).
    """
    scale = np.float32(max(src_len - 1.0, 0.0)) / np.float32(out_len - 1.0) if out_len > 1 else np.float32(0.0)
    x = np.arange(out_len).astype(np.float32) * np.float32(scale)
    lo = np.floor(x)
    w = (x - lo).astype(np.float32)
    up = np.minimum(np.ceil(x), src_len - 1)
    return np.maximum(lo, 0).astype(np.int32), up.astype(np.int32), w


def align_features(feats: Array, num_frames: int, target_fps: int, src_lengths: Array | None = None,
                   out_lengths: Array | None = None) -> Array:
    """Encoder features [B, T50, D] → [B, T, D·(60/fps)] (`interp_input`).

    Without lengths the indices are NumPy constants. With `src_lengths` / `out_lengths` [B] (real encoder
    frames, real animation frames per item) each item is aligned on its own lengths, so a right-padded
    item matches the unpadded item on its real frames; frames past `out_lengths` are don't-care.
    """
    b, t50, d = feats.shape
    fold = 2 if target_fps == 30 else 1
    out_len = fold * num_frames
    if src_lengths is None and out_lengths is None:
        lo, up, w = linear_align_indices(t50, out_len)
        a = jnp.take(feats, jnp.asarray(lo), axis=1)
        c = jnp.take(feats, jnp.asarray(up), axis=1)
        wj = jnp.asarray(w)[None, :, None]
    else:
        src = jnp.full((b,), t50, jnp.int32) if src_lengths is None else jnp.asarray(src_lengths, jnp.int32)
        out = jnp.full((b,), num_frames, jnp.int32) if out_lengths is None else jnp.asarray(out_lengths, jnp.int32)
        out = out * fold
        # Same float32 formula as above, per item.
        scale = jnp.where(
            out > 1, jnp.maximum(src - 1, 0).astype(jnp.float32) / jnp.maximum(out - 1, 1).astype(jnp.float32), 0.0
        )
        x = jnp.arange(out_len, dtype=jnp.float32)[None, :] * scale[:, None]  # [B, out]
        lo_f = jnp.floor(x)
        wj = (x - lo_f)[..., None]
        lo = jnp.clip(lo_f.astype(jnp.int32), 0, t50 - 1)
        up = jnp.clip(jnp.minimum(jnp.ceil(x).astype(jnp.int32), src[:, None] - 1), 0, t50 - 1)
        a = jnp.take_along_axis(feats, lo[..., None], axis=1)
        c = jnp.take_along_axis(feats, up[..., None], axis=1)
    aligned = a * (1.0 - wj) + c * wj
    return aligned.reshape(b, num_frames, fold * d)


def encoder_frame_counts(encoder_cfg: Any, num_samples: Array) -> Array:
    """Frames the conv feature encoder makes from `num_samples` [B] samples (traced-friendly)."""
    n = jnp.asarray(num_samples, jnp.int32)
    for k, s in zip(encoder_cfg.conv_kernel, encoder_cfg.conv_stride):
        n = (n - k) // s + 1
    return n


# ---------------------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------------------


class DiffusionRNN(nn.Module):
    """`diffusion_rnn`. Methods (use `apply(..., method=...)`):

    - `__call__(x_t, t, audio, actor_vec, emotion_vec, mask=None, audio_lengths=None, *, train)` → x̂0 [B, T, C]
      (training / offline mode, zero initial GRU state);
    - `encode(audio, *, train, lengths=None)` → HuBERT last hidden state [B, T50, H];
    - `condition(hidden, num_frames, mask=None, feature_lengths=None)` → audio tokens [B, T, F];
    - `denoise(x_t, t, audio_tokens, actor_vec, emotion_vec, h0=None, mask=None, *, crop=False, train)`
      → (x̂0 [B, T, C], GRU state [L, B, H]). With `crop=True` (streaming_stateless) the GRU consumes only the
      centre block [left, left + block) of the window, emotion may be per-frame [B, block, E], and the
      frames outside the block are zero, as in the original.
    The audio tokens do not depend on x_t or t, so the samplers (`models.diffusion_sampling`) compute them once
    per window.
    `dtype`: compute dtype (float32; bfloat16 for mixed-precision training); x̂0 is float32 either way.
    """

    cfg: DiffusionNetConfig
    constants: ActorConstants
    dtype: Any = jnp.float32

    def setup(self) -> None:
        c = self.cfg
        if c.encoder is None:
            raise ConfigError("DiffusionNetConfig [encoder]: expected an EncoderConfig, found None")
        if self.constants.mean_geometry.shape != (c.num_actors, c.output_dim):
            raise ConfigError(
                f"mean_geometry: expected [{c.num_actors}, {c.output_dim}] (actors, channels), "
                f"found {list(self.constants.mean_geometry.shape)}"
            )
        dt = self.dtype
        self.audio_model = AudioEncoder(c.encoder, c.encoder_layers, dt)
        self.proj_hubert = Linear(c.feature_dim, dtype=dt)
        self.geometry_embedding = EmbedGeometry(c, dt)
        self.proj_time = TimeProjection(c.feature_dim, dt)
        self.gru = TorchGRU(c.gru_feature_dim, c.num_gru_layers, c.gru_dropout, unroll=c.gru_unroll, dtype=dt)
        h = c.gru_feature_dim
        self.final_layer_skin = TwoLayer(int(h * 2), c.skin_dim, zero_last=True, dtype=dt)
        self.final_layer_tongue = TwoLayer(int(h * 2), c.tongue_dim, zero_last=True, dtype=dt)
        self.final_layer_jaw = TwoLayer(int(h * 0.5), c.jaw_dim, zero_last=True, dtype=dt)
        self.final_layer_eye = TwoLayer(int(h * 0.5), c.eye_dim, zero_last=True, dtype=dt)
        self.embed_actor = Linear(c.actor_embedding_dim, use_bias=False, dtype=dt)
        self.embed_emo_vector = Linear(c.emo_embedding_dim, use_bias=False, dtype=dt)

    # -- audio path --------------------------------------------------------------------------------------

    def encode(self, audio: Array, *, train: bool = False, lengths: Array | None = None) -> Array:
        """audio [B, N] raw 16 kHz → HuBERT last hidden state [B, T50, H] (train: dropout/LayerDrop/SpecAugment).

        `lengths` [B]: real samples of each right-padded row; the encoder then ignores the padding (group norm,
        positional conv, attention, SpecAugment), so a row's real frames equal those of the unpadded clip.
        """
        return self.audio_model(audio, train=train, lengths=lengths).last_hidden_state

    def condition(self, hidden: Array, num_frames: int, mask: Array | None = None,
                  feature_lengths: Array | None = None) -> Array:
        """Encoder states [B, T50, H] → aligned, projected audio tokens [B, T, F]."""
        out_lengths = None if mask is None else jnp.sum(mask.astype(jnp.int32), axis=1)
        aligned = align_features(hidden, num_frames, self.cfg.target_fps, feature_lengths, out_lengths)
        return self.proj_hubert(aligned)

    # -- denoiser ------------------------------------------------------------------------------------------

    def denoise(
        self,
        x_t: Array,
        t: Array,
        audio_tokens: Array,
        actor_vec: Array,
        emotion_vec: Array,
        h0: Array | None = None,
        mask: Array | None = None,
        *,
        crop: bool = False,
        train: bool = False,
    ) -> tuple[Array, Array]:
        c = self.cfg
        b, num_frames, ch = x_t.shape
        if ch != c.output_dim:
            raise ValueError(f"diffusion_rnn: x_t expected [B, T, {c.output_dim}], found {tuple(x_t.shape)}")
        geom = self.geometry_embedding(x_t)  # [B, T, 285]
        t_onehot = jax.nn.one_hot(t, c.diffusion_steps, dtype=self.dtype)  # [B, 1000]
        t_tok = self.proj_time(t_onehot)  # [B, F]
        actor_tok = self.embed_actor(actor_vec)  # [B, 32]
        emo_tok = self.embed_emo_vector(emotion_vec)  # [B, 32] or per-frame [B, T', 32]
        if crop:
            left, block, right = c.streaming
            if left + block + right != num_frames:
                raise ValueError(
                    f"diffusion_rnn streaming: expected {left + block + right} frames per window, found {num_frames}"
                )
            audio_tokens = audio_tokens[:, left : left + block]
            geom = geom[:, left : left + block]
            if mask is not None:
                mask = mask[:, left : left + block]
            steps = block
        else:
            steps = num_frames
        if emo_tok.ndim == 2:
            emo_tok = jnp.broadcast_to(emo_tok[:, None], (b, steps, emo_tok.shape[-1]))
        elif emo_tok.shape[1] != steps:
            raise ValueError(f"diffusion_rnn: per-frame emotion expected {steps} frames, found {emotion_vec.shape[1]}")
        tokens = jnp.concatenate(
            [
                audio_tokens,
                geom,
                jnp.broadcast_to(actor_tok[:, None], (b, steps, actor_tok.shape[-1])),
                jnp.broadcast_to(t_tok[:, None], (b, steps, t_tok.shape[-1])),
                emo_tok,
            ],
            axis=-1,
        )  # [B, T, 861]
        out, h = self.gru(tokens, h0, mask, train=train)
        heads = [f(out) for f in (self.final_layer_skin, self.final_layer_tongue, self.final_layer_jaw, self.final_layer_eye)]
        mean_geometry = actor_vec @ jnp.asarray(self.constants.mean_geometry)  # [B, C], float32
        # float32 before the absolute mean geometry is added (bf16 would round vertex positions to ~3 digits)
        pred = cast(jnp.concatenate(heads, axis=-1), jnp.float32) + mean_geometry[:, None]
        if crop:
            left, block, right = c.streaming
            pred = jnp.pad(pred, ((0, 0), (left, right), (0, 0)))
        return pred, h

    # -- training / offline --------------------------------------------------------------------------------

    def __call__(
        self,
        x_t: Array,
        t: Array,
        audio: Array,
        actor_vec: Array,
        emotion_vec: Array,
        mask: Array | None = None,
        audio_lengths: Array | None = None,
        *,
        train: bool = False,
    ) -> Array:
        """x̂0 [B, T, C]. mask [B, T] (1 = real frame), audio_lengths [B] real samples of each item.

        For right-padded batches pass both: the mask keeps the GRU state on padded frames; the lengths keep the
        padding out of the encoder and align each item's own encoder frames to its own frame count.
        """
        hidden = self.encode(audio, train=train, lengths=audio_lengths)
        feat_lengths = None if audio_lengths is None else encoder_frame_counts(self.cfg.encoder, audio_lengths)
        tokens = self.condition(hidden, x_t.shape[1], mask, feat_lengths)
        pred, _ = self.denoise(x_t, t, tokens, actor_vec, emotion_vec, None, mask, train=train)
        return pred


def to_delta(pred: Array, actor_vec: Array, cfg: DiffusionNetConfig, constants: ActorConstants) -> Array:
    """The "output_delta" conversion: skin/tongue (pred − mean)·scale, jaw/eye pred·scale (original units).

    pred [B, T, C], actor_vec [B, A] (blends allowed: the scales are actor_vec-weighted, as the original).
    """
    for name in ("scale_skin", "scale_tongue", "scale_jaw", "scale_eye"):
        if getattr(constants, name) is None:
            raise ConfigError(f"ActorConstants [{name}]: expected per-actor scales for the delta output, found None")
    s, tg, j = cfg.skin_dim, cfg.tongue_dim, cfg.jaw_dim
    mg = actor_vec @ jnp.asarray(constants.mean_geometry)  # [B, C]
    sc = lambda v: (actor_vec @ jnp.asarray(v))[:, None, None]  # noqa: E731
    skin = (pred[..., :s] - mg[:, None, :s]) * sc(constants.scale_skin)
    tongue = (pred[..., s : s + tg] - mg[:, None, s : s + tg]) * sc(constants.scale_tongue)
    jaw = pred[..., s + tg : s + tg + j] * sc(constants.scale_jaw)
    eye = pred[..., s + tg + j :] * sc(constants.scale_eye)
    return jnp.concatenate([skin, tongue, jaw, eye], axis=-1)


def non_encoder_param_count(cfg: DiffusionNetConfig) -> int:
    """Closed form of the parameters outside the encoder (docs/training.md "Parameter count", generalised to any sizes)."""
    f, tl, jl, el = cfg.feature_dim, cfg.tongue_latent_dim, cfg.jaw_latent_dim, cfg.eye_latent_dim
    lin = lambda i, o, bias=True: i * o + (o if bias else 0)  # noqa: E731
    total = lin(cfg.hubert_feature_dim, f) + lin(cfg.diffusion_steps, f)
    total += lin(cfg.skin_dim, 2 * f) + 10 + lin(cfg.tongue_dim, 2 * tl) + 10
    total += lin(cfg.jaw_dim, 2 * jl) + lin(2 * jl, 2 * jl) + lin(cfg.eye_dim, 2 * el) + lin(2 * el, 2 * el)
    emb = f + tl + jl + el
    total += lin(2 * emb, 2 * emb) + lin(2 * emb, emb)
    h = cfg.gru_feature_dim
    gi = cfg.gru_input_dim
    for k in range(cfg.num_gru_layers):
        total += 3 * h * (gi if k == 0 else h) + 3 * h * h + 6 * h
    for ratio, out in ((2, cfg.skin_dim), (2, cfg.tongue_dim), (0.5, cfg.jaw_dim), (0.5, cfg.eye_dim)):
        mid = int(h * ratio)
        total += lin(h, mid) + lin(mid, out)
    total += lin(cfg.num_actors, cfg.actor_embedding_dim, False) + lin(cfg.num_emotions, cfg.emo_embedding_dim, False)
    return total


# ---------------------------------------------------------------------------------------------------------
# Import of the original's state dict (`weights.pth`, PRETRAINED_NET_FPATH)
# ---------------------------------------------------------------------------------------------------------


def net_from_model_def(model_def: Mapping[str, Any]) -> DiffusionRNN:
    """The float32 network a run's model_def describes ({"net_cfg", "encoder", "mean_geometry", "scales", ...},
    written by `a2f_jax.networks.diffusion`)."""
    cfg_dict = dict(model_def["net_cfg"])
    cfg_dict["streaming"] = tuple(cfg_dict["streaming"])
    cfg = DiffusionNetConfig(**cfg_dict, encoder=EncoderConfig.from_dict(model_def["encoder"]))
    s = model_def["scales"]
    consts = ActorConstants(np.asarray(model_def["mean_geometry"], np.float32),
                            *(np.asarray(s[k], np.float32) for k in ("skin", "tongue", "jaw", "eye")))
    return DiffusionRNN(cfg, consts)


def param_shapes(net: DiffusionRNN, num_samples: int = 16000, num_frames: int = 60) -> Any:
    """The network's parameter tree as `jax.ShapeDtypeStruct`s (nothing allocated)."""
    c = net.cfg
    s = jax.ShapeDtypeStruct
    return jax.eval_shape(
        net.init, jax.random.PRNGKey(0), s((1, num_frames, c.output_dim), jnp.float32), s((1,), jnp.int32),
        s((1, num_samples), jnp.float32), s((1, c.num_actors), jnp.float32), s((1, c.num_emotions), jnp.float32),
    )["params"]


def params_from_torch_state_dict(
    state: Mapping[str, np.ndarray], net: DiffusionRNN, source: str = "state dict"
) -> dict:
    """The original's `Network.state_dict()` (as NumPy arrays) → params of `net`.

    `audio_model.*` goes through `encoder_weights.convert_state_dict` (HF HubertModel names); the rest maps
    by splitting keys on "." (Linear weight [out, in] → kernel [in, out], Conv1d weight [1, 1, 9] → [9, 1, 1],
    GRU tensors unchanged). Unknown or missing keys and shape mismatches raise ConfigError.
    """
    expected = param_shapes(net)
    enc_state = {k[len(ENCODER_SCOPE) + 1 :]: v for k, v in state.items() if k.startswith(ENCODER_SCOPE + ".")}
    params: dict = {ENCODER_SCOPE: convert_state_dict(enc_state, net.cfg.encoder, net.cfg.encoder_layers, source)}
    flat_expected = {
        tuple(str(k.key) for k in path): leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(expected)[0]
        if str(path[0].key) != ENCODER_SCOPE
    }
    got: dict[tuple[str, ...], np.ndarray] = {}
    unexpected = []
    for key, value in state.items():
        if key.startswith(ENCODER_SCOPE + "."):
            continue
        parts = tuple(key.split("."))
        value = np.asarray(value, np.float32)
        if parts[0] == "gru":
            path = parts
        elif parts[-1] == "weight":
            path = parts[:-1] + ("kernel",)
            value = value.transpose(2, 1, 0) if value.ndim == 3 else value.T
        else:
            path = parts
        if path not in flat_expected:
            unexpected.append(key)
            continue
        got[path] = value
    missing = sorted(".".join(p) for p in flat_expected if p not in got)
    bad = [
        f"{'.'.join(p)}: expected {tuple(flat_expected[p].shape)}, found {got[p].shape}"
        for p in got if tuple(flat_expected[p].shape) != got[p].shape
    ]
    if unexpected or missing or bad:
        raise ConfigError(
            f"{source}: expected the diffusion_rnn state dict of this configuration; unexpected keys {sorted(unexpected)}, "
            f"missing {missing}, shape mismatches {bad}"
        )
    for path, value in got.items():
        node = params
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = jnp.asarray(value)
    return params
