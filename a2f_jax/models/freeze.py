"""Frozen parameters for optax: labels by param path, and an optimizer that skips the frozen ones.

The original freezes (`requires_grad=False`):
- regression: the whole wav2vec2 encoder (scheme "whole_encoder");
- diffusion: HuBERT's conv feature encoder, feature projection and blocks 0 and 1
  (scheme "front_and_first_two"); the positional conv, encoder LayerNorm, blocks 2+ and
  `masked_spec_embed` train with the rest.
Frozen params get `optax.set_to_zero()`: zero updates and no optimizer state. (They still run in train
mode, dropout and all, as in the original: freezing is only about updates.)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import optax

from a2f_jax.errors import ConfigError

FROZEN = "frozen"
TRAINABLE = "trainable"

SCHEMES = ("none", "whole_encoder", "front_and_first_two")


def _key_name(entry: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def encoder_frozen(scheme: str, encoder_path: Sequence[str]) -> Callable[[tuple[str, ...]], bool]:
    """Predicate on a param path (tuple of names) for the encoder's params found under `encoder_path`."""
    if scheme not in SCHEMES:
        raise ConfigError(f"encoder freeze scheme: expected one of {SCHEMES}, found {scheme!r}")
    prefix = tuple(encoder_path)

    def frozen(path: tuple[str, ...]) -> bool:
        if scheme == "none" or path[: len(prefix)] != prefix:
            return False
        rel = path[len(prefix):]
        if scheme == "whole_encoder":
            return True
        if rel[:1] in (("feature_extractor",), ("feature_projection",)):
            return True
        return rel[:2] in (("encoder", "layers_0"), ("encoder", "layers_1"))

    return frozen


def param_labels(params: Any, frozen: Callable[[tuple[str, ...]], bool]) -> Any:
    """A pytree like `params` holding "frozen"/"trainable" per leaf."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: FROZEN if frozen(tuple(_key_name(p) for p in path)) else TRAINABLE, params
    )


def with_frozen(tx: optax.GradientTransformation, labels: Any) -> optax.GradientTransformation:
    """`tx` on trainable leaves, zero updates (and no state) on frozen ones."""
    return optax.multi_transform({TRAINABLE: tx, FROZEN: optax.set_to_zero()}, labels)


def freeze_encoder(
    tx: optax.GradientTransformation, params: Any, scheme: str, encoder_path: Sequence[str] = ()
) -> optax.GradientTransformation:
    """Shortcut: `with_frozen(tx, param_labels(params, encoder_frozen(scheme, encoder_path)))`."""
    return with_frozen(tx, param_labels(params, encoder_frozen(scheme, encoder_path)))


def stop_gradient_frozen(params: Any, labels: Any) -> Any:
    """`params` with `lax.stop_gradient` on frozen leaves. Use inside the loss: jax.grad then returns zeros for
    them without running the backward pass through the frozen encoder (XLA drops the dead computation)."""
    return jax.tree_util.tree_map(lambda p, lab: jax.lax.stop_gradient(p) if lab == FROZEN else p, params, labels)


__all__ = ["stop_gradient_frozen", "FROZEN", "TRAINABLE", "SCHEMES", "encoder_frozen", "param_labels", "with_frozen", "freeze_encoder"]
