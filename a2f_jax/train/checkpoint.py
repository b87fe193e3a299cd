"""Orbax checkpoints of the whole train state (params, optimizer state, step, loss statistics)."""

from __future__ import annotations

import logging
import math
import pathlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class Checkpointer:
    """Periodic + final checkpoints under `<run_dir>/checkpoints/<step>`; restores the newest."""

    def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 3):
        self.directory = pathlib.Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False),
        )

    def save(self, step: int, state: Any, force: bool = True) -> None:
        if step in self.manager.all_steps():
            return
        self.manager.save(int(step), args=ocp.args.StandardSave(without_empty(state)), force=force)
        self.manager.wait_until_finished()
        log.info("checkpoint saved: step %d -> %s", step, self.directory / str(step))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, like: Any, step: int | None = None) -> Any:
        """Restore into the structure, dtypes and shardings of `like` (a concrete or abstract state)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{self.directory}: expected a checkpoint to resume from, found none")
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, without_empty(like))
        restored = self.manager.restore(int(step), args=ocp.args.StandardRestore(abstract))
        return refill_empty(restored, like)

    def close(self) -> None:
        self.manager.close()


def _is_empty(leaf: Any) -> bool:
    return hasattr(leaf, "shape") and math.prod(leaf.shape) == 0


def without_empty(tree: Any) -> Any:
    """`tree` with zero-size arrays replaced by None (an empty node): orbax refuses to save zero-size arrays,
    and a single-emotion dataset gives the explicit-emotion layer a [0, N] kernel (and Adam a [0, N] moment)."""
    return jax.tree_util.tree_map(lambda leaf: None if _is_empty(leaf) else leaf, tree)


def refill_empty(restored: Any, like: Any) -> Any:
    """Put the zero-size leaves of `like` back where `without_empty` left None in `restored`."""
    def fill(template: Any, value: Any) -> Any:
        if not _is_empty(template):
            return value
        zeros = np.zeros(template.shape, template.dtype)
        sharding = getattr(template, "sharding", None)
        return zeros if sharding is None else jax.device_put(zeros, sharding)

    return jax.tree_util.tree_map(fill, like, restored, is_leaf=lambda x: x is None)
