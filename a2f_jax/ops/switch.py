"""The one switch between the CPU-tuned forms of a few ops and their plain references.

Several speed-ups were measured on XLA:CPU only: the custom-VJP dense of `ops.dense` (row-major backward of the
72,006-wide diffusion layers), the straight-line threefry of `ops.random` (noise, dropout masks), and in the
audio encoder the matmul form of the first conv, its folded group norm and the Winograd k=3/s=2 convs
(`ops.conv`). On GPU/TPU the plain references (`jnp.dot` under autodiff, `jax.random`,
`lax.conv_general_dilated`, a separate normalisation pass) are what those compilers are built for, so they are
used there until a measurement on that backend says otherwise. Both forms compute the same values (random
numbers bit for bit; the rest within float32 rounding), so the choice never changes a result beyond rounding.

Every call site asks `fast_cpu_ops()` while it is traced: the decision is baked into each compiled program,
and a program traced after the environment changes sees the new decision (a program already compiled keeps
its own; `jax.clear_caches()` drops those). Overrides, read at every call:
- `A2F_PLAIN_OPS=1`: the plain references on every backend (the one variable that routes everything plain);
- `A2F_FAST_OPS=1`: the CPU-tuned forms on every backend (to measure them on an accelerator).
"""

from __future__ import annotations

import os

import jax

from a2f_jax.errors import ConfigError, describe

PLAIN_ENV = "A2F_PLAIN_OPS"
FAST_ENV = "A2F_FAST_OPS"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def _flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(describe(f"environment variable {name}", None, "1 or 0", repr(os.environ[name])))


def ops_decision() -> tuple[bool, str]:
    """(use the CPU-tuned forms, why): the environment overrides first, then the default backend."""
    plain, fast = _flag(PLAIN_ENV), _flag(FAST_ENV)
    if plain and fast:
        raise ConfigError(describe(f"environment variables {PLAIN_ENV} and {FAST_ENV}", None, "at most one set",
                                   "both set"))
    if plain:
        return False, f"{PLAIN_ENV}=1"
    if fast:
        return True, f"{FAST_ENV}=1"
    backend = jax.default_backend()
    return backend == "cpu", f"{backend} backend"


def fast_cpu_ops() -> bool:
    """True: the CPU-tuned forms; False: the plain JAX ops. Call it at trace time (inside the traced function)."""
    return ops_decision()[0]


def describe_decision() -> str:
    """One log line: which forms the programs traced from now on use, and why."""
    fast, why = ops_decision()
    forms = ("CPU-tuned forms (custom-VJP dense, straight-line threefry, matmul/Winograd encoder convs, folded "
             "group norm)" if fast else "plain JAX ops (jnp.dot with autodiff, jax.random, lax.conv, separate norms)")
    return f"ops: {forms} ({why}; override with {PLAIN_ENV}=1 or {FAST_ENV}=1)"


__all__ = ["FAST_ENV", "PLAIN_ENV", "describe_decision", "fast_cpu_ops", "ops_decision"]
