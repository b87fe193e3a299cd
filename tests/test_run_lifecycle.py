"""Training run states: zero budgets and bad batch sizes refused up front, --resume needs a run folder,
SIGTERM → "interrupted" + exit code 3, STOP file → "stopped", errors → "failed", history and configs of
every session kept, a complete run resumed to its own total is a no-op.

Most tests drive the trainers' lifecycle with the toy problem of test_loop (seconds); one module-scoped
synthetic workspace runs the real regression trainer a few steps at a time."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import types

import ml_collections
import numpy as np
import pytest

from a2f_jax import config, rundir
from a2f_jax.errors import CheckpointError, ConfigError, RunError, TrainingStopped
from a2f_jax.io_utils import atomic_write_json
from a2f_jax.runs import TrainingRun
from a2f_jax.train import lifecycle, sharding
from a2f_jax.train.loop import LoopSettings, NonFiniteLossError
from synth_workspace import synthetic_workspace
from test_loop import _problem

ROOT = pathlib.Path(__file__).resolve().parents[1]
MIN_CONFIG = ROOT / "configs" / "synthetic-regression-min"


def _read(path: pathlib.Path):
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------------------ budget, batch


def _tcfg(**values):
    base = {"NUM_EPOCHS": 3, "MAX_TRAIN_STEPS": None}
    base.update(values)
    return ml_collections.ConfigDict(base)


@pytest.mark.parametrize("values, max_steps, steps_per_epoch, field", [
    ({"NUM_EPOCHS": 0}, None, 10, "NUM_EPOCHS"),
    ({"NUM_EPOCHS": 0}, 5, 10, "NUM_EPOCHS"),
    ({"MAX_TRAIN_STEPS": 0}, None, 10, "MAX_TRAIN_STEPS"),
    ({}, 0, 10, "--max-steps"),
    ({}, -3, 10, "--max-steps"),
    ({}, None, 0, "CLIPS"),
])
def test_zero_steps_refused(values, max_steps, steps_per_epoch, field):
    with pytest.raises(ConfigError, match=rf"\[{field}\]: expected .*found"):
        lifecycle.total_steps(_tcfg(**values), steps_per_epoch, max_steps)


def test_step_budget():
    assert lifecycle.total_steps(_tcfg(), 10, None) == 30
    assert lifecycle.total_steps(_tcfg(MAX_TRAIN_STEPS=0), 10, 7) == 7  # --max-steps replaces MAX_TRAIN_STEPS
    assert lifecycle.total_steps(_tcfg(MAX_TRAIN_STEPS=12), 10, None) == 12


@pytest.mark.parametrize("batch_size, found", [(0, "0"), (-8, "-8"), (12, r"12 \(use 8 or 16"), ("8", "'8'"), (True, "True")])
def test_batch_size_must_be_a_positive_multiple_of_the_devices(batch_size, found):
    mesh = types.SimpleNamespace(devices=np.empty(8, dtype=object))  # 8 devices, no JAX needed
    with pytest.raises(ConfigError, match=rf"\[BATCH_SIZE\]: expected .*\(?8\)? .*found {found}"):
        sharding.check_batch_size(batch_size, mesh)
    assert sharding.check_batch_size(16, mesh) == 16


# ------------------------------------------------------------------------------------------------ resume


def test_resume_requires_a_training_run_folder(tmp_path):
    with pytest.raises(RunError, match=rf"{tmp_path / 'nope'}: expected a training run folder to resume .*found nothing"):
        lifecycle.check_resume(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="found a file"):
        lifecycle.check_resume(tmp_path / "file")
    folder = tmp_path / "some_folder"
    (folder / "configs").mkdir(parents=True)
    with pytest.raises(RunError, match=r"found no model_def.json, run_status.json"):
        lifecycle.check_resume(folder)
    (folder / "model_def.json").write_text("{}")
    rundir.write_status(folder, "running", pid=os.getppid(), host=__import__("socket").gethostname())
    with pytest.raises(RunError, match=rf"being trained by process {os.getppid()}"):
        lifecycle.check_resume(folder)
    rundir.write_status(folder, "interrupted")
    assert lifecycle.check_resume(str(folder)) == folder


# --------------------------------------------------------------------------------- lifecycle on a toy loop


@pytest.fixture()
def toy_configs(tmp_path, monkeypatch):
    monkeypatch.setenv("A2F_WORKSPACE_ROOT", str(tmp_path / "ws"))
    monkeypatch.setenv("A2F_DATASETS_ROOT", str(tmp_path / "ds"))
    yield lambda *overrides: config.load(MIN_CONFIG, ["train.CHECKPOINT_PERIOD=3", *overrides])
    rundir.detach_log_file()


def _toy_train(configs, resume_dir=None, total=10, max_steps=None, batch_hook=None, state=None):
    """What a trainer's `train()` does around the loop, with the linear toy problem of test_loop."""
    toy_state, step, make_batch = _problem()
    state = toy_state if state is None else state

    def batches(k):
        if batch_hook is not None:
            batch_hook(k)
        return make_batch(k)

    run_dir = lifecycle.open_run(configs, {}, resume_dir, lambda d: atomic_write_json(d / "model_def.json", {"network": "toy"}), total)
    with lifecycle.recording_failure(run_dir):
        ckpt, state, start = lifecycle.restore(run_dir, configs.train, state, resume_dir is not None)
        session = lifecycle.begin_session(run_dir, configs, max_steps, start, total, resume_dir is not None)
        settings = LoopSettings(total, 5, log_period=1, checkpoint_period=int(configs.train.CHECKPOINT_PERIOD), show_progress=False)
        lifecycle.run_and_close(session, ckpt, state, step, batches, settings,
                                export=lambda st: atomic_write_json(run_dir / "params.json", {"step": int(st["step"])}))
    return run_dir


