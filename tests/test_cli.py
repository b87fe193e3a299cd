"""The shared command line: --config DIR, --config.<file>.<KEY> overrides, --print-config."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from a2f_jax import cli
from a2f_jax.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[1]
REG = str(ROOT / "configs" / "example-regression")


def test_overrides_with_equals_and_with_space():
    configs, args = cli.parse(
        [
            "--config", REG,
            "--config.train.BATCH_SIZE=4",
            "--config.dataset.CACHE_FPS.synth", "30",
            "--config.train.NETWORK_HYPER_PARAMS.w2v_num_layers=2",
            "--config.NUM_EPOCHS", "3",
        ]
    )
    assert configs.train.BATCH_SIZE == 4 and configs.train.NUM_EPOCHS == 3
    assert configs.dataset.CACHE_FPS.synth == 30 and configs.dataset.CACHE_FPS.claire == 30.0
    assert configs.train.NETWORK_HYPER_PARAMS.w2v_num_layers == 2
    assert args.config == REG and args.print_config is False
    assert args.config_overrides == [
        "train.BATCH_SIZE=4",
        "dataset.CACHE_FPS.synth=30",
        "train.NETWORK_HYPER_PARAMS.w2v_num_layers=2",
        "NUM_EPOCHS=3",
    ]


def test_extra_args_callback():
    def extra(parser):
        parser.add_argument("--actor", required=True)
        parser.add_argument("--resume", action="store_true")

    configs, args = cli.parse(["--actor", "claire", f"--config={REG}", "--resume"], extra_args=extra)
    assert args.actor == "claire" and args.resume is True and configs.network_type == "regression"


def test_config_is_required():
    with pytest.raises(cli.UsageError, match="required: --config"):
        cli.parse(["--config.train.BATCH_SIZE=4"])


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--config.train.BATCH_SZE=4"], "unknown config key 'BATCH_SZE' (did you mean 'BATCH_SIZE'?)"),
        (["--config.train.BATCH_SIZE=x"], "[BATCH_SIZE]: expected int, found str 'x'"),
        (["--config.train.BATCH_SIZE"], "expected a value after --config.train.BATCH_SIZE"),
        (["--unknown-flag"], "unrecognized arguments: --unknown-flag"),
    ],
)
def test_bad_arguments_exit_2_with_one_error_line(capsys, argv, fragment):
    with pytest.raises(ConfigError) as exc_info:
        cli.parse(["--config", REG, *argv])
    assert fragment in str(exc_info.value)
    guarded = cli.main_guard(lambda argv: cli.parse(argv) and 0)
    assert guarded(["--config", REG, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and fragment in err and "Traceback" not in err


def test_split_overrides_keeps_other_arguments():
    overrides, rest = cli.split_overrides(["a", "--config", "d", "--config.x.Y", "1", "--config.Z=2", "b"])
    assert overrides == ["x.Y=1", "Z=2"] and rest == ["a", "--config", "d", "b"]
    with pytest.raises(ConfigError):
        cli.split_overrides(["--config.X"])


def test_print_config_outputs_json(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(["--config", REG, "--config.train.BATCH_SIZE=4", "--print-config"])
    assert exit_info.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["network_type"] == "regression"
    assert data["configs"]["train"]["BATCH_SIZE"] == 4
    assert data["modifiers"]["train"]["BATCH_SIZE"] == 4
    assert len(data["configs"]["train"]["CLIPS"]) == 54


def test_print_config_script_end_to_end(tmp_path):
    env = dict(os.environ, A2F_DATASETS_ROOT=str(tmp_path / "ds"), PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "print_config.py"), "--config",
         str(ROOT / "configs" / "example-diffusion"), "--config.dataset.CACHE_FPS.claire", "60"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )
    data = json.loads(out.stdout)
    assert data["network_type"] == "diffusion"
    assert data["configs"]["dataset"]["CACHE_FPS"] == {"claire": 60}
    assert data["configs"]["dataset"]["AUDIO_ROOT"]["claire"].startswith(str(tmp_path / "ds"))
    bad = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "print_config.py"), "--config",
         str(ROOT / "configs" / "example-diffusion"), "--config.train.NUM_EPOCH=1"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert bad.returncode == 2 and "did you mean 'NUM_EPOCHS'" in bad.stderr


# ------------------------------------------------------------------------------------------- the guard


def _guarded(exc_factory, capsys, debug=False):
    def main(argv):
        raise exc_factory()

    code = cli.main_guard(main)(["--debug"] if debug else [])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and (("Traceback" in err) == debug), err
    return code, lines[0]


def test_guard_project_errors_keep_their_exit_code(capsys):
    from a2f_jax.errors import DataError, TrainingStopped

    assert _guarded(lambda: DataError("a.wav: expected audio, found text"), capsys) == (2, "error: a.wav: expected audio, found text")
    assert _guarded(lambda: TrainingStopped("interrupted at step 3"), capsys) == (3, "error: interrupted at step 3")
    assert _guarded(lambda: DataError("x"), capsys, debug=True)[0] == 2
    assert cli.main_guard(lambda argv: None)([]) == 0 and cli.main_guard(lambda argv: 1)([]) == 1


def test_guard_os_errors_name_the_path(capsys):
    code, line = _guarded(lambda: PermissionError(13, "Permission denied", "/ws/output_train"), capsys)
    assert code == 2 and line.startswith("error: /ws/output_train: Permission denied") and "read-only" in line
    code, line = _guarded(lambda: OSError(28, "No space left on device", "/ws/x.npz"), capsys)
    assert code == 2 and line == "error: /ws/x.npz: No space left on device (the disk is full)"
    code, line = _guarded(lambda: FileNotFoundError(2, "No such file or directory", "/a", None, "/b"), capsys)
    assert code == 2 and line.startswith("error: /a -> /b: No such file or directory")


def test_guard_known_library_errors(tmp_path, capsys):
    import onnxruntime as ort
    from flax import serialization

    bad = tmp_path / "network.onnx"
    bad.write_bytes(b"\x08\x07\x12\x04abcd")

    def ort_error():
        try:
            ort.InferenceSession(str(bad))
        except Exception as exc:  # noqa: BLE001 - the library's own type
            return exc

    code, line = _guarded(ort_error, capsys)
    assert code == 2 and line.startswith("error: onnxruntime: ") and str(bad) in line and "--debug" in line

    def msgpack_error():  # a builtin ValueError out of msgpack's C code: known by the frame that raised it
        try:
            serialization.msgpack_restore(serialization.msgpack_serialize({"w": np.ones(4)})[:7])
        except ValueError as exc:
            return exc

    code, line = _guarded(msgpack_error, capsys)
    assert code == 2 and line.startswith(("error: msgpack: ValueError: ", "error: flax serialization: ValueError: "))

    from jax._src.sharding import IndivisibleError

    code, line = _guarded(lambda: IndivisibleError("array axis 0 is partitioned 2 times, but the dimension size is 3"), capsys)
    assert code == 2 and line.startswith("error: jax: IndivisibleError: array axis 0")


def test_guard_orbax_error(tmp_path, capsys):
    import orbax.checkpoint as ocp

    def orbax_error():
        try:
            with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
                manager.save(0, args=ocp.args.StandardSave({"kernel": np.zeros((3, 0), np.float32)}))
                manager.wait_until_finished()
        except ValueError as exc:
            return exc
        raise AssertionError("orbax saved a zero-size array")

    code, line = _guarded(orbax_error, capsys)
    assert code == 2 and line.startswith("error: checkpoint (orbax): ValueError: ") and "zero size" in line


def test_guard_internal_errors_and_ctrl_c(capsys):
    code, line = _guarded(lambda: ZeroDivisionError("division by zero"), capsys)
    assert code == 1 and line == "error: internal error: ZeroDivisionError: division by zero (run with --debug for the traceback)"

    def jax_bug():  # a tracing error inside jax is a bug of ours, not a user error
        import jax

        try:
            jax.jit(lambda x: 1 if x > 0 else 0)(1.0)
        except Exception as exc:  # noqa: BLE001
            return exc

    assert _guarded(jax_bug, capsys)[0] == 1
    assert _guarded(KeyboardInterrupt, capsys) == (130, "error: interrupted (Ctrl-C)")
    code, line = _guarded(lambda: ValueError("a\nb\n\nc"), capsys)
    assert line == "error: internal error: ValueError: a b c (run with --debug for the traceback)"


def test_guard_passes_system_exit():
    with pytest.raises(SystemExit) as exit_info:
        cli.main_guard(lambda argv: cli.parse(["--config", REG, "--print-config"]))([])
    assert exit_info.value.code == 0


def test_scripts_own_parsers_accept_debug():
    parser = cli.ArgumentParser()
    parser.add_argument("--x", type=int)
    assert parser.parse_args(["--debug", "--x", "1"]).debug is True
    with pytest.raises(cli.UsageError, match="invalid int value"):
        parser.parse_args(["--x", "one"])
    configs, args = cli.parse(["--config", REG, "--debug"])
    assert args.debug is True


# ---------------------------------------------------------------------------------- console entry points

REQUIRED_COMMANDS = ("a2f-preproc", "a2f-train", "a2f-deploy", "a2f-infer", "a2f-evaluate", "a2f-check-dataset",
                     "a2f-check-bundle", "a2f-demo", "a2f-bench", "a2f-device-check")


def _setup_console_scripts() -> dict[str, str]:
    """name -> "module:function" as setup.py declares them (parsed, not executed)."""
    import ast

    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    entries = ast.literal_eval(value)
                    return dict(e.replace(" ", "").split("=", 1) for e in entries)
    raise AssertionError("setup.py declares no console_scripts")


def test_console_entry_points_are_installed_and_resolve():
    import importlib.metadata

    declared = _setup_console_scripts()
    assert set(REQUIRED_COMMANDS) <= set(declared), sorted(set(REQUIRED_COMMANDS) - set(declared))
    installed = {ep.name: ep for ep in importlib.metadata.entry_points(group="console_scripts")
                 if ep.dist is not None and ep.dist.name == "a2f-jax"}
    assert {n: ep.value.replace(" ", "") for n, ep in installed.items()} == declared, (
        "the installed entry points differ from setup.py: run `pip install --no-deps -e .` again")
    import importlib.util

    have_grpc = importlib.util.find_spec("grpc") is not None
    for name, ep in installed.items():
        if ep.module.startswith("a2f_jax.serve") and not have_grpc:  # the [serve] extra is optional
            assert importlib.util.find_spec(ep.module) is not None, name
            continue
        assert callable(ep.load()), name


def test_scripts_wrap_the_commands():
    """scripts/<name>.py run the same guarded `main` as the console command."""
    import importlib
    import importlib.util

    for module_fn in _setup_console_scripts().values():
        module, fn = module_fn.split(":")
        if not module.startswith("a2f_jax.commands."):
            continue
        name = module.rsplit(".", 1)[1]
        spec = importlib.util.spec_from_file_location(f"{name}_wrapper", ROOT / "scripts" / f"{name}.py")
        wrapper = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(wrapper)
        assert wrapper.main is getattr(importlib.import_module(module), fn), name


def test_console_command_runs(tmp_path):
    exe = pathlib.Path(sys.executable).with_name("a2f-print-config")
    if not exe.exists():
        pytest.skip("console scripts not installed next to this interpreter")
    env = dict(os.environ, A2F_DATASETS_ROOT=str(tmp_path / "ds"))
    out = subprocess.run([str(exe), "--config", str(ROOT / "configs" / "example-regression")],
                         capture_output=True, text=True, env=env, timeout=120, check=True)
    assert json.loads(out.stdout)["network_type"] == "regression"
    bad = subprocess.run([str(exe), "--config", str(ROOT / "configs" / "example-regression"), "--config.train.NUM_EPOCH=1"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
