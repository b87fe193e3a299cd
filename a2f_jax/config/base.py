"""The base configs: every parameter of the original's config_base modules, plus a2f-jax's additions.

Each function returns a fresh `ml_collections.ConfigDict`. Paths start with `$A2F_DATASETS_ROOT` or
`$A2F_WORKSPACE_ROOT`; `a2f_jax.config.load` expands them.
"""

from __future__ import annotations

import ml_collections

from a2f_jax.config import dataset as _dataset
from a2f_jax.config import inference_diffusion as _inference_diffusion
from a2f_jax.config import inference_regression as _inference_regression
from a2f_jax.config import preproc as _preproc
from a2f_jax.config import train_diffusion as _train_diffusion
from a2f_jax.config import train_regression as _train_regression

NETWORK_TYPES = ("regression", "diffusion")
CONFIG_TYPES = ("dataset", "preproc", "train", "inference")

# Keys whose value may be None although the base value is not: None switches the feature off.
NULLABLE_KEYS = frozenset(
    {
        "AUG_MUTED_AUDIO_NOISE_TYPE",
        "AUG_MUTED_AUDIO_NOISE_LOCAL_SCALE_RANGE",
        "SHOT_EMOTION_NAME_FOR_ALL_ZEROS",
    }
)

# Dict-valued keys whose listed children accept any content (beyond what the base holds).
# Empty base dicts (the per-actor dicts) are open anyway, as in the original's validation.
OPEN_CHILDREN = {
    "AUGMENT": ("pitch_shift",),
    "STREAMING_CFG": ("*",),
}

# Per-actor dataset keys that preprocessing and training index directly, so every actor of
# ACTOR_NAMES needs a value.
MANDATORY_ACTOR_KEYS = ("AUDIO_ROOT", "SKIN_CACHE_ROOT", "CACHE_FPS")


def dataset() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(_dataset.base_dict())


def preproc() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(_preproc.base_dict())


def train_regression() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(_train_regression.base_dict())


def train_diffusion() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(_train_diffusion.base_dict())


def inference_regression() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(_inference_regression.base_dict())


def inference_diffusion() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(_inference_diffusion.base_dict())


def base_dicts(network_type: str) -> dict[str, dict]:
    """Fresh plain-dict bases of the four config types for one network type."""
    if network_type not in NETWORK_TYPES:
        raise ValueError(f"network_type: expected one of {NETWORK_TYPES}, found {network_type!r}")
    regression = network_type == "regression"
    return {
        "dataset": _dataset.base_dict(),
        "preproc": _preproc.base_dict(),
        "train": (_train_regression if regression else _train_diffusion).base_dict(),
        "inference": (_inference_regression if regression else _inference_diffusion).base_dict(),
    }


def is_nullable(key: str, base_value: object) -> bool:
    """None is accepted for keys that default to None, the optional listed keys and any loss alpha."""
    if base_value is None or key in NULLABLE_KEYS:
        return True
    return key.startswith("LOSS_") and key.endswith("_ALPHA")
