"""Run directories: naming, metadata files (docs/preproc_artifacts.md, docs/DEVELOPING.md), the run log, "latest" preproc runs."""

from __future__ import annotations

import datetime
import json
import logging
import pathlib
import re

import pytest

from a2f_jax import config, rundir, runs
from a2f_jax.errors import ConfigError, RunError

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOW = datetime.datetime(2025, 9, 9, 13, 55, 8)


@pytest.fixture(autouse=True)
def _clean_logging(monkeypatch, tmp_path):
    monkeypatch.setenv("A2F_DATASETS_ROOT", str(tmp_path / "ds"))
    monkeypatch.setenv("A2F_WORKSPACE_ROOT", str(tmp_path / "ws"))
    yield
    rundir.detach_log_file()


@pytest.fixture()
def configs():
    return config.load(ROOT / "configs" / "example-regression", ["train.BATCH_SIZE=4"])


def read(path: pathlib.Path):
    return json.loads(path.read_text())


def _resolve(root, actor, name) -> pathlib.Path:
    """The folder of the preprocessing run `name` ("latest", "latest:<RUN_NAME>" or a full name) of `actor`."""
    run = runs.PreprocRun.resolve(root, actor, name)
    assert isinstance(run, runs.PreprocRun)
    return run.path


@pytest.mark.parametrize("name", ["example", "a", "run_1.v2-b", "250909_135508_example"])
def test_valid_run_names(name):
    assert rundir.validate_run_name(name) == name


@pytest.mark.parametrize("name", ["", "a..b", "-a", "a-", "a b", "a/b", ".a", None, 3])
def test_invalid_run_names(name):
    with pytest.raises(ConfigError, match=r"RUN_NAME: expected .*found"):
        rundir.validate_run_name(name)


def test_preproc_run_dir_layout(tmp_path, configs):
    run = rundir.create_run_dir(tmp_path / "pre", "example", configs, stage="preproc", actor="claire", now=NOW)
    assert run.name == "250909_135508_example" and run.parent == (tmp_path / "pre").resolve()
    cfg = run / "configs"
    assert sorted(p.name for p in cfg.iterdir()) == [
        "VERSION.md", "actor_info.json", "config_dataset_full.json", "config_dataset_modifier.json",
        "config_preproc_full.json", "config_preproc_modifier.json", "info.txt", "state.json",
    ]
    assert read(cfg / "actor_info.json") == {"actor_name": "claire"}
    assert (cfg / "info.txt").read_text() == ""  # RUN_INFO, no trailing newline
    full = read(cfg / "config_dataset_full.json")
    assert list(full) == sorted(full)  # the original's dir() order
    assert full == configs.dataset.to_dict()
    assert read(cfg / "config_preproc_modifier.json") == configs.modifiers["preproc"] == {
        "RUN_NAME": "example", "RUN_INFO": ""
    }
    assert read(cfg / "config_dataset_modifier.json")["CACHE_FPS"] == {"claire": 30.0}
    state = read(cfg / "state.json")
    assert state["framework"]["version"] == (cfg / "VERSION.md").read_text().strip()
    assert set(state["framework"]) >= {"git_branch", "git_commit", "git_clean"}
    assert state["machine"]["hostname"] and state["stage"] == "preproc"
    assert state["path_mapping"]["/datasets"] == str(tmp_path / "ds")
    assert state["path_mapping"]["/workspace"] == str(tmp_path / "ws")
    assert (run / "log.log").is_file()


def test_train_run_dir_layout(tmp_path, configs):
    configs.train.RUN_INFO = "two words"
    run = rundir.create_run_dir(
        tmp_path / "tr", "example-regression", configs, stage="train",
        preproc_runs={"claire": "250909_135508_example"}, now=NOW,
    )
    cfg = run / "configs"
    names = {p.name for p in cfg.iterdir()}
    assert {"config_train_full.json", "config_train_modifier.json", "config_dataset_full.json",
            "config_dataset_modifier.json", "preproc_info.json", "state.json", "info.txt"} <= names
    assert "actor_info.json" not in names and "config_preproc_full.json" not in names
    assert (cfg / "info.txt").read_text() == "two words"
    assert read(cfg / "preproc_info.json") == {"preproc_run_name_full": {"claire": "250909_135508_example"}}
    assert read(cfg / "config_train_modifier.json")["BATCH_SIZE"] == 4
    assert read(cfg / "config_train_full.json")["CLIPS"] == configs.train.CLIPS


def test_no_modifier_file_without_overrides(tmp_path):
    run = rundir.create_run_dir(tmp_path, "base", config.load(None), stage="preproc", actor="a", now=NOW)
    names = {p.name for p in (run / "configs").iterdir()}
    assert "config_preproc_full.json" in names and "config_preproc_modifier.json" not in names


