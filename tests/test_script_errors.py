"""Every script ends an error with one `error: ...` line on stderr and a defined exit code, never a traceback
(unless --debug); deploy checks the run before its slow export. Scripts run in-process through their
`main(argv)`; two cases run as subprocesses to show the same at the process level."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import pathlib
import stat
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import bundle_fixtures as BF
from a2f_jax import rundir
from a2f_jax.deploy import bundle as B
from a2f_jax.errors import TrainingStopped

ROOT = pathlib.Path(__file__).resolve().parents[1]
REG_MIN = str(ROOT / "configs" / "synthetic-regression-min")


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def _no_console_handler_left():
    """Scripts add a console log handler bound to the (captured) stdout; drop it after each test."""
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "name", None) == "a2f_jax.console"]:
        root.removeHandler(handler)


def _one_error_line(err: str) -> str:
    """The single `error:` line of stderr (asserting there is exactly one and no traceback)."""
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------------------------- a training run


def _training_run(root: pathlib.Path, status: str | None = "complete", onnx: bool = True, params: bytes | None = None) -> pathlib.Path:
    """A regression training run as deploy reads it: network_info, emotion DB, preproc link, status, and either a
    stand-in network.onnx or (onnx=False) only the final parameters, so that deploy would have to export."""
    pre = root / "preproc" / "250101_000000_pre"
    (pre / "deploy").mkdir(parents=True)
    np.savez(pre / "deploy" / "network_data.npz", **BF.model_data())
    run = root / "train" / "250102_000000_reg"
    (run / "deploy").mkdir(parents=True)
    (run / "configs").mkdir()
    (run / "configs" / "preproc_info.json").write_text(json.dumps({"preproc_run_name_full": {"claire": str(pre)}}))
    (run / "deploy" / "network_info.json").write_text(json.dumps(BF.regression_info()))
    db = {"emo_db": np.zeros((30, 16), np.float32), "emo_specs": {"s01_neutral": (0, 30)}}  # the config's source_shot
    np.savez(run / "deploy" / "implicit_emo_db.npz", **B.emo_db_arrays(db))
    if onnx:
        (run / "deploy" / "network.onnx").write_bytes(BF._onnx_bytes("regression", ("claire",)))
    if params is not None:
        (run / "params.msgpack").write_bytes(params)
    if status is not None:
        rundir.write_status(run, status)
    return run


def _params_bytes(w: np.ndarray) -> bytes:
    from flax import serialization

    return serialization.msgpack_serialize({"net": {"dense": {"kernel": w}}, "emo_db": np.zeros((30, 16), np.float32)})


@pytest.fixture
def no_export(monkeypatch):
    """Deploy's export from the checkpoint, replaced by a recorder: these cases must fail before it."""
    calls = []
    monkeypatch.setattr(B, "_export_from_checkpoint", lambda *a, **k: calls.append(a) or pytest.fail("export was called"))
    return calls


def _deploy(run: pathlib.Path, out_root: pathlib.Path, *extra: str) -> int:
    return _script("deploy").main(["--config", REG_MIN, "--run", str(run), "--out-root", str(out_root), "--no-check-run", *extra])


# ------------------------------------------------------------------------------------------ the cases


