"""The shared training loop: step, log, validate, checkpoint — used by both trainers.

It knows nothing about networks: a trainer hands it a jitted `step_fn(state, batch) -> (state, metrics)`,
a `make_batch(step)` that returns the (device) batch of a global step, and optional hooks. The loop
adds what every run needs: resume from the newest checkpoint, periodic + final checkpoints, a
NaN/Inf guard, SIGTERM/Ctrl-C handling that saves and exits cleanly (`interrupted`), a graceful stop
when a STOP file appears (`stopped`), TensorBoard scalars, a progress bar with ETA and a console/log line.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import pathlib
import signal
import time
from typing import Any, Callable

import jax
import numpy as np
from tqdm import tqdm

from a2f_jax.errors import A2FError
from a2f_jax.train.checkpoint import Checkpointer

log = logging.getLogger(__name__)


class NonFiniteLossError(A2FError):
    """Training produced a NaN or Inf loss (a user-facing error: the data or the learning rate is at fault)."""


@dataclasses.dataclass
class LoopSettings:
    total_steps: int
    steps_per_epoch: int
    log_period: int = 50
    checkpoint_period: int = 1000
    validation_period: int = 0  # 0: never
    show_progress: bool = True
    stop_file: pathlib.Path | None = None  # when this file appears: finish the step, save, stop (and delete it)


@dataclasses.dataclass
class LoopResult:
    state: Any
    last_step: int  # number of optimizer steps done
    interrupted: bool  # a signal ended the loop early
    history: list[dict]  # logged scalars (train and validation) with their step
    stopped: bool = False  # the user's STOP file ended the loop early
    reason: str | None = None  # what ended it early: "SIGTERM", "SIGINT" or "STOP file"


class _StopFlag:
    """Turns SIGTERM / SIGINT into a flag the loop checks between steps."""

    def __init__(self) -> None:
        self.raised: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, _frame) -> None:
        if self.raised is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop at once
        self.raised = signal.Signals(signum).name
        log.warning("%s received: finishing the current step, saving a checkpoint and exiting", self.raised)

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _to_floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(np.asarray(v)) for k, v in jax.device_get(metrics).items()}


def run_loop(
    state: Any,
    start_step: int,
    step_fn: Callable[[Any, Any], tuple[Any, dict]],
    make_batch: Callable[[int], Any],
    settings: LoopSettings,
    *,
    checkpointer: Checkpointer | None = None,
    writer: Any = None,
    validate: Callable[[Any, int], dict[str, float]] | None = None,
    extra_scalars: Callable[[int], dict[str, float]] | None = None,
    on_checkpoint: Callable[[int, list[dict]], None] | None = None,
) -> LoopResult:
    """Run optimizer steps `start_step .. settings.total_steps - 1` and return the final state.

    `on_checkpoint(step, history so far)` runs after every periodic checkpoint (trainers record the run's
    progress there)."""
    history: list[dict] = []
    step = start_step
    reason = None
    last_good = checkpointer.latest_step() if checkpointer else None
    bar = None
    if settings.show_progress and jax.process_index() == 0:
        bar = tqdm(total=settings.total_steps, initial=start_step, unit="step", dynamic_ncols=True, mininterval=2.0)
    t_start, steps_timed = time.perf_counter(), 0

    def log_scalars(values: dict[str, float], at: int) -> None:
        history.append({"step": at, **values})
        if writer is not None:
            for k, v in values.items():
                writer.add_scalar(k, v, at)

    try:
        with _StopFlag() as stop:
            while step < settings.total_steps:
                batch = make_batch(step)
                state, metrics = step_fn(state, batch)
                loss = float(jax.device_get(metrics["loss"]))
                if not math.isfinite(loss):
                    where = f"the last good checkpoint is step {last_good} in {checkpointer.directory}" if last_good is not None else "no checkpoint was saved yet"
                    raise NonFiniteLossError(f"loss is {loss} at step {step} (epoch {step // settings.steps_per_epoch}); {where}")
                step += 1
                steps_timed += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                in_epoch = (step - 1) % settings.steps_per_epoch
                if settings.log_period and in_epoch % settings.log_period == 0:
                    values = _to_floats(metrics)
                    if extra_scalars is not None:
                        values.update(extra_scalars(step - 1))
                    log_scalars(values, step - 1)
                    rate = steps_timed / max(time.perf_counter() - t_start, 1e-9)
                    eta = (settings.total_steps - step) / max(rate, 1e-9)
                    log.info("epoch %d it %d step %d | %s | %.2f steps/s | ETA %s", (step - 1) // settings.steps_per_epoch,
                             in_epoch, step - 1, " ".join(f"{k}={v:.4g}" for k, v in values.items()), rate,
                             time.strftime("%H:%M:%S", time.gmtime(eta)))
                if validate is not None and settings.validation_period and step % settings.validation_period == 0:
                    log_scalars(validate(state, step), step)
                if checkpointer is not None and settings.checkpoint_period and step % settings.checkpoint_period == 0:
                    checkpointer.save(step, state)
                    last_good = step
                    if on_checkpoint is not None:
                        on_checkpoint(step, history)
                if step < settings.total_steps:  # after the last step the run is complete, whatever arrived
                    reason = stop.raised or _stop_requested(settings.stop_file, step, settings.total_steps)
                    if reason is not None:
                        break
    finally:
        if bar is not None:
            bar.close()
    if checkpointer is not None:
        checkpointer.save(step, state)
    interrupted = reason is not None and reason != STOP_REASON
    if reason == STOP_REASON:
        settings.stop_file.unlink(missing_ok=True)  # type: ignore[union-attr]  # asked once, done once
    if validate is not None and settings.validation_period and not interrupted and step % settings.validation_period:
        log_scalars(validate(state, step), step)
    if writer is not None:
        writer.flush()
    return LoopResult(state, step, interrupted, history, stopped=reason == STOP_REASON, reason=reason)


STOP_REASON = "STOP file"


def _stop_requested(stop_file: pathlib.Path | None, step: int, total: int) -> str | None:
    """STOP_REASON when the user's STOP file exists (checked between steps: one stat call)."""
    if stop_file is None or not stop_file.exists():
        return None
    log.warning("%s found: stopping after step %d of %d (a checkpoint is saved; --resume continues)", stop_file, step, total)
    return STOP_REASON
