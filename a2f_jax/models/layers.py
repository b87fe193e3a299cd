"""Shared layers of the networks: the one PyTorch-style initialiser (`torch_uniform`), the one `Linear`,
`Dropout`, and the regression network's NormRelu, GDropout, Conv1d and ConcatEmotion.

Layout convention: channels last. A PyTorch activation [B, S, C, H, W] of the original is held here as
[B, S, H, W, C] (or with B and S merged); GDropout draws one multiplier per (batch item, channel).
`dtype` of Linear/Conv1d: the compute dtype (inputs and float32 parameters are cast to it; `models.precision`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from a2f_jax.errors import ConfigError
from a2f_jax.models.precision import cast
from a2f_jax.ops.conv import conv1d_matmul, conv1d_xla
from a2f_jax.ops.dense import dense_reference, linear
from a2f_jax.ops.random import dropout_uniform

Array = jax.Array


def norm_relu(x: Array, leak: float = 0.0) -> Array:
    """leaky_relu(x, leak) * sqrt(2 / (1 + leak^2)); with leak 0 this is sqrt(2) * relu(x)."""
    coef = math.sqrt(2.0 / (1.0 + leak * leak))
    if leak == 0.0:
        return jnp.maximum(x, 0.0) * coef
    return jnp.where(x >= 0, x, x * leak) * coef


def torch_uniform(fan_in: int) -> Callable[..., Array]:
    """PyTorch's default Linear/Conv/GRU init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (0 when fan_in is 0).

    fan_in: in_features of a Linear, in_channels * kernel size of a conv, hidden_size of a GRU.
    """
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

    def init(key: Array, shape: Sequence[int], dtype: jnp.dtype = jnp.float32) -> Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class Linear(nn.Module):
    """torch.nn.Linear over the last axis: kernel [in, out] (= torch weight.T), bias [out], PyTorch's default init.

    `zero_init`: zero kernel and bias (the diffusion heads' output layers). `wide`: the matmul is `ops.dense.linear`
    (with the CPU-tuned ops a row-major custom-VJP backward, made for the 72,006-wide diffusion layers; the
    diffusion network sets it on all its Linears), else plain `x @ kernel + bias` under autodiff.
    With no inputs (fan_in 0: a single-emotion dataset, no tongue) the output is the bias alone, written
    without the empty matmul so an exported graph holds no zero-size tensors (TensorRT handles few
    empty-tensor ops); the values are those of the matmul, and torch's bound is 0 there, so the bias starts at 0.
    """

    features: int
    use_bias: bool = True
    zero_init: bool = False
    wide: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        fan_in = x.shape[-1]
        init = nn.initializers.zeros if self.zero_init else torch_uniform(fan_in)
        kernel = cast(self.param("kernel", init, (fan_in, self.features)), self.dtype)
        bias = cast(self.param("bias", init, (self.features,)), self.dtype) if self.use_bias else None
        if fan_in == 0:
            out = jnp.zeros((self.features,), self.dtype) if bias is None else bias
            return jnp.broadcast_to(out, x.shape[:-1] + (self.features,))
        return (linear if self.wide else dense_reference)(cast(x, self.dtype), kernel, bias)


class Dropout(nn.Module):
    """`flax.linen.Dropout` (no broadcast dims), its mask drawn by `ops.random.dropout_uniform` (the straight-line
    threefry with the CPU-tuned ops, `jax.random.uniform` otherwise: the same numbers).

    Same class name, hence the same auto-names and `make_rng` streams as the Flax module it replaces:
    masks and outputs are bit-identical, and faster on CPU.
    """

    rate: float

    @nn.compact
    def __call__(self, x: Array, deterministic: bool) -> Array:
        if self.rate == 0.0 or deterministic:
            return x
        if self.rate == 1.0:
            return jnp.zeros_like(x)
        keep = 1.0 - self.rate
        mask = dropout_uniform(self.make_rng("dropout"), x.shape) < np.float32(keep)
        return lax.select(mask, x / keep, jnp.zeros_like(x))


class Conv1d(nn.Module):
    """Conv along one axis, channels last, PyTorch init. Params: kernel [k, Cin, Cout], bias [Cout].

    A PyTorch Conv2d weight [Cout, Cin, kH, kW] with one of kH/kW equal to 1 maps to
    kernel = w.reshape(Cout, Cin, k).transpose(2, 1, 0).
    """

    features: int
    kernel_size: int
    stride: int = 1
    padding: tuple[int, int] = (0, 0)
    impl: str = "matmul"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """x [N, L, Cin] -> [N, Lout, Cout]."""
        cin = x.shape[-1]
        fan_in = cin * self.kernel_size
        kernel = cast(self.param("kernel", torch_uniform(fan_in), (self.kernel_size, cin, self.features)), self.dtype)
        bias = cast(self.param("bias", torch_uniform(fan_in), (self.features,)), self.dtype)
        x = cast(x, self.dtype)
        if self.impl == "matmul":
            y = conv1d_matmul(x, kernel, self.stride, tuple(self.padding))
        elif self.impl == "xla":
            y = conv1d_xla(x, kernel, self.stride, tuple(self.padding))
        else:
            raise ConfigError(f"Conv1d.impl: expected 'matmul' or 'xla', found {self.impl!r}")
        return y + bias


class GDropout(nn.Module):
    """Multiplicative Gaussian dropout of the original (`layers.GDropout`), identity unless `train`.

    mode "mul": m = (1 + strength) ** N(0, 1); mode "drop": Bernoulli(1 - strength) / (1 - strength).
    One multiplier per index of `axes` (default batch axis 0 and the channel axis -1 of the channels-last
    layout), broadcast over every other axis. With `normalize`, m is divided by
    1e-6 + sqrt(mean(m^2)) over the second of `axes` (the channels). Uses the "dropout" RNG stream.
    """

    mode: str = "mul"
    strength: float = 0.4
    axes: tuple[int, ...] = (0, -1)
    normalize: bool = True

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        if not train:
            return x
        axes = tuple(a % x.ndim for a in self.axes)
        rnd_shape = tuple(x.shape[a] for a in axes)
        key = self.make_rng("dropout")
        # Multipliers drawn and normalised in float32 whatever x's dtype: a bf16 run draws the same numbers.
        if self.mode == "mul":
            rnd = (1.0 + self.strength) ** jax.random.normal(key, rnd_shape, jnp.float32)
        elif self.mode == "drop":
            p = 1.0 - self.strength
            rnd = jax.random.bernoulli(key, p, rnd_shape).astype(jnp.float32) / p
        else:
            raise ConfigError(f"GDropout.mode: expected 'mul' or 'drop', found {self.mode!r}")
        if self.normalize:
            rnd = rnd / (1e-6 + jnp.sqrt(jnp.mean(rnd * rnd, axis=1, keepdims=True)))
        rnd = cast(rnd, x.dtype)
        # Put the drawn axes back in x's axis order, size 1 elsewhere.
        order = sorted(range(len(axes)), key=lambda i: axes[i])
        rnd = jnp.transpose(rnd, order)
        broadcast = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
        return x * rnd.reshape(broadcast)


def concat_emotion(x: Array, emotion: Array) -> Array:
    """Append per-frame emotion channels. x [B, S, ..., C], emotion [B, S, E] -> [B, S, ..., C + E]."""
    if x.shape[:2] != emotion.shape[:2]:
        raise ValueError(f"concat_emotion: x {x.shape} and emotion {emotion.shape} differ in [batch, seq]")
    mid = x.shape[2:-1]
    emo = emotion.reshape(emotion.shape[:2] + (1,) * len(mid) + emotion.shape[2:])
    emo = jnp.broadcast_to(emo, x.shape[:-1] + emotion.shape[2:])
    return jnp.concatenate([x, emo.astype(x.dtype)], axis=-1)
