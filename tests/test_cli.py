"""The shared command line: --config DIR, --config.<file>.<KEY> overrides, --print-config."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

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
