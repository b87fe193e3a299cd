"""Orbax checkpoints of the whole train state (params, optimizer state, step, loss statistics)."""

from __future__ import annotations

import logging
import pathlib
from typing import Any

import jax
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
        self.manager.save(int(step), args=ocp.args.StandardSave(state), force=force)
        self.manager.wait_until_finished()
        log.info("checkpoint saved: step %d -> %s", step, self.directory / str(step))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, like: Any, step: int | None = None) -> Any:
        """Restore into the structure, dtypes and shardings of `like` (a concrete or abstract state)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{self.directory}: expected a checkpoint to resume from, found none")
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)
        return self.manager.restore(int(step), args=ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        self.manager.close()
