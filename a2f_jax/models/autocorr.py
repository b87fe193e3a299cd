"""Short-time autocorrelation features of the regression network's autocorrelation branch (docs/training.md).

Per audio buffer of 8320 samples: optional norm-factor division, the legacy scale constant, optional
pre-emphasis, 25 windows of 640 samples at stride 320, DC removal, a symmetric Hann (or Kaiser-6) window,
and the first 32 lags of r[k] = (1/640) * sum_{n < 640-k} s[n] s[n+k].

Only slices, products and sums: jit- and ONNX-friendly (no FFT, no gather when win_len is a multiple of
win_stride).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from a2f_jax.errors import ConfigError

AUTOCORR_X_SCALE = 8.912028121636435  # the original's constant (std of a legacy dataset's audio)


def window_function(name: str | None, length: int) -> np.ndarray | None:
    """numpy `hanning(length)` (symmetric, zero at both ends), `kaiser(length, 6)`, or None."""
    if name is None:
        return None
    if name == "hanning":
        return np.hanning(length).astype(np.float32)
    if name == "kaiser6":
        return np.kaiser(length, 6).astype(np.float32)
    raise ConfigError(f"autocorr_params [win_func]: expected 'hanning', 'kaiser6' or None, found {name!r}")


def _windows(x: jax.Array, num_windows: int, win_len: int, win_stride: int) -> jax.Array:
    """[..., N] -> [..., num_windows, win_len], window w = x[w*stride : w*stride + win_len]."""
    n = x.shape[-1]
    needed = (num_windows - 1) * win_stride + win_len
    if needed > n:
        raise ValueError(f"autocorrelation input: expected at least {needed} samples per buffer, found {n}")
    if win_len % win_stride == 0:
        # Windows are runs of m consecutive stride-long chunks: reshape + slices, no gather.
        m = win_len // win_stride
        chunks = x[..., : (num_windows + m - 1) * win_stride].reshape(x.shape[:-1] + (num_windows + m - 1, win_stride))
        return jnp.concatenate([chunks[..., j : j + num_windows, :] for j in range(m)], axis=-1)
    idx = np.arange(num_windows)[:, None] * win_stride + np.arange(win_len)[None, :]
    return x[..., idx]


def autocorrelation(
    audio: jax.Array,
    norm_factor: jax.Array | None = None,
    *,
    num_autocorr: int = 32,
    num_windows: int = 25,
    win_len: int = 640,
    win_stride: int = 320,
    preemph: float = 0.0,
    remove_dc: bool = True,
    win_func: str | None = "hanning",
    scale: float = AUTOCORR_X_SCALE,
) -> jax.Array:
    """audio [..., 8320] (e.g. [B, S, 8320]) -> autocorrelation [..., num_windows, num_autocorr] (e.g. [B, S, 25, 32]).

    `norm_factor`: per-track scalars with the leading batch shape (e.g. [B] for [B, S, 8320]); the audio is divided
    by it before scaling. None at inference/export, as the original's ONNX graph.
    """
    if num_autocorr > win_len:
        raise ConfigError(f"autocorr_params [num_autocorr]: expected at most win_len={win_len}, found {num_autocorr}")
    x = audio.astype(jnp.float32)
    if norm_factor is not None:
        nf = jnp.asarray(norm_factor, jnp.float32)
        x = x / nf.reshape(nf.shape + (1,) * (x.ndim - nf.ndim))
    x = x * scale
    if preemph != 0.0:
        x = jnp.concatenate([x[..., :1], x[..., 1:] - preemph * x[..., :-1]], axis=-1)
    s = _windows(x, num_windows, win_len, win_stride)  # [..., W, L]
    if remove_dc:
        s = s - jnp.sum(s, axis=-1, keepdims=True) * (1.0 / win_len)  # not jnp.mean: ONNX opset < 18 export
    w = window_function(win_func, win_len)
    if w is not None:
        s = s * w
    lags = [jnp.sum(s[..., : win_len - k] * s[..., k:], axis=-1) for k in range(num_autocorr)]
    return jnp.stack(lags, axis=-1) * (1.0 / win_len)


__all__ = ["AUTOCORR_X_SCALE", "autocorrelation", "window_function"]
