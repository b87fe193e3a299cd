"""1-D convolutions (NWC activations, WIO kernels): the CPU-tuned forms of the audio encoder's feature convs
beside their plain reference, and the regression network's conv-as-matmul.

The wav2vec2/HuBERT conv feature encoder (`models.audio_encoder`) calls `feature_conv` and, for its
group-normed first layer, `conv_group_norm`. With the CPU-tuned forms (`ops.switch.fast_cpu_ops()`):
- the first layer (one input channel, kernel = m * stride) is a matmul over m stacked stride-long frames,
  much faster than a one-channel convolution, and its group norm is folded into per-example weights
  (`folded_group_norm_conv`: no statistics pass over the [B, T, C] output);
- the kernel-3, stride-2 convs of short inputs (at most `WINOGRAD_MAX_ROWS` rows, concrete shapes) use
  Winograd F(2,2) (`conv_k3s2_winograd`).
The plain reference is `conv1d_reference` (`lax.conv_general_dilated`) followed by `group_norm_reference`, a
separate float32 normalisation pass. Both compute the same values within float32 rounding.

`conv1d_matmul` / `conv1d_xla` are the two forms of the regression network's small convs, picked by the
network's `conv_impl` field rather than by the switch: the matmul form is also the shape of the exported
ONNX graph (slices + concat + MatMul), so it is a model choice, not a backend one.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from a2f_jax.ops.switch import fast_cpu_ops

Array = jax.Array

# Below this many input rows (batch x frames) the Winograd form of the k=3, stride-2 convs is faster on CPU
# (a one-frame inference); above it XLA's convolution wins.
WINOGRAD_MAX_ROWS = 4096


def _cast(x: Array, dtype: Any) -> Array:
    return x if x.dtype == jnp.dtype(dtype) else x.astype(dtype)


def mean(x: Array, axis: int) -> Array:
    """Mean over `axis`, kept as size 1, written sum * (1/n).

    Not jnp.mean: jax2onnx lowers mean to ReduceMean with axes as an input, valid only from ONNX opset 18;
    ReduceSum takes axes as an input from opset 13, so the graph also exports at opset 14.
    """
    return jnp.sum(x, axis=axis, keepdims=True) * (1.0 / x.shape[axis])


def _time_mean(x: Array, valid: Array | None) -> Array:
    """Mean over axis 1 of [B, T, C], over the first valid[b] frames only when `valid` [B] is given."""
    if valid is None:
        return mean(x, 1)
    m = (jnp.arange(x.shape[1])[None, :] < valid[:, None]).astype(x.dtype)[:, :, None]
    return jnp.sum(x * m, axis=1, keepdims=True) / jnp.maximum(valid, 1).astype(x.dtype)[:, None, None]


def _small_static(dims: tuple, limit: int) -> bool:
    """True for concrete dims whose product is at most `limit` (symbolic export dims keep the plain conv)."""
    return all(isinstance(d, int) for d in dims) and math.prod(dims) <= limit


def _first_layer_form(kernel: Array, stride: int) -> bool:
    """One input channel and a kernel that is a whole number of strides: the conv is a matmul over frames."""
    return kernel.shape[1] == 1 and kernel.shape[0] % stride == 0


# --- the plain references ------------------------------------------------------------------------------------


def conv1d_reference(x: Array, kernel: Array, stride: int) -> Array:
    """VALID conv, [B, N, Cin] * [K, Cin, Cout] -> [B, T, Cout], through `lax.conv_general_dilated`."""
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(stride,), padding="VALID", dimension_numbers=("NWC", "WIO", "NWC")
    )


def group_norm_reference(y: Array, scale: Array, bias: Array, eps: float, valid: Array | None, dtype: Any) -> Array:
    """GroupNorm with one group per channel (statistics over time, float32) as a separate pass over y [B, T, C].

    `valid` [B]: frames per row that see only real samples; the statistics use only those. Returns `dtype`.
    """
    y = _cast(y, jnp.float32)
    centred = y - _time_mean(y, valid)
    y = centred * jax.lax.rsqrt(_time_mean(centred * centred, valid) + eps)
    return _cast(y * scale + bias, dtype)


# --- the CPU-tuned forms -------------------------------------------------------------------------------------


def first_layer_patches(x: Array, kernel_size: int, stride: int) -> Array:
    """[B, N, 1] -> [B, T, kernel_size]: the input window of every output frame, from m stacked frames."""
    m = kernel_size // stride
    n_out = (x.shape[1] - kernel_size) // stride + 1
    frames = x[:, : (n_out + m - 1) * stride, 0].reshape(x.shape[0], n_out + m - 1, stride)
    return jnp.concatenate([frames[:, j : j + n_out] for j in range(m)], axis=-1)


def conv_k3s2_winograd(x: Array, w: Array) -> Array:
    """VALID conv, kernel 3, stride 2, NWC/WIO, with 5 channel matmuls per 2 outputs instead of 6.

    Split x into even e[t] = x[2t] and odd o[t] = x[2t+1]: y[t] = w0 e[t] + w2 e[t+1] + w1 o[t]. The even part
    is a 2-tap stride-1 filter; Winograd F(2,2) gives two outputs from three products,
    m1 = (e0 - e1) w0, m2 = e1 (w0 + w2), m3 = (e2 - e1) w2, y0 = m1 + m2, y1 = m2 + m3 (only sums of inputs,
    so the result is within float32 rounding of the direct conv).
    """
    b, n, _ = x.shape
    t = (n - 3) // 2 + 1
    p = (t + 1) // 2
    need = 4 * p + 1
    x = jnp.pad(x, ((0, 0), (0, max(need - n, 0)), (0, 0)))[:, :need]
    e, o = x[:, 0::2], x[:, 1::2]
    e0, e1, e2 = e[:, 0 : 2 * p : 2], e[:, 1 : 2 * p : 2], e[:, 2 : 2 * p + 1 : 2]
    m2 = e1 @ (w[0] + w[2])
    even = jnp.stack([(e0 - e1) @ w[0] + m2, m2 + (e2 - e1) @ w[2]], axis=2).reshape(b, 2 * p, -1)
    return (even + o @ w[1])[:, :t]


def folded_group_norm_conv(patches: Array, w: Array, scale: Array, bias: Array, eps: float, valid: Array | None,
                           dtype: Any) -> Array:
    """GroupNorm(patches @ w) with one group per channel, without a stats pass over the [B, T, C] output.

    conv output y_c[t] = w_c . p[t], so its per-channel time mean is w_c . mean(p) and its (biased)
    variance is w_c^T Cov(p) w_c, with Cov(p) a tiny [B, K, K] matrix. Normalising then folds into
    per-example weights: (w_c * gamma_c / std_c) . (p[t] - mean(p)) + beta_c. Exact, about 2x faster.
    The statistics and the folded weights are float32 (`w` [K, C] is the float32 kernel); the big product runs
    in `dtype`. A conv bias would be removed by the mean subtraction, so there is none.
    """
    centred = _cast(patches, jnp.float32) - _time_mean(_cast(patches, jnp.float32), valid)  # [B, T, K]
    if valid is None:
        cov = jnp.einsum("btk,btl->bkl", centred, centred) * (1.0 / patches.shape[1])  # [B, K, K]
    else:
        m = (jnp.arange(patches.shape[1])[None, :] < valid[:, None]).astype(patches.dtype)
        cov = jnp.einsum("btk,btl,bt->bkl", centred, centred, m) / jnp.maximum(valid, 1).astype(patches.dtype)[:, None, None]
    var = jnp.einsum("kc,bkl,lc->bc", w, cov, w)  # [B, C]
    w_eff = w[None] * (scale * jax.lax.rsqrt(var + eps))[:, None, :]  # [B, K, C]
    return jnp.einsum("btk,bkc->btc", _cast(centred, dtype), _cast(w_eff, dtype)) + _cast(bias, dtype)


# --- what the encoder calls ----------------------------------------------------------------------------------


def feature_conv(x: Array, kernel: Array, stride: int) -> Array:
    """VALID conv [B, N, Cin] * [K, Cin, Cout] -> [B, T, Cout] (x and kernel in the compute dtype).

    CPU-tuned: the first-layer matmul or the Winograd k=3/s=2 form where they apply; else `conv1d_reference`.
    """
    if fast_cpu_ops():
        if _first_layer_form(kernel, stride):
            return first_layer_patches(x, kernel.shape[0], stride) @ kernel[:, 0, :]
        if kernel.shape[0] == 3 and stride == 2 and _small_static(x.shape[:2], WINOGRAD_MAX_ROWS):
            return conv_k3s2_winograd(x, kernel)
    return conv1d_reference(x, kernel, stride)


def conv_group_norm(x: Array, kernel32: Array, stride: int, conv_bias: Array | None, scale: Array, bias: Array,
                    eps: float, valid: Array | None, dtype: Any) -> Array:
    """GroupNorm(conv(x) + conv_bias) with one group per channel, in `dtype` (x already is).

    `kernel32` is the float32 kernel (the folded form computes its statistics from it). CPU-tuned, for the
    first layer: `folded_group_norm_conv`; otherwise `feature_conv` then `group_norm_reference`.
    """
    if fast_cpu_ops() and _first_layer_form(kernel32, stride):
        patches = first_layer_patches(x, kernel32.shape[0], stride)
        return folded_group_norm_conv(patches, kernel32[:, 0, :], scale, bias, eps, valid, dtype)
    y = feature_conv(x, _cast(kernel32, dtype), stride)
    if conv_bias is not None:
        y = y + _cast(conv_bias, dtype)
    return group_norm_reference(y, scale, bias, eps, valid, dtype)


# --- the regression network's small convs (a model choice: `conv_impl`) ----------------------------------------


def conv1d_matmul(x: Array, kernel: Array, stride: int, padding: tuple[int, int]) -> Array:
    """1-D convolution as one matmul over gathered taps. x [N, L, Cin], kernel [k, Cin, Cout] -> [N, Lout, Cout].

    On CPU the small convolutions of the regression network run faster as a dense matmul than through XLA's
    conv, and slices + concat + matmul export to ONNX without layout surprises.
    """
    k = kernel.shape[0]
    if padding != (0, 0):
        x = jnp.pad(x, ((0, 0), padding, (0, 0)))
    length = x.shape[1]
    out_len = (length - k) // stride + 1
    if k == 1:
        taps = x[:, : (out_len - 1) * stride + 1 : stride, :]
    else:
        taps = jnp.concatenate(
            [x[:, j : j + (out_len - 1) * stride + 1 : stride, :] for j in range(k)], axis=-1
        )  # [N, Lout, k*Cin], tap-major so it matches kernel.reshape(k*Cin, Cout)
    return jnp.dot(taps, kernel.reshape(k * kernel.shape[1], kernel.shape[2]))


def conv1d_xla(x: Array, kernel: Array, stride: int, padding: tuple[int, int]) -> Array:
    """The same convolution through lax.conv_general_dilated (reference path; NWC layout)."""
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(stride,), padding=(padding,), dimension_numbers=("NWC", "WIO", "NWC")
    )


__all__ = [
    "WINOGRAD_MAX_ROWS", "conv1d_matmul", "conv1d_reference", "conv1d_xla", "conv_group_norm", "conv_k3s2_winograd",
    "feature_conv", "first_layer_patches", "folded_group_norm_conv", "group_norm_reference", "mean",
]