def _train_dir(configs) -> pathlib.Path:
    (run,) = pathlib.Path(configs.train.TRAIN_OUTPUT_ROOT).iterdir()
    return run


def _sigterm_at(step):
    def hook(k):
        if k == step:
            os.kill(os.getpid(), signal.SIGTERM)
    return hook


def test_sigterm_marks_interrupted_exit_3_and_resume_keeps_history_and_configs(toy_configs):
    configs = toy_configs()
    with pytest.raises(TrainingStopped) as info:
        _toy_train(configs, total=10, max_steps=10, batch_hook=_sigterm_at(4))
    run = _train_dir(configs)
    assert info.value.exit_code == 3
    assert "interrupted by SIGTERM at step 5 of 10" in str(info.value) and f"--resume {run}" in str(info.value)
    status = _read(run / "run_status.json")
    assert status["status"] == "interrupted" and status["step"] == 5 and status["checkpoint"].endswith("checkpoints/5")
    assert not (run / "params.json").exists()  # nothing that looks like a finished model
    with pytest.raises(RunError, match="interrupted"):
        rundir.require_finished(run, "training run")
    assert [h["step"] for h in _read(run / "history.json")] == [0, 1, 2, 3, 4]

    resumed = toy_configs("train.LEARNING_RATE=0.5")
    assert _toy_train(resumed, lifecycle.check_resume(run), total=12, max_steps=12) == run
    status = _read(run / "run_status.json")
    assert status["status"] == "complete" and status["step"] == 12 and status["session"] == 2
    assert _read(run / "params.json") == {"step": 12}
    assert [h["step"] for h in _read(run / "history.json")] == list(range(12))  # both sessions, no step twice
    sessions = _read(run / "configs" / "sessions.json")
    assert [(s["session"], s["start_step"], s["total_steps"]) for s in sessions] == [(1, 0, 10), (2, 5, 12)]
    assert sessions[1]["config_changes"]["MAX_TRAIN_STEPS"] == {"from": 10, "to": 12}
    assert sessions[1]["config_changes"]["LEARNING_RATE"]["to"] == 0.5
    full = _read(run / "configs" / "config_train_full.json")
    assert full["MAX_TRAIN_STEPS"] == 12 and full["LEARNING_RATE"] == 0.5
    assert _read(run / "configs" / "config_train_modifier.json")["MAX_TRAIN_STEPS"] == 12


def test_stop_file_ends_with_status_stopped_and_no_error(toy_configs):
    configs = toy_configs()
    holder = {}

    def touch_stop(k):
        if k == 0:
            holder["run"] = _train_dir(configs)
        if k == 4:
            (holder["run"] / lifecycle.STOP_FILE).touch()

    run = _toy_train(configs, total=10, batch_hook=touch_stop)
    status = _read(run / "run_status.json")
    assert status["status"] == "stopped" and status["step"] == 5 and "STOP" in status["reason"]
    assert rundir.require_finished(run, "training run")["status"] == "stopped"
    assert _read(run / "params.json") == {"step": 5} and not (run / lifecycle.STOP_FILE).exists()
    _toy_train(toy_configs(), lifecycle.check_resume(run), total=10)
    assert _read(run / "run_status.json")["status"] == "complete" and _read(run / "params.json") == {"step": 10}


def test_error_marks_the_run_failed(toy_configs):
    configs = toy_configs()
    toy_state, _, _ = _problem()
    toy_state["params"]["w"] = toy_state["params"]["w"] * np.nan
    with pytest.raises(NonFiniteLossError):
        _toy_train(configs, state=toy_state)
    status = _read(_train_dir(configs) / "run_status.json")
    assert status["status"] == "failed" and status["reason"].startswith("NonFiniteLossError: loss is nan at step 0")


