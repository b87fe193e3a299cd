"""What both trainers do around the loop: step budget, run folder (new or resumed), the run's state,
checkpoint restore, TensorBoard writer, closing files and the scalar history.

A training run's `run_status.json` says where it stands:
    running      from the start, updated at every checkpoint (step, total_steps, checkpoint, pid, host)
    complete     every step done; written after params.msgpack and every other export
    stopped      the user asked for a graceful stop (`touch RUN_DIR/STOP`): checkpoint and exports written,
                 exit 0; `--resume` continues it
    interrupted  SIGTERM / Ctrl-C: checkpoint saved, no new params.msgpack; `TrainingStopped` (exit code 3)
    failed       an error ended the session (`reason` holds its message)
Deploy and inference accept complete and stopped runs only (`rundir.require_finished`).

A resumed run keeps one record: `history.json` holds the scalars of every session, `configs/` the train
config of the newest session (with --max-steps written as MAX_TRAIN_STEPS) and `configs/sessions.json` one
entry per session (start step, total, what changed in the train config).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import pathlib
import sys
from typing import Any, Callable, Iterator

import jax

from a2f_jax import rundir
from a2f_jax.errors import ConfigError, RunError, TrainingStopped, describe
from a2f_jax.io_utils import atomic_write_json
from a2f_jax.runs import TrainingRun
from a2f_jax.train.checkpoint import Checkpointer
from a2f_jax.train.loop import LoopResult, LoopSettings, run_loop

log = logging.getLogger(__name__)

STOP_FILE = "STOP"  # `touch RUN_DIR/STOP`: finish the current step, save, end with status "stopped"
SESSIONS_FILE = "sessions.json"  # in configs/
HISTORY_FILE = "history.json"
RUN_MARKERS = (rundir.CONFIG_DIR, TrainingRun.MODEL_DEF, rundir.STATUS_FILE)  # what makes a folder a training run
_BUDGET_KEYS = ("MAX_TRAIN_STEPS", "NUM_EPOCHS")  # expected to change when a run is continued


@dataclasses.dataclass(frozen=True)
class Session:
    """One `train()` call on a run folder: where it starts and ends, and how to continue it."""

    run_dir: pathlib.Path
    start: int
    total: int
    number: int
    config_dir: str


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_step_budget(tcfg: Any, max_steps: int | None) -> None:
    """ConfigError unless NUM_EPOCHS and the step cap in effect (--max-steps, else MAX_TRAIN_STEPS) are positive
    whole numbers: zero steps would write an untrained model as if it were trained."""
    if not _positive_int(tcfg.get("NUM_EPOCHS", None)):
        raise ConfigError(describe("config_train", "NUM_EPOCHS", "a whole number of epochs > 0", repr(tcfg.get("NUM_EPOCHS", None))))
    if max_steps is not None:
        if not _positive_int(max_steps):
            raise ConfigError(describe("command line", "--max-steps", "a whole number of steps > 0", repr(max_steps)))
        return
    limit = tcfg.get("MAX_TRAIN_STEPS", None)
    if limit is not None and not _positive_int(limit):
        raise ConfigError(describe("config_train", "MAX_TRAIN_STEPS", "None or a whole number of steps > 0", repr(limit)))


def total_steps(tcfg: Any, steps_per_epoch: int, max_steps: int | None) -> int:
    """NUM_EPOCHS × steps per epoch, capped by --max-steps or MAX_TRAIN_STEPS; a ConfigError when that is zero."""
    check_step_budget(tcfg, max_steps)
    if steps_per_epoch <= 0:
        raise ConfigError(describe("config_train", "CLIPS", "training samples for at least one step per epoch",
                                   "none (every clip held out in VALIDATION_CLIPS, or no clip long enough)"))
    total = steps_per_epoch * int(tcfg.NUM_EPOCHS)
    limit = max_steps if max_steps is not None else tcfg.get("MAX_TRAIN_STEPS", None)
    return total if limit is None else min(total, int(limit))


def check_resume(resume: str | os.PathLike | None) -> pathlib.Path | None:
    """The run folder to resume, or a RunError saying what is missing (before any data is read)."""
    if resume is None:
        return None
    path = pathlib.Path(resume)
    what = "a training run folder to resume (--resume)"
    if not path.is_dir():
        raise RunError(f"{path}: expected {what}, found {'a file' if path.exists() else 'nothing'}")
    missing = [name for name in RUN_MARKERS if not (path / name).exists()]
    if missing:
        raise RunError(f"{path}: expected {what} (with {', '.join(RUN_MARKERS)}), found no {', '.join(missing)}"
                       " (start a new run without --resume)")
    record = rundir.read_status(path)
    if record is None:
        raise RunError(f"{path / rundir.STATUS_FILE}: expected the status of a training run, found an unreadable file")
    if record["status"] == "running" and record.get("pid") != os.getpid() and rundir.writer_alive(record):
        raise RunError(f"{path}: expected a training run no process is writing, found one being trained by "
                       f"process {record['pid']} on {record['host']} (stop it first: touch {path / STOP_FILE})")
    return path


def already_complete(resume_dir: pathlib.Path | None, total: int) -> bool:
    """True (and says so) when resuming a complete run that already has `total` steps: nothing to do. A
    no-op rather than an error, so `train.py --resume RUN && deploy.py` can be run again safely."""
    record = rundir.read_status(resume_dir) if resume_dir is not None else None
    if not record or record["status"] != "complete" or not isinstance(record.get("step"), int) or record["step"] < total:
        return False
    log.info("%s is complete at step %d (%d asked): nothing to train; raise --max-steps, MAX_TRAIN_STEPS or "
             "NUM_EPOCHS to continue it", resume_dir, record["step"], total)
    return True


def _status(run_dir: pathlib.Path, status: str, **fields: Any) -> None:
    if jax.process_index() == 0:
        rundir.write_status(run_dir, status, **fields)


def open_run(configs: Any, artifacts: dict, resume_dir: pathlib.Path | None,
             write_metadata: Callable[[pathlib.Path], None], total: int) -> pathlib.Path:
    """The resumed run folder (log appended), or a new one with status "running", its configs and the trainer's
    metadata."""
    if resume_dir is not None:
        rundir.attach_log_file(resume_dir)
        return resume_dir
    tcfg = configs.train
    runs = {a: art.preproc_dir.name for a, art in artifacts.items() if art.preproc_dir is not None}
    run_dir = rundir.create_run_dir(tcfg.TRAIN_OUTPUT_ROOT, tcfg.RUN_NAME, configs, stage="train", preproc_runs=runs)
    _status(run_dir, "running", step=0, total_steps=total, checkpoint=None, session=1, **rundir.process_fields())
    with recording_failure(run_dir):
        write_metadata(run_dir)
    return run_dir


def restore(run_dir: pathlib.Path, tcfg: Any, state: Any, resume: bool) -> tuple[Checkpointer, Any, int]:
    """(checkpointer, state, first step): the newest intact checkpoint's state when resuming, else `state` at 0."""
    ckpt = Checkpointer(run_dir / TrainingRun.CHECKPOINTS, int(tcfg.get("MAX_CHECKPOINTS_TO_KEEP", 3)))
    if not resume:
        return ckpt, state, 0
    if ckpt.latest_step() is None:
        log.warning("%s has no checkpoint yet: training starts at step 0", run_dir)
        return ckpt, state, 0
    try:
        state = ckpt.restore(state)
    except BaseException:
        ckpt.close()
        raise
    log.info("resumed from step %d of %s", int(state["step"]), run_dir)
    return ckpt, state, int(state["step"])


