"""`jax.random.normal` / `uniform` for threefry keys, bit for bit, as one fused elementwise kernel.

On CPU, JAX lowers its threefry hash as a 5-iteration `while` loop over whole arrays: every iteration
writes the full counter arrays back to memory, and each call dispatches a few dozen small kernels. For
the diffusion step's noise ([B, T, 88,831] floats) that was ~0.4 s of a 600-frame iteration. The same
Threefry-2x32 (20 rounds) written straight-line lets XLA fuse hash, float conversion and `erf_inv`
into one pass. Same counters and key schedule as JAX's partitionable threefry, so the numbers are
identical to `jax.random.normal(key, shape)` (tests check this), only produced faster.

Threefry keys, raw (`jax.random.PRNGKey`) or typed (`jax.random.key`, Flax's `make_rng`); keys of
another implementation fall back to `jax.random`.

`normal`/`uniform` are always the straight-line forms, `normal_reference`/`uniform_reference` always
`jax.random`; the call sites use `noise_normal` (diffusion noise) and `dropout_uniform` (the mask of
`models.layers.Dropout`), which pick by `ops.switch.fast_cpu_ops()`: the numbers are the same either way.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from a2f_jax.ops.switch import fast_cpu_ops

Array = jax.Array

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotl(x: Array, d: int) -> Array:
    return (x << np.uint32(d)) | (x >> np.uint32(32 - d))


def threefry2x32(k0: Array, k1: Array, x0: Array, x1: Array) -> tuple[Array, Array]:
    """Threefry-2x32 with 20 rounds (Salmon et al. 2011), the hash behind JAX's default PRNG."""
    ks = (k0, k1, k0 ^ k1 ^ np.uint32(0x1BD11BDA))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = _rotl(x1, r) ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def _threefry_data(key: Array) -> Array | None:
    """uint32[2] data of a threefry key (raw or typed); None for another PRNG implementation."""
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    if key.shape != (() if typed else (2,)) or not (typed or key.dtype == jnp.uint32):
        raise ValueError(f"ops.random: expected one threefry key (uint32[2] or a typed key), found {key.dtype}{list(key.shape)}")
    if not typed:
        return key
    return jax.random.key_data(key) if str(jax.random.key_impl(key)) == "threefry2x32" else None


def random_bits(key: Array, shape: tuple[int, ...]) -> Array:
    """uint32 bits equal to `jax.random.bits(key, shape)` (partitionable threefry; sizes below 2**32)."""
    data = _threefry_data(key)
    if data is None:  # another PRNG implementation: its own generator
        return jax.random.bits(key, shape, jnp.uint32)
    size = math.prod(shape)
    if size >= 2**32:
        raise ValueError(f"ops.random: expected fewer than 2**32 values, found {size}")
    lo = lax.iota(jnp.uint32, size).reshape(shape)
    b0, b1 = threefry2x32(data[0], data[1], jnp.zeros_like(lo), lo)
    return b0 ^ b1


def uniform(key: Array, shape: tuple[int, ...], minval: float = 0.0, maxval: float = 1.0) -> Array:
    """float32 equal to `jax.random.uniform(key, shape, jnp.float32, minval, maxval)`."""
    bits = random_bits(key, tuple(shape))
    one = np.array(1.0, np.float32).view(np.uint32)
    floats = lax.bitcast_convert_type((bits >> np.uint32(32 - 23)) | one, jnp.float32) - np.float32(1.0)
    lo, hi = np.float32(minval), np.float32(maxval)
    return jnp.maximum(lo, floats * (hi - lo) + lo)


def normal(key: Array, shape: tuple[int, ...]) -> Array:
    """float32 equal to `jax.random.normal(key, shape)`."""
    lo = np.nextafter(np.float32(-1.0), np.float32(0.0), dtype=np.float32)
    return np.float32(np.sqrt(2)) * lax.erf_inv(uniform(key, shape, float(lo), 1.0))


def uniform_reference(key: Array, shape: tuple[int, ...]) -> Array:
    """The plain reference of `uniform` on [0, 1): `jax.random.uniform`."""
    return jax.random.uniform(key, shape, jnp.float32)


def normal_reference(key: Array, shape: tuple[int, ...]) -> Array:
    """The plain reference of `normal`: `jax.random.normal`."""
    return jax.random.normal(key, shape, jnp.float32)


def noise_normal(key: Array, shape: tuple[int, ...]) -> Array:
    """float32 `jax.random.normal(key, shape)`: the straight-line form with the CPU-tuned ops, JAX's otherwise."""
    return normal(key, shape) if fast_cpu_ops() else normal_reference(key, shape)


def dropout_uniform(key: Array, shape: tuple[int, ...]) -> Array:
    """float32 `jax.random.uniform(key, shape)` on [0, 1) (dropout masks): straight-line or JAX's, by the switch."""
    return uniform(key, shape) if fast_cpu_ops() else uniform_reference(key, shape)


__all__ = [
    "dropout_uniform", "noise_normal", "normal", "normal_reference", "random_bits", "threefry2x32", "uniform",
    "uniform_reference",
]
