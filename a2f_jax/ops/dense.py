"""`x @ kernel + bias` with a hand-written backward pass, for layers with very wide inputs or outputs.

The diffusion network's geometry layers map 72,006 skin channels to 512 and back. Under plain autodiff,
XLA's CPU backend computes their bias gradient as a column reduction over [frames, 72006] (about 50x
slower than the same sum written as a ones-vector matmul) and lays the output cotangent out transposed
for the kernel gradient (a strided copy that cost more than the matmul itself at 600 frames). The
backward here writes every product as a row-major matmul. Values and gradients are those of autodiff
(`dense_reference`, plain `x @ W + b`, within float32 rounding). `linear` picks the custom-VJP form when
`ops.switch.fast_cpu_ops()` says so and the reference otherwise.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from a2f_jax.ops.switch import fast_cpu_ops

Array = jax.Array


def _matmul_grads(x: Array, kernel: Array, g: Array) -> tuple[Array, Array, Array]:
    """(dx, dkernel, g as [rows, O]) of y = x @ kernel for the output cotangent g, every product row-major."""
    rows = math.prod(x.shape[:-1])  # explicit: reshape(-1, 0) cannot infer rows for zero-width layers
    g2 = g.reshape(rows, g.shape[-1])
    return jnp.dot(g, kernel.T), jnp.dot(x.reshape(rows, x.shape[-1]).T, g2), g2


@jax.custom_vjp
def dense(x: Array, kernel: Array, bias: Array) -> Array:
    """[..., I] @ [I, O] + [O] → [..., O]."""
    return jnp.dot(x, kernel) + bias


def _dense_fwd(x: Array, kernel: Array, bias: Array) -> tuple[Array, tuple[Array, Array]]:
    return dense(x, kernel, bias), (x, kernel)


def _dense_bwd(res: tuple[Array, Array], g: Array) -> tuple[Array, Array, Array]:
    dx, dkernel, g2 = _matmul_grads(*res, g)
    return dx, dkernel, jnp.dot(jnp.ones((1, g2.shape[0]), g2.dtype), g2)[0]


dense.defvjp(_dense_fwd, _dense_bwd)


@jax.custom_vjp
def dense_nobias(x: Array, kernel: Array) -> Array:
    """[..., I] @ [I, O] → [..., O], with the same backward formulation as `dense`."""
    return jnp.dot(x, kernel)


def _nobias_fwd(x: Array, kernel: Array) -> tuple[Array, tuple[Array, Array]]:
    return dense_nobias(x, kernel), (x, kernel)


def _nobias_bwd(res: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
    return _matmul_grads(*res, g)[:2]


dense_nobias.defvjp(_nobias_fwd, _nobias_bwd)


def dense_reference(x: Array, kernel: Array, bias: Array | None = None) -> Array:
    """The plain reference: [..., I] @ [I, O] (+ [O]) under JAX's own autodiff."""
    y = jnp.dot(x, kernel)
    return y if bias is None else y + bias


def linear(x: Array, kernel: Array, bias: Array | None = None) -> Array:
    """[..., I] @ [I, O] (+ [O]): `dense`/`dense_nobias` with the CPU-tuned forms, `dense_reference` otherwise."""
    if fast_cpu_ops():
        return dense_nobias(x, kernel) if bias is None else dense(x, kernel, bias)
    return dense_reference(x, kernel, bias)


__all__ = ["dense", "dense_nobias", "dense_reference", "linear"]
