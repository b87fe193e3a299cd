"""Blendshape weights from geometry, with the Audio2Face-3D SDK's solver semantics (NumPy only).

- ``formats``: the actor's ``bs_*.npz`` and ``bs_*_config.json`` → ``BlendshapeData``, ``BlendshapeConfig``.
- ``qp``: the batched box-constrained QP solver (``solve_box_qp``).
- ``solver``: ``BlendshapeSolver`` (the SDK's per-frame energy, temporal term, cancel pairs), ``from_files``.
- ``weights``: weight files (``write_weights`` / ``read_weights``: csv, json, npz).
- ``pipeline``: geometry files in, weight files out (``solve_to_files``).
"""

from a2f_jax.blendshapes.formats import (
    DEFAULT_TEMPLATE_BB_SIZE,
    DEFAULT_TOLERANCE,
    BlendshapeConfig,
    BlendshapeData,
    config_from_dict,
    load_blendshape_config,
    load_blendshape_data,
)
from a2f_jax.blendshapes.pipeline import load_animation, solve_to_files
from a2f_jax.blendshapes.qp import solve_box_qp
from a2f_jax.blendshapes.solver import CANCEL_UPPER_BOUND, TEMPORAL_MODES, BlendshapeSolver, from_files
from a2f_jax.blendshapes.weights import read_weights, write_weights

__all__ = [
    "CANCEL_UPPER_BOUND",
    "DEFAULT_TEMPLATE_BB_SIZE",
    "DEFAULT_TOLERANCE",
    "TEMPORAL_MODES",
    "BlendshapeConfig",
    "BlendshapeData",
    "BlendshapeSolver",
    "config_from_dict",
    "from_files",
    "load_animation",
    "load_blendshape_config",
    "load_blendshape_data",
    "read_weights",
    "solve_box_qp",
    "solve_to_files",
    "write_weights",
]
