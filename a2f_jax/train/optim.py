"""Optimizers and learning-rate schedules of the two trainers, as optax transformations.

Regression (spec §5.1): Adam with two groups — the network and the implicit emotion database
(lr × EMO_LR_MULT) — decayed by LR_STEP_GAMMA once per epoch; frozen parameters get no update and
no optimizer state.
Diffusion (spec §5.2): Adam with timm's per-epoch warm-up + cosine schedule, stepped after each epoch
(one-epoch lag), and gradient accumulation over GRADIENT_ACCUMULATION_STEPS.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

Labels = Callable[[Any], Any]


def regression_schedule(lr: float, gamma: float, steps_per_epoch: int) -> optax.Schedule:
    """lr · gamma^epoch, the epoch being floor(step / steps_per_epoch) (StepLR stepped per epoch)."""
    return optax.exponential_decay(lr, transition_steps=max(int(steps_per_epoch), 1), decay_rate=gamma, staircase=True)


def regression_optimizer(lr: float, emo_lr_mult: float, gamma: float, steps_per_epoch: int,
                         labels: Labels) -> optax.GradientTransformation:
    """Adam per group; `labels(params)` maps each leaf to "net", "emo" or "frozen"."""
    net = regression_schedule(lr, gamma, steps_per_epoch)
    emo = regression_schedule(lr * emo_lr_mult, gamma, steps_per_epoch)
    return optax.multi_transform(
        {"net": optax.adam(net, b1=0.9, b2=0.999, eps=1e-8),
         "emo": optax.adam(emo, b1=0.9, b2=0.999, eps=1e-8),
         "frozen": optax.set_to_zero()},
        labels,
    )


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


def accumulate(inner: optax.GradientTransformation, every: int, reduction: str = "sum") -> optax.GradientTransformation:
    """Gradient accumulation over `every` micro-steps; "sum" as the original (it never divides), or "mean"."""
    if every <= 1:
        return inner
    if reduction not in ("sum", "mean"):
        raise ValueError(f"GRAD_ACCUM_REDUCTION: expected 'sum' or 'mean', found {reduction!r}")
    if reduction == "sum":
        # MultiSteps averages; scaling by `every` first turns its mean into the original's sum.
        inner = optax.chain(optax.scale(float(every)), inner)
    return optax.MultiSteps(inner, every_k_schedule=every)
