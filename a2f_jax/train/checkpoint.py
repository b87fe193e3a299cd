"""Orbax checkpoints of the whole train state (params, optimizer state, step, loss statistics).

Restoring checks the checkpoint's tree against the state being restored first (a changed network is a
CheckpointError naming the first differing parameter and both shapes) and falls back from a torn newest
checkpoint (a file truncated or deleted) to the newest intact one, with a warning.
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
import shutil
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from a2f_jax.errors import CheckpointError

log = logging.getLogger(__name__)


class Checkpointer:
    """Periodic + final checkpoints under `<run_dir>/checkpoints/<step>`; restores the newest."""

    def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 3):
        self.directory = pathlib.Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False),
            item_handlers=ocp.StandardCheckpointHandler(),  # known up front, so item_metadata reads the tree
        )

    def save(self, step: int, state: Any, force: bool = True) -> None:
        if step in self.manager.all_steps():
            return
        self.manager.save(int(step), args=ocp.args.StandardSave(without_empty(state)), force=force)
        self.manager.wait_until_finished()
        log.info("checkpoint saved: step %d -> %s", step, self.directory / str(step))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def steps(self) -> list[int]:
        return sorted(int(s) for s in self.manager.all_steps())

    def restore(self, like: Any, step: int | None = None) -> Any:
        """Restore into the structure, dtypes and shardings of `like` (a concrete or abstract state).

        Without `step`: the newest checkpoint that reads back whole; a torn newer one is reported and moved
        aside to `<step>.torn` (so training can write that step again)."""
        if step is not None:
            return self._restore_step(like, int(step))
        steps = self.steps()
        if not steps:
            raise CheckpointError(f"{self.directory}: expected a checkpoint to resume from, found none")
        torn: list[tuple[int, str]] = []
        for candidate in reversed(steps):
            try:
                restored = self._restore_step(like, candidate)
            except _Torn as exc:
                torn.append((candidate, str(exc)))
                continue
            if torn:
                self._set_aside([s for s, _ in torn])
                log.warning("checkpoint step %s is torn (%s): resuming from step %d instead; the torn one is moved "
                            "to %s", ", ".join(str(s) for s, _ in torn), torn[0][1], candidate,
                            ", ".join(f"{s}.torn" for s, _ in torn))
            return restored
        details = "; ".join(f"step {s}: {why}" for s, why in torn)
        raise CheckpointError(f"{self.directory}: expected an intact checkpoint to resume from, found only torn ones ({details})")

    def _restore_step(self, like: Any, step: int) -> Any:
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, without_empty(like))
        try:
            stored = self.manager.item_metadata(step)
        except Exception as exc:  # noqa: BLE001 - orbax/tensorstore raise plain Exceptions for unreadable files
            raise _Torn(_one_line(exc)) from exc
        tree = getattr(stored, "tree", None)
        if tree is not None:
            check_compatible(tree, abstract, self.directory / str(step))
        quiet = logging.getLogger("asyncio")  # a failed read logs every cancelled task's traceback there
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as exc:  # noqa: BLE001 - a truncated or missing file: any of several error types
            raise _Torn(_one_line(exc)) from exc
        finally:
            quiet.setLevel(level)
        return refill_empty(restored, like)

    def _set_aside(self, steps: list[int]) -> None:
        for step in steps:
            src = self.directory / str(step)
            dst = self.directory / f"{step}.torn"
            if dst.exists():
                shutil.rmtree(dst)
            os.replace(src, dst)
        self.manager.reload()

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


class _Torn(Exception):
    """A checkpoint whose files do not read back (internal: `restore` falls back to an older one)."""


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split(" [tensorstore_spec")[0].split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _key_name(key: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _flat_shapes(tree: Any) -> dict[str, tuple]:
    """{"params/net/dense/kernel": shape} of a state or of a checkpoint's metadata tree (namedtuple fields and
    dict keys spelled alike, so optimizer states compare)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
    return {"/".join(_key_name(k) for k in path): tuple(getattr(leaf, "shape", ())) for path, leaf in leaves}


def check_compatible(stored_tree: Any, like: Any, where: pathlib.Path) -> None:
    """CheckpointError naming the first parameter whose presence or shape differs between the checkpoint and the
    state being restored (a resume with a changed network size or type)."""
    stored, wanted = _flat_shapes(stored_tree), _flat_shapes(like)
    hint = ("the run was trained with a different network: resume with the run's own configs (its configs/ folder) "
            "or start a new run")
    for name, shape in sorted(wanted.items(), key=lambda item: not item[0].startswith("params/")):  # params first
        if name not in stored:
            raise CheckpointError(f"{where}: expected {name} of shape {shape} (the network of the current configs), "
                                  f"found no such entry in the checkpoint; {hint}")
        if stored[name] != shape:
            raise CheckpointError(f"{where}: expected {name} of shape {shape} (the network of the current configs), "
                                  f"found shape {stored[name]} in the checkpoint; {hint}")
    extra = [name for name in stored if name not in wanted]
    if extra:
        raise CheckpointError(f"{where}: expected the entries of the current network only, found {extra[0]} "
                              f"(and {len(extra) - 1} more) in the checkpoint; {hint}")
