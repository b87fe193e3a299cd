"""Optimizers and learning-rate schedules of the two trainers, as optax transformations.

Regression: Adam with two groups — the network and the implicit emotion database
(lr × EMO_LR_MULT) — decayed by LR_STEP_GAMMA once per epoch; frozen parameters get no update and
no optimizer state (`models.freeze`, the one freezing mechanism of both networks).
Diffusion: Adam with timm's per-epoch warm-up + cosine schedule, stepped after each epoch
(one-epoch lag), and gradient accumulation over GRADIENT_ACCUMULATION_STEPS.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from a2f_jax.models import freeze

Labels = Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """What a network's `make_optimizer` returns: `tx` is what its train step applies (an optax transformation or
    `Accumulate`), `learning_rate(step)` the rate in effect at global step `step` (logged as "learning_rate")."""

    tx: Any
    learning_rate: Callable[[int], float]


def regression_schedule(lr: float, gamma: float, steps_per_epoch: int) -> optax.Schedule:
    """lr · gamma^epoch, the epoch being floor(step / steps_per_epoch) (StepLR stepped per epoch)."""
    return optax.exponential_decay(lr, transition_steps=max(int(steps_per_epoch), 1), decay_rate=gamma, staircase=True)


def regression_optimizer(lr: float, emo_lr_mult: float, gamma: float, steps_per_epoch: int,
                         labels: Labels) -> optax.GradientTransformation:
    """Adam per group; `labels` (`freeze.param_labels`, a pytree or a function of the params) maps each leaf to
    "net", "emo" or `freeze.FROZEN`."""
    net = regression_schedule(lr, gamma, steps_per_epoch)
    emo = regression_schedule(lr * emo_lr_mult, gamma, steps_per_epoch)
    return freeze.with_frozen({"net": optax.adam(net, b1=0.9, b2=0.999, eps=1e-8),
                               "emo": optax.adam(emo, b1=0.9, b2=0.999, eps=1e-8)}, labels)


def diffusion_epoch_lr(epoch: int, lr: float, num_epochs: int, lr_min: float = 1e-5,
                       warmup_lr_init: float = 1e-4, warmup_epochs: int = 10) -> float:
    """Learning rate used *during* `epoch`, with the original's one-epoch lag (epochs 0 and 1 share 1e-4)."""
    tau = epoch - 1
    if tau < 0:
        return warmup_lr_init
    if tau < warmup_epochs:
        return warmup_lr_init + tau * (lr - warmup_lr_init) / warmup_epochs
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * tau / num_epochs))


def diffusion_schedule(lr: float, num_epochs: int, updates_per_epoch: int, **kw: Any) -> optax.Schedule:
    """The per-epoch schedule as a function of the optimizer-update count (piecewise constant per epoch)."""
    table = jnp.asarray([diffusion_epoch_lr(e, lr, num_epochs, **kw) for e in range(num_epochs + 1)], jnp.float32)

    def schedule(count: jax.Array) -> jax.Array:
        epoch = jnp.minimum(count // max(int(updates_per_epoch), 1), num_epochs)
        return table[epoch]

    return schedule


class AccumulationState(NamedTuple):
    mini_step: jax.Array  # micro-steps summed into `acc` so far (int32 scalar)
    acc: Any  # running sum of the micro-step gradients
    inner: Any  # the wrapped optimizer's state


@dataclasses.dataclass(frozen=True)
class Accumulate:
    """Gradient accumulation over `every` micro-steps; the wrapped optimizer runs once per `every`.

    Unlike `optax.MultiSteps`, which evaluates the inner update on every micro-step and keeps or drops
    its result with a select (a full Adam pass over all parameters each time), the inner update here
    runs under `lax.cond`, so the other micro-steps only add their gradients. `apply` also skips the
    parameter write on those steps; `update` is the optax interface (zero updates between emits).
    """

    inner: optax.GradientTransformation
    every: int
    scale: float  # on the summed gradients: 1 ("sum", the original) or 1/every ("mean")

    def init(self, params: Any) -> AccumulationState:
        return AccumulationState(jnp.zeros((), jnp.int32), jax.tree_util.tree_map(jnp.zeros_like, params), self.inner.init(params))

    def _micro_step(self, grads: Any, state: AccumulationState, params: Any, emitted: Callable[[Any, Any], Any],
                    waiting: Callable[[Any], Any]) -> tuple[Any, AccumulationState]:
        """Add `grads`; on the K-th micro-step run the inner update and return `emitted(params, updates)`,
        otherwise `waiting(params)`."""
        acc = jax.tree_util.tree_map(jnp.add, state.acc, grads)

        def do(acc: Any, inner: Any, params: Any) -> tuple[Any, AccumulationState]:
            scaled = acc if self.scale == 1.0 else jax.tree_util.tree_map(lambda g: g * self.scale, acc)
            updates, inner = self.inner.update(scaled, inner, params)
            zeros = jax.tree_util.tree_map(jnp.zeros_like, acc)
            return emitted(params, updates), AccumulationState(jnp.zeros((), jnp.int32), zeros, inner)

        def wait(acc: Any, inner: Any, params: Any) -> tuple[Any, AccumulationState]:
            return waiting(params), AccumulationState(state.mini_step + 1, acc, inner)

        return jax.lax.cond(state.mini_step == self.every - 1, do, wait, acc, state.inner, params)

    def update(self, grads: Any, state: AccumulationState, params: Any = None) -> tuple[Any, AccumulationState]:
        return self._micro_step(grads, state, params, lambda _p, updates: updates,
                                lambda _p: jax.tree_util.tree_map(jnp.zeros_like, grads))

    def apply(self, grads: Any, state: AccumulationState, params: Any) -> tuple[Any, AccumulationState]:
        return self._micro_step(grads, state, params, optax.apply_updates, lambda p: p)


def accumulate(inner: optax.GradientTransformation, every: int, reduction: str = "sum") -> Any:
    """Gradient accumulation over `every` micro-steps; "sum" as the original (it never divides), or "mean"."""
    if every <= 1:
        return inner
    if reduction not in ("sum", "mean"):
        raise ValueError(f"GRAD_ACCUM_REDUCTION: expected 'sum' or 'mean', found {reduction!r}")
    return Accumulate(inner, int(every), 1.0 if reduction == "sum" else 1.0 / every)


def apply_gradients(opt: Any, grads: Any, opt_state: Any, params: Any) -> tuple[Any, Any]:
    """(new params, new optimizer state) for one (micro-)step; accumulation skips the parameter pass between emits."""
    if isinstance(opt, Accumulate):
        return opt.apply(grads, opt_state, params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state