def test_config_error_is_one_line_and_debug_shows_the_traceback(capsys):
    train = _script("train")
    assert train.main(["--config", REG_MIN, "--config.train.BATCH_SZE=4"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "BATCH_SZE" in line and "did you mean 'BATCH_SIZE'" in line
    assert train.main(["--config", REG_MIN, "--config.train.BATCH_SZE=4", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.rstrip().splitlines()[-1].startswith("error: ")
    assert train.main(["--config", REG_MIN, "--no-such-flag"]) == 2
    assert "unrecognized arguments: --no-such-flag" in _one_error_line(capsys.readouterr().err)


def test_training_stopped_by_a_signal_exits_3(monkeypatch, capsys):
    from a2f_jax.train import entry

    def stopped(*args, **kwargs):
        raise TrainingStopped("run X: interrupted by SIGTERM at step 7; checkpoint saved, resume with --resume X")

    monkeypatch.setattr(entry, "train", stopped)
    assert _script("train").main(["--config", REG_MIN]) == 3
    assert "SIGTERM at step 7" in _one_error_line(capsys.readouterr().err)


def test_unexpected_exception_is_an_internal_error_exit_1(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(B, "deploy_run", lambda *a, **k: 1 / 0)
    assert _deploy(tmp_path, tmp_path / "out") == 1
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("error: internal error: ZeroDivisionError: division by zero") and "--debug" in line


def test_read_only_workspace_names_the_path(tmp_path, monkeypatch, capsys):
    """Tests run as root, where chmod 0555 does not stop writes. So: (1) the output root lies under a regular
    file, a real write failure of the file system (ENOTDIR); (2) the folder creation is made to fail with
    EACCES as a read-only folder would (monkeypatched os.mkdir), to show the message the user gets."""
    run = _training_run(tmp_path)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the deploy folder should be")
    assert _deploy(run, blocker / "output_deploy") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(blocker / "output_deploy") in line and "Not a directory" in line

    real_mkdir = os.mkdir

    def read_only(path, mode=0o777, *args, **kwargs):
        if str(path).startswith(str(tmp_path / "ro")):
            raise PermissionError(13, "Permission denied", str(path))
        return real_mkdir(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", read_only)
    assert _deploy(run, tmp_path / "ro" / "output_deploy") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(tmp_path / "ro") in line and "Permission denied" in line and "read-only workspace" in line
    assert not list(tmp_path.rglob(".*.tmp"))


def test_deploy_onto_an_existing_bundle_fails_before_the_export(tmp_path, no_export, capsys):
    run = _training_run(tmp_path, onnx=False, params=_params_bytes(np.ones((2, 2), np.float32)))
    (tmp_path / "out" / run.name).mkdir(parents=True)
    assert _deploy(run, tmp_path / "out") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(tmp_path / "out" / run.name) in line and "an existing folder" in line
    assert no_export == []


@pytest.mark.parametrize("case, fragment", [
    ("missing", "params.msgpack: expected the parameters written at the end of training, found no such file"),
    ("truncated", "undecodable bytes"),
    ("nan", "params.msgpack [net/dense/kernel]: expected finite parameters, found 1 NaN/Inf of 4 values"),
])
def test_deploy_refuses_bad_params(tmp_path, no_export, capsys, case, fragment):
    w = np.ones((2, 2), np.float32)
    if case == "nan":
        w[1, 0] = np.nan
    data = None if case == "missing" else _params_bytes(w)
    if case == "truncated":
        data = data[: len(data) // 2]
    run = _training_run(tmp_path, onnx=False, params=data)
    assert _deploy(run, tmp_path / "out") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(run / "params.msgpack") in line and fragment in line
    assert no_export == [] and not (tmp_path / "out").exists()


def test_deploy_refuses_an_interrupted_run_unless_allowed(tmp_path, capsys, caplog):
    run = _training_run(tmp_path, status="interrupted")
    assert _deploy(run, tmp_path / "out") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "run_status.json" in line and "'interrupted'" in line and "--allow-incomplete" in line
    assert not (tmp_path / "out").exists()
    with caplog.at_level(logging.WARNING):
        assert _deploy(run, tmp_path / "out", "--allow-incomplete") == 0
    assert (tmp_path / "out" / run.name / "network.onnx").is_file()
    assert any("interrupted" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


@pytest.mark.parametrize("status", [None, "running", "failed"])
def test_deploy_refuses_runs_that_did_not_finish(tmp_path, capsys, status):
    run = _training_run(tmp_path, status=status)
    assert _deploy(run, tmp_path / "out", "--allow-incomplete") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "run_status.json" in line and (status is None or repr(status) in line)


def test_infer_with_a_truncated_network_onnx(tmp_path, capsys):
    bundle = B.write_bundle(tmp_path / "bundle", **BF.bundle_kwargs(tmp_path, "regression"), run_onnx=False)
    onnx = bundle / "network.onnx"
    onnx.write_bytes(onnx.read_bytes()[:200])
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(8000, np.float32), 16000)
    code = _script("infer").main(["--config", REG_MIN, "--bundle", str(bundle), "--audio", str(wav), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "network.onnx" in _one_error_line(capsys.readouterr().err)


def test_preproc_writes_under_the_users_umask_and_reports_a_blocked_output(tmp_path, capsys):
    from a2f_jax.preproc.structured_data import write_config_dir, write_structured_actor

    paths = write_structured_actor(tmp_path / "data", ("shot_a_neutral", "shot_b_joy"), 30, 40, None)
    paths = {k: paths[k] for k in ("AUDIO_ROOT", "SKIN_CACHE_ROOT")}
    cfg = write_config_dir(tmp_path / "cfg", "toy", paths, tmp_path / "out", {"SKIN_SELECT_DISTINCT_MAX_ITER": 10})
    preproc = _script("preproc")
    old = os.umask(0o002)
    try:
        assert preproc.main(["--config", str(cfg), "--actor", "toy"]) == 0
    finally:
        os.umask(old)
    (run,) = [p for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")]
    modes = {p.relative_to(run): stat.S_IMODE(p.stat().st_mode) for p in [run, *run.rglob("*")]}
    assert modes[pathlib.Path(".")] == 0o775
    assert {m for p, m in modes.items() if (run / p).is_dir()} == {0o775}, modes
    assert {m for p, m in modes.items() if (run / p).is_file()} == {0o664}, modes
    capsys.readouterr()

    (tmp_path / "blocked").write_text("")
    cfg2 = write_config_dir(tmp_path / "cfg2", "toy", paths, tmp_path / "blocked" / "out", {"SKIN_SELECT_DISTINCT_MAX_ITER": 10})
    assert preproc.main(["--config", str(cfg2), "--actor", "toy"]) == 2
    assert str(tmp_path / "blocked") in _one_error_line(capsys.readouterr().err)


def test_scripts_as_processes(tmp_path):
    """At the process level: exit code 2, one error line, no traceback; --debug prints it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "--config", REG_MIN, "--config.train.NUM_EPOCH=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 2 and "did you mean 'NUM_EPOCHS'" in _one_error_line(proc.stderr)
    proc = subprocess.run(cmd + ["--debug"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 2 and "Traceback" in proc.stderr
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_bundle.py"), str(tmp_path / "nothing"), "--bogus"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert bad.returncode == 2 and "--bogus" in _one_error_line(bad.stderr)


def test_allow_incomplete_exports_the_newest_intact_checkpoint(tmp_path, monkeypatch, capsys, caplog):
    """An interrupted run writes no final params (an older session's may be there, stale): --allow-incomplete
    exports the newest checkpoint that reads back whole, its zero-size parameters rebuilt (single emotion)."""
    import jax

    from a2f_jax.runs import TrainingRun
    from a2f_jax.train.checkpoint import Checkpointer

    stale = _params_bytes(np.full((2, 2), 7.0, np.float32))
    run = _training_run(tmp_path, status="interrupted", onnx=False, params=stale)
    (run / "model_def.json").write_text("{}")
    ckpt = Checkpointer(run / "checkpoints")
    for step in (4, 8):
        params = {"net": {"dense": {"kernel": np.full((2, 2), float(step), np.float32), "emo": np.zeros((0, 3), np.float32)}},
                  "emo_db": np.zeros((30, 16), np.float32)}
        ckpt.save(step, {"step": np.int32(step), "params": params, "opt_state": {"mu": params}})
    ckpt.close()
    (run / "checkpoints" / "8" / "default" / "manifest.ocdbt").write_bytes(b"torn")
    shapes = {"net": {"dense": {"kernel": jax.ShapeDtypeStruct((2, 2), np.float32), "emo": jax.ShapeDtypeStruct((0, 3), np.float32)}}}
    monkeypatch.setattr(B, "_param_shapes", lambda run_dir, kind: shapes)
    exported = []

    def export(configs, run_dir, info):
        exported.append(TrainingRun(run_dir).params())
        return BF._onnx_bytes("regression", ("claire",))

    monkeypatch.setattr(B, "_export_from_checkpoint", export)
    with caplog.at_level(logging.WARNING):
        assert _deploy(run, tmp_path / "out", "--allow-incomplete") == 0, capsys.readouterr().err
    (params,) = exported
    np.testing.assert_array_equal(params["net"]["dense"]["kernel"], np.full((2, 2), 4.0))
    assert params["net"]["dense"]["emo"].shape == (0, 3)
    assert "step 8" in caplog.text and "torn" in caplog.text and "checkpoints/4" in caplog.text
    assert (tmp_path / "out" / run.name / "network.onnx").is_file()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["4", "8"]  # deploy leaves the run as it was
