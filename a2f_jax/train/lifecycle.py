"""What both trainers do around the loop: step budget, run folder (new or resumed), checkpoint restore,
TensorBoard writer, closing files and the scalar history."""

from __future__ import annotations

import logging
import pathlib
from typing import Any, Callable

import jax

from a2f_jax.io_utils import atomic_write_json
from a2f_jax.train.checkpoint import Checkpointer
from a2f_jax.train.loop import LoopResult, LoopSettings, run_loop

log = logging.getLogger(__name__)


def total_steps(tcfg: Any, steps_per_epoch: int, max_steps: int | None) -> int:
    """NUM_EPOCHS × steps per epoch, capped by --max-steps or MAX_TRAIN_STEPS."""
    total = steps_per_epoch * int(tcfg.NUM_EPOCHS)
    limit = max_steps if max_steps is not None else tcfg.get("MAX_TRAIN_STEPS", None)
    return total if limit is None else min(total, int(limit))


def open_run(configs: Any, artifacts: dict, resume: str | None, write_metadata: Callable[[pathlib.Path], None]) -> pathlib.Path:
    """The resumed run folder (log appended), or a new one with its configs and the trainer's metadata."""
    from a2f_jax import rundir

    if resume:
        run_dir = pathlib.Path(resume)
        rundir.attach_log_file(run_dir)
        return run_dir
    tcfg = configs.train
    runs = {a: art.preproc_dir.name for a, art in artifacts.items() if art.preproc_dir is not None}
    run_dir = rundir.create_run_dir(tcfg.TRAIN_OUTPUT_ROOT, tcfg.RUN_NAME, configs, stage="train", preproc_runs=runs)
    write_metadata(run_dir)
    return run_dir


def restore(run_dir: pathlib.Path, tcfg: Any, state: Any, resume: bool) -> tuple[Checkpointer, Any, int]:
    """(checkpointer, state, first step): the newest checkpoint's state when resuming, else `state` at step 0."""
    ckpt = Checkpointer(run_dir / "checkpoints", int(tcfg.get("MAX_CHECKPOINTS_TO_KEEP", 3)))
    if resume and ckpt.latest_step() is not None:
        state = ckpt.restore(state)
        log.info("resumed from step %d of %s", int(state["step"]), run_dir)
        return ckpt, state, int(state["step"])
    return ckpt, state, 0


def run_and_close(run_dir: pathlib.Path, ckpt: Checkpointer, state: Any, start: int,
                  step_fn: Callable[[Any, Any], tuple[Any, dict]], make_batch: Callable[[int], Any],
                  settings: LoopSettings, **hooks: Any) -> LoopResult:
    """Run the shared loop with a TensorBoard writer in the run folder, then close everything and write
    `history.json`."""
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(run_dir)) if jax.process_index() == 0 else None
    try:
        result = run_loop(state, start, step_fn, make_batch, settings, checkpointer=ckpt, writer=writer, **hooks)
    finally:
        ckpt.close()
        if writer is not None:
            writer.close()
    atomic_write_json(run_dir / "history.json", result.history)
    log.info("training %s at step %d: %s", "interrupted" if result.interrupted else "finished", result.last_step, run_dir)
    return result