def test_two_runs_in_one_second_get_distinct_ordered_names(tmp_path, configs):
    first = rundir.create_run_dir(tmp_path, "example", configs, stage="preproc", actor="claire", now=NOW)
    second = rundir.create_run_dir(tmp_path, "example", configs, stage="preproc", actor="claire", now=NOW)
    assert first != second and re.match(r"^\d{6}_\d{6}_example$", second.name)
    assert second.name > first.name
    with rundir.staged_run_dir(tmp_path, "example", configs, actor="claire", now=NOW) as third:
        pass
    assert third.final.name > second.name
    assert _resolve(tmp_path, "claire", "latest") == third.final


def test_run_dir_rejects_bad_input(tmp_path, configs):
    with pytest.raises(ConfigError, match="RUN_NAME"):
        rundir.create_run_dir(tmp_path, "bad name", configs, stage="train")
    with pytest.raises(ConfigError, match="stage: expected one of"):
        rundir.create_run_dir(tmp_path, "ok", configs, stage="training")
    with pytest.raises(ConfigError, match="actor name"):
        rundir.create_run_dir(tmp_path, "ok", configs, stage="preproc", actor="a/b")
    assert not any(tmp_path.iterdir())


def test_log_file_mirrors_logging_and_follows_the_newest_run(tmp_path, configs):
    root_level = logging.getLogger().level
    first = rundir.create_run_dir(tmp_path, "one", configs, stage="train", now=NOW)
    rundir.get_logger("a2f_jax.test").info("message for run one")
    second = rundir.create_run_dir(tmp_path, "two", configs, stage="train", now=NOW)
    rundir.get_logger("test").warning("message for run two")
    logging.getLogger("some.library").warning("library message")  # other loggers: at the process's levels
    for handler in logging.getLogger().handlers:
        handler.flush()
    one, two = (first / "log.log").read_text(), (second / "log.log").read_text()
    assert "[INFO] message for run one" in one and "message for run two" not in one
    assert "[WARNING] message for run two" in two and "library message" in two
    assert f"Run directory: {second}" in two
    assert logging.getLogger().level == root_level  # the process's log level is the application's to set
    assert rundir.get_logger("x").name == "a2f_jax.x" and rundir.get_logger(__name__).name.startswith("a2f_jax.")


def _preproc(root, actor, name, when, configs):
    with rundir.staged_run_dir(root, name, configs, actor=actor, now=when, attach_log=False) as staged:
        pass
    return staged.final


def test_resolve_preproc_run(tmp_path, configs):
    t = datetime.datetime(2025, 1, 1, 12, 0, 0)
    a_old = _preproc(tmp_path, "claire", "example", t, configs)
    b_new = _preproc(tmp_path, "mark", "example", t + datetime.timedelta(hours=2), configs)
    a_new = _preproc(tmp_path, "claire", "example-min", t + datetime.timedelta(hours=1), configs)
    (tmp_path / "not_a_run").mkdir()
    assert _resolve(tmp_path, "claire", "latest") == a_new
    assert _resolve(tmp_path, "mark", "latest") == b_new
    assert _resolve(tmp_path, "claire", "latest:example") == a_old
    assert _resolve(tmp_path, "claire", a_old.name) == a_old
    assert [p.name for p in rundir.list_runs(tmp_path)] == [a_old.name, a_new.name, b_new.name]

    with pytest.raises(ConfigError, match=r"expected a complete preprocessing run of actor 'anna' under .*found none"):
        _resolve(tmp_path, "anna", "latest")
    with pytest.raises(ConfigError, match=r"found the placeholder 'XXXXXX_XXXXXX_example'"):
        _resolve(tmp_path, "claire", "XXXXXX_XXXXXX_example")
    with pytest.raises(ConfigError, match=rf"found none \(did you mean '{a_old.name}'\?\)"):
        _resolve(tmp_path, "claire", a_old.name[:-1] + "X")
    with pytest.raises(ConfigError, match=r"expected a preprocessing run of actor 'claire', found one of 'mark'"):
        _resolve(tmp_path, "claire", b_new.name)
    with pytest.raises(ConfigError, match=r"PREPROC_RUN_NAME_FULL\['claire'\]"):
        _resolve(tmp_path, "claire", "../escape")