def _train_config(configs: Any, max_steps: int | None) -> dict:
    """The train config as recorded (JSON types, sorted keys), --max-steps written as MAX_TRAIN_STEPS."""
    full = configs.train.to_dict()
    if max_steps is not None:
        full["MAX_TRAIN_STEPS"] = int(max_steps)
    return json.loads(json.dumps({k: full[k] for k in sorted(full)}))


def _read_json(path: pathlib.Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def _record_configs(run_dir: pathlib.Path, configs: Any, max_steps: int | None, resumed: bool) -> dict:
    """Write the session's train config into `configs/`; returns what changed since the previous session."""
    cfg_dir = run_dir / rundir.CONFIG_DIR
    new = _train_config(configs, max_steps)
    old = _read_json(run_dir / TrainingRun.TRAIN_CONFIG, {}) if resumed else {}
    changes = {k: {"from": old.get(k), "to": new.get(k)} for k in sorted(set(old) | set(new))
               if resumed and old.get(k) != new.get(k)}
    modifier = dict(configs.modifiers.get("train") or {})
    if max_steps is not None:
        modifier["MAX_TRAIN_STEPS"] = int(max_steps)
    if jax.process_index() == 0:
        atomic_write_json(run_dir / TrainingRun.TRAIN_CONFIG, new)
        if modifier:
            atomic_write_json(cfg_dir / "config_train_modifier.json", json.loads(json.dumps(modifier)))
    others = [k for k in changes if k not in _BUDGET_KEYS]
    if others:
        log.warning("resumed with a changed train config: %s (recorded in %s)", ", ".join(others), cfg_dir / SESSIONS_FILE)
    return changes


def begin_session(run_dir: pathlib.Path, configs: Any, max_steps: int | None, start: int, total: int,
                  resumed: bool) -> Session:
    """Record the session (configs/, sessions.json), clear a stale STOP file and mark the run "running"."""
    sessions = _read_json(run_dir / rundir.CONFIG_DIR / SESSIONS_FILE, [])
    sessions = sessions if isinstance(sessions, list) else []
    changes = _record_configs(run_dir, configs, max_steps, resumed)
    number = len(sessions) + 1
    stop = run_dir / STOP_FILE
    if stop.exists():
        log.warning("removed %s left from before this session (touch it again to stop this one)", stop)
        stop.unlink(missing_ok=True)
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    entry = {"session": number, "started": started, "start_step": start,
             "total_steps": total, "max_steps": max_steps, "command": [sys.executable, *sys.argv],
             "config_changes": changes}
    checkpoint = str(run_dir / TrainingRun.CHECKPOINTS / str(start)) if start else None
    if jax.process_index() == 0:
        atomic_write_json(run_dir / rundir.CONFIG_DIR / SESSIONS_FILE, [*sessions, entry])
    _status(run_dir, "running", step=start, total_steps=total, checkpoint=checkpoint, session=number,
            **rundir.process_fields())
    config_dir = str(configs.config_dir) if getattr(configs, "config_dir", None) else "<CONFIG_DIR>"
    return Session(run_dir, start, total, number, config_dir)


@contextlib.contextmanager
def recording_failure(run_dir: pathlib.Path) -> Iterator[None]:
    """Mark the run "failed" (or "interrupted" on a second Ctrl-C) when an error ends this process's session.
    A run this process has not started writing (a resume that failed before its first step) keeps its status."""
    try:
        yield
    except TrainingStopped:
        raise
    except BaseException as exc:
        record = rundir.read_status(run_dir)
        if record and record["status"] == "running" and record.get("pid") == os.getpid():
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            reason = "Ctrl-C twice: stopped at once, no checkpoint at the current step" if status == "interrupted" \
                else f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
            fields = {k: record.get(k) for k in ("step", "total_steps", "checkpoint", "session")}
            _status(run_dir, status, reason=reason, **fields)
        raise


def _history_before(previous: Any, start: int) -> list[dict]:
    """Entries of earlier sessions up to `start` (steps a resumed session redoes are dropped): train scalars are
    logged at the index of their step, validation at the number of steps done."""
    if not isinstance(previous, list):
        return []

    def keep(entry: Any) -> bool:
        if not isinstance(entry, dict) or not isinstance(entry.get("step"), int):
            return False
        validation = all(k == "step" or k.startswith("val/") for k in entry)
        return entry["step"] < start or (validation and entry["step"] == start)

    return [e for e in previous if keep(e)]


def _write_history(run_dir: pathlib.Path, history: list[dict]) -> None:
    if jax.process_index() == 0:
        atomic_write_json(run_dir / HISTORY_FILE, history)


def run_and_close(session: Session, ckpt: Checkpointer, state: Any,
                  step_fn: Callable[[Any, Any], tuple[Any, dict]], make_batch: Callable[[int], Any],
                  settings: LoopSettings, export: Callable[[Any], None], **hooks: Any) -> LoopResult:
    """Run the shared loop with a TensorBoard writer in the run folder, close everything, write `history.json`,
    `export(state)` the results unless interrupted, and record how the session ended (see the module doc).
    Raises TrainingStopped after a signal."""
    from tensorboardX import SummaryWriter  # heavy optional dependency (torch-style writer): only a training session

    run_dir = session.run_dir
    previous = _history_before(_read_json(run_dir / HISTORY_FILE, []), session.start)
    settings = dataclasses.replace(settings, stop_file=run_dir / STOP_FILE)

    def on_checkpoint(step: int, history: list[dict]) -> None:
        _write_history(run_dir, previous + history)
        _status(run_dir, "running", step=step, total_steps=session.total, checkpoint=str(ckpt.directory / str(step)),
                session=session.number, **rundir.process_fields())

    writer = SummaryWriter(str(run_dir)) if jax.process_index() == 0 else None
    try:
        result = run_loop(state, session.start, step_fn, make_batch, settings, checkpointer=ckpt, writer=writer,
                          on_checkpoint=on_checkpoint, **hooks)
    finally:
        ckpt.close()
        if writer is not None:
            writer.close()
    _write_history(run_dir, previous + result.history)
    fields = {"step": result.last_step, "total_steps": session.total, "session": session.number,
              "checkpoint": str(ckpt.directory / str(result.last_step))}
    if result.interrupted:
        _status(run_dir, "interrupted", reason=result.reason, **fields)
        raise TrainingStopped(
            f"{run_dir}: training interrupted by {result.reason} at step {result.last_step} of {session.total}; "
            f"checkpoint {fields['checkpoint']} saved, no final parameters written (status 'interrupted'); continue "
            f"with: python scripts/train.py --config {session.config_dir} --resume {run_dir}")
    export(result.state)
    if result.stopped:
        _status(run_dir, "stopped", reason="the user's STOP file", **fields)
        log.info("training stopped as asked at step %d of %d: %s (--resume continues it)", result.last_step,
                 session.total, run_dir)
    else:
        _status(run_dir, "complete", **fields)
        log.info("training finished at step %d: %s", result.last_step, run_dir)
    return result