def test_complete_run_resumed_to_its_total_is_a_no_op(toy_configs):
    run = _toy_train(toy_configs(), total=6)
    assert lifecycle.already_complete(run, 6) and lifecycle.already_complete(run, 4)
    assert not lifecycle.already_complete(run, 7) and not lifecycle.already_complete(None, 6)


def test_resume_that_fails_before_training_keeps_the_status(toy_configs):
    import jax.numpy as jnp

    configs = toy_configs()
    run = _toy_train(configs, total=6)
    other, _, _ = _problem()
    other["params"]["w"] = jnp.zeros(4)  # a different network
    with pytest.raises(CheckpointError, match=r"expected params/w of shape \(4,\) .*found shape \(3,\)"):
        _toy_train(toy_configs(), lifecycle.check_resume(run), total=9, state=other)
    assert _read(run / "run_status.json")["status"] == "complete"
    assert len(_read(run / "configs" / "sessions.json")) == 1


# ------------------------------------------------------------------------------------ the real trainer


@pytest.mark.parametrize("overrides, max_steps, resume, error", [
    (["train.NUM_EPOCHS=0"], None, None, ConfigError),
    (["train.MAX_TRAIN_STEPS=0"], None, None, ConfigError),
    ([], 0, None, ConfigError),
    (["train.BATCH_SIZE=0"], None, None, ConfigError),
    ([], None, "missing", RunError),
    ([], None, "not_a_run", RunError),
])
def test_trainer_refuses_before_making_a_run_folder(toy_configs, tmp_path, overrides, max_steps, resume, error):
    from a2f_jax.train import entry

    configs = toy_configs(*overrides)
    if resume == "not_a_run":
        (tmp_path / resume).mkdir()
        (tmp_path / resume / "notes.txt").write_text("mine")
    with pytest.raises(error):
        entry.train(configs, max_steps=max_steps, resume=None if resume is None else str(tmp_path / resume),
                    show_progress=False)
    assert not pathlib.Path(configs.train.TRAIN_OUTPUT_ROOT).exists()
    if resume == "not_a_run":
        assert sorted(p.name for p in (tmp_path / resume).iterdir()) == ["notes.txt"]


@pytest.fixture(scope="module")
def min_workspace(tmp_path_factory):
    """The minimal synthetic dataset and its preprocessing run (seconds)."""
    base = tmp_path_factory.mktemp("min")
    with synthetic_workspace(base, MIN_CONFIG, minimal=True):
        yield base
    rundir.detach_log_file()


def _min_configs(*overrides):
    base = ["train.LOG_PERIOD=1", "train.VALIDATION_PERIOD=0", "train.BATCH_SIZE=2", "train.CHECKPOINT_PERIOD=1"]
    return config.load(MIN_CONFIG, base + list(overrides))


def test_regression_trainer_interrupt_resume_no_op_and_changed_network(min_workspace, monkeypatch):
    from a2f_jax.train.entry import train
    from a2f_jax.train.sampler_regression import RegressionSampler

    original = RegressionSampler.batch_index

    def batch_index(self, step):
        if step == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, step)

    monkeypatch.setattr(RegressionSampler, "batch_index", batch_index)
    with pytest.raises(TrainingStopped, match=r"interrupted by SIGTERM at step 2 of 3"):
        train(_min_configs(), max_steps=3, show_progress=False)
    monkeypatch.setattr(RegressionSampler, "batch_index", original)
    (run,) = (min_workspace / "workspace" / "output_train").iterdir()
    assert _read(run / "run_status.json")["status"] == "interrupted" and not (run / TrainingRun.PARAMS).exists()

    assert train(_min_configs(), resume=str(run), max_steps=3, show_progress=False) == run
    status = _read(run / "run_status.json")
    assert status["status"] == "complete" and status["step"] == 3 and (run / TrainingRun.PARAMS).is_file()
    assert [h["step"] for h in _read(run / "history.json") if "loss" in h] == [0, 1, 2]
    assert [s["start_step"] for s in _read(run / "configs" / "sessions.json")] == [0, 2]

    before = (run / TrainingRun.PARAMS).stat().st_mtime_ns
    assert train(_min_configs(), resume=str(run), max_steps=3, show_progress=False) == run  # nothing to do
    assert (run / TrainingRun.PARAMS).stat().st_mtime_ns == before and _read(run / "run_status.json") == status

    wider = _min_configs("train.NETWORK_HYPER_PARAMS.implicit_emotion_len=8")
    with pytest.raises(CheckpointError, match=r"checkpoints/3: expected params/.* of shape .*found shape"):
        train(wider, resume=str(run), max_steps=4, show_progress=False)
    assert _read(run / "run_status.json") == status