def test_train_run_records_latest_preproc_run_resolved(tmp_path, configs):
    pre = _preproc(tmp_path / "pre", "claire", "example", NOW, configs)
    configs.train.PREPROC_ROOT = str(tmp_path / "pre")
    configs.train.PREPROC_RUN_NAME_FULL = {"claire": "latest", "mark": "latest"}
    resolved = runs.resolved_preproc_runs(configs.train)
    run = rundir.create_run_dir(tmp_path / "tr", "train", configs, stage="train", preproc_runs=resolved, attach_log=False)
    # mark has no preproc run yet: the name is recorded as written.
    assert read(run / "configs" / "preproc_info.json") == {
        "preproc_run_name_full": {"claire": pre.name, "mark": "latest"}
    }
    # without preproc_runs the config's names are recorded as written
    plain = rundir.create_run_dir(tmp_path / "tr", "plain", configs, stage="train", attach_log=False)
    assert read(plain / "configs" / "preproc_info.json") == {"preproc_run_name_full": {"claire": "latest", "mark": "latest"}}


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_staged_run_appears_only_when_complete(tmp_path, configs):
    done = _preproc(tmp_path, "claire", "example", NOW, configs)
    assert rundir.read_status(done)["status"] == "complete" and not list(tmp_path.glob(".*"))
    cm = rundir.staged_run_dir(tmp_path, "example", configs, actor="claire", attach_log=False)
    staged = cm.__enter__()  # a run in progress (or killed: nobody will ever leave this block)
    assert staged.path.name == f".{staged.final.name}.tmp" and not staged.final.exists()
    (staged.path / "pca").mkdir()
    assert rundir.read_status(staged.path)["status"] == "running"
    assert rundir.list_runs(tmp_path, statuses=None) == [done]
    assert _resolve(tmp_path, "claire", "latest") == done
    assert rundir.clean_stale_runs(tmp_path) == []  # its process (this one) is alive
    cm.__exit__(None, None, None)
    assert staged.final.is_dir() and not staged.path.exists()
    assert _resolve(tmp_path, "claire", "latest") == staged.final


def test_failed_staged_run_leaves_nothing(tmp_path, configs):
    with pytest.raises(ZeroDivisionError):
        with rundir.staged_run_dir(tmp_path, "example", configs, actor="claire") as staged:
            (staged.path / "half_written.npz").write_bytes(b"x")
            rundir.get_logger("test").info("inside the staged run")
            1 / 0
    assert not any(tmp_path.iterdir())
    assert not any(getattr(h, "name", None) == "a2f_jax.run_log" for h in logging.getLogger().handlers)


def test_log_of_staged_run_follows_the_rename(tmp_path, configs):
    with rundir.staged_run_dir(tmp_path, "example", configs, actor="claire") as staged:
        rundir.get_logger("test").info("while staged")
    rundir.get_logger("test").info("after the rename")
    rundir.detach_log_file()
    text = (staged.final / "log.log").read_text()
    assert "while staged" in text and "after the rename" in text and f"Run directory: {staged.final}" in text


def test_killed_staged_run_is_ignored_then_cleaned(tmp_path, configs):
    done = _preproc(tmp_path, "claire", "example", NOW, configs)
    killed = tmp_path / ".250909_140000_example.tmp"  # what kill -9 during preprocessing leaves
    (killed / "configs").mkdir(parents=True)
    (killed / "configs" / "actor_info.json").write_text('{"actor_name": "claire"}')
    rundir.write_status(killed, "running", pid=_dead_pid(), host=__import__("socket").gethostname())
    other_host = tmp_path / ".250909_140001_example.tmp"
    other_host.mkdir()
    rundir.write_status(other_host, "running", pid=1, host="another-machine")
    assert _resolve(tmp_path, "claire", "latest") == done
    with pytest.raises(ConfigError):
        _resolve(tmp_path, "claire", killed.name)  # not a run name at all
    assert rundir.clean_stale_runs(tmp_path) == [killed]
    assert not killed.exists() and other_host.is_dir() and done.is_dir()


@pytest.mark.parametrize("status", [None, "running", "failed"])
def test_unfinished_runs_are_refused(tmp_path, configs, status):
    """A folder named like a run but not complete: "latest" skips it, its explicit name is a RunError."""
    done = _preproc(tmp_path, "claire", "example", NOW, configs)
    bad = rundir.create_run_dir(tmp_path, "example", configs, stage="preproc", actor="claire",
                                now=NOW + datetime.timedelta(hours=1), attach_log=False)
    if status is not None:
        rundir.write_status(bad, status, reason="boom" if status == "failed" else None)
    assert _resolve(tmp_path, "claire", "latest") == done
    assert rundir.list_runs(tmp_path) == [done] and rundir.list_runs(tmp_path, statuses=None) == [done, bad]
    found = "no run_status.json" if status is None else f"status '{status}'"
    with pytest.raises(RunError, match=rf"{bad}: expected a complete preprocessing run .*found {found}"):
        _resolve(tmp_path, "claire", bad.name)
    import shutil

    shutil.rmtree(done)
    with pytest.raises(ConfigError, match=rf"found only unfinished ones \({bad.name}: {found}\)"):
        _resolve(tmp_path, "claire", "latest")
