"""Speed code in one place: each CPU-tuned op beside its plain reference, and the one switch between them.

- `ops.switch`: `fast_cpu_ops()` (auto: the CPU-tuned forms on the CPU backend, the plain ones elsewhere;
  `A2F_PLAIN_OPS=1` forces the plain references everywhere, `A2F_FAST_OPS=1` the tuned forms);
- `ops.dense`: `x @ W + b` with a row-major custom VJP (`dense`) / plain autodiff (`dense_reference`); call
  sites use `linear`;
- `ops.random`: Threefry-2x32 written straight-line (`normal`, `uniform`) / `jax.random`; call sites use
  `noise_normal` and `dropout_uniform`;
- `ops.conv`: the audio encoder's first conv as a matmul with a folded group norm and the Winograd k=3/s=2
  conv / `lax.conv_general_dilated` and a separate norm pass; call sites use `feature_conv`; also the
  regression network's conv-as-matmul (`conv1d_matmul`, a model choice rather than a backend one).

Layer 2 of the package order (`docs/DEVELOPING.md`): imports only the foundation (`a2f_jax.errors`).
"""

from a2f_jax.ops.switch import FAST_ENV, PLAIN_ENV, describe_decision, fast_cpu_ops, ops_decision

__all__ = ["FAST_ENV", "PLAIN_ENV", "describe_decision", "fast_cpu_ops", "ops_decision"]
