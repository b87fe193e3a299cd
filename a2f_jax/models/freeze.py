"""The one freezing mechanism of both networks: labels by param path, then two uses of the same labels.

1. `param_labels(params, frozen, group)`: "frozen" for the leaves the predicate picks, else the leaf's
   optimizer group ("trainable", or e.g. "net"/"emo" for the regression network's two Adam groups).
2. `with_frozen(tx or {group: tx}, labels)`: the optimizer; frozen leaves get `optax.set_to_zero()`, i.e. zero
   updates and no optimizer state.
3. `stop_gradient_frozen(params, labels)` inside the loss: the frozen leaves' gradients are constant zeros, so
   no backward pass runs through them (as PyTorch skips `requires_grad=False` weights).

The original freezes (`requires_grad=False`):
- regression: the whole wav2vec2 encoder (scheme "whole_encoder", when NETWORK_HYPER_PARAMS w2v_freeze);
- diffusion: HuBERT's conv feature encoder, feature projection and blocks 0 and 1
  (scheme "front_and_first_two"); the positional conv, encoder LayerNorm, blocks 2+ and
  `masked_spec_embed` train with the rest.
(Frozen params still run in train mode, dropout and all, as in the original: freezing is only about updates.)
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

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


def param_labels(params: Any, frozen: Callable[[tuple[str, ...]], bool],
                 group: str | Callable[[tuple[str, ...]], str] = TRAINABLE) -> Any:
    """A pytree like `params` holding per leaf "frozen", or its optimizer group: `group` itself, or
    `group(path)` for a callable (path: the tuple of key names)."""
    def label(path: Any, _leaf: Any) -> str:
        names = tuple(_key_name(p) for p in path)
        if frozen(names):
            return FROZEN
        return group(names) if callable(group) else group

    return jax.tree_util.tree_map_with_path(label, params)


def with_frozen(tx: optax.GradientTransformation | Mapping[str, optax.GradientTransformation],
                labels: Any) -> optax.GradientTransformation:
    """`tx` (one transformation for the "trainable" group, or one per group label) on the trainable leaves,
    zero updates (and no state) on the frozen ones."""
    groups = dict(tx) if isinstance(tx, Mapping) else {TRAINABLE: tx}
    if FROZEN in groups:
        raise ValueError(f"with_frozen: expected optimizer groups other than {FROZEN!r}, found {sorted(groups)}")
    return optax.multi_transform({**groups, FROZEN: optax.set_to_zero()}, labels)


def freeze_encoder(
    tx: optax.GradientTransformation, params: Any, scheme: str, encoder_path: Sequence[str] = ()
) -> optax.GradientTransformation:
    """Shortcut: `with_frozen(tx, param_labels(params, encoder_frozen(scheme, encoder_path)))`."""
    return with_frozen(tx, param_labels(params, encoder_frozen(scheme, encoder_path)))


def stop_gradient_frozen(params: Any, labels: Any) -> Any:
    """`params` with `lax.stop_gradient` on frozen leaves. Use inside the loss: jax.grad then returns zeros for
    them without running the backward pass through the frozen encoder (XLA drops the dead computation)."""
    return jax.tree_util.tree_map(lambda p, lab: jax.lax.stop_gradient(p) if lab == FROZEN else p, params, labels)


__all__ = ["FROZEN", "SCHEMES", "TRAINABLE", "encoder_frozen", "freeze_encoder", "param_labels", "stop_gradient_frozen",
           "with_frozen"]
