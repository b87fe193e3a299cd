"""Compute dtype of the networks (train key COMPUTE_DTYPE): float32, or bfloat16 mixed precision.

In bfloat16 the matmuls and convolutions of the encoders, the convs, the dense layers and the GRU run in
bfloat16, while the parameters (and so the optimizer state) stay float32 and are cast where they are used.
What needs the range or the precision stays float32: normalisation statistics (group/layer norm), softmax,
the GRU's recurrent state and gates, the autocorrelation features, the network outputs (cast back before
the mean geometry is added and before every loss), the diffusion schedule and the losses. Inference and the
ONNX export build float32 networks (`model_def.json` does not record the training dtype: the float32
parameters run as they are).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from a2f_jax.errors import ConfigError, describe

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(value: Any, source: str = "config_train") -> Any:
    """The jnp dtype named by a COMPUTE_DTYPE value ("float32" when None); ConfigError for anything else."""
    if value is None:
        return jnp.float32
    if not isinstance(value, str) or value not in COMPUTE_DTYPES:
        raise ConfigError(describe(source, "COMPUTE_DTYPE", f"one of {sorted(COMPUTE_DTYPES)}", repr(value)))
    return COMPUTE_DTYPES[value]


def dtype_name(dtype: Any) -> str:
    return jnp.dtype(dtype).name


def cast(x: jax.Array, dtype: Any) -> jax.Array:
    """`x` in `dtype`, unchanged (no convert op in the graph) when it already is."""
    return x if x.dtype == jnp.dtype(dtype) else x.astype(dtype)


__all__ = ["COMPUTE_DTYPES", "cast", "compute_dtype", "dtype_name"]
