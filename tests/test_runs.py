"""a2f_jax.runs: the typed artifacts (preprocessing run, training run, bundle) read back what they write, and a
missing or corrupt file is an error naming the file, what was expected and what was found."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from a2f_jax import rundir, runs
from a2f_jax.errors import ConfigError, DataError, RunError

DIFFUSION_DEF = {"network": runs.DIFFUSION_NETWORK, "net_cfg": {"skin_dim": 3}, "actors": ["a"]}


def _params():
    return {"net": {"dense": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "empty": np.zeros((0, 4), np.float32)}},
            "emo_db": np.ones((5, 16), np.float32)}


def test_params_round_trip(tmp_path):
    run = runs.TrainingRun(tmp_path)
    run.save_params(_params())
    assert (tmp_path / runs.TrainingRun.PARAMS).is_file()
    back = run.params()
    np.testing.assert_array_equal(back["net"]["dense"]["kernel"], _params()["net"]["dense"]["kernel"])
    assert back["net"]["dense"]["empty"].shape == (0, 4) and back["emo_db"].dtype == np.float32
    run.check_params()
    assert runs.load_params(tmp_path / runs.TrainingRun.PARAMS).keys() == back.keys()


def test_params_missing_truncated_or_not_finite(tmp_path):
    run = runs.TrainingRun(tmp_path)
    path = tmp_path / runs.TrainingRun.PARAMS
    with pytest.raises(RunError, match=rf"{path}: expected the parameters written at the end of training, found no such file"):
        run.params()
    run.save_params(_params())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError, match="expected a flax msgpack parameter tree, found .* undecodable bytes"):
        run.params()
    bad = _params()
    bad["net"]["dense"]["kernel"][1, 2] = np.inf
    run.save_params(bad)
    with pytest.raises(RunError, match=r"params.msgpack \[net/dense/kernel\]: expected finite parameters, found 1 NaN/Inf of 6"):
        run.check_params()


def test_model_def_round_trip_and_noise_schedule(tmp_path):
    run = runs.TrainingRun(tmp_path)
    run.write_model_def({**DIFFUSION_DEF, runs.NOISE_SCHEDULE_KEY: "linear", "arr": (1, 2)})
    model_def = run.model_def()
    assert model_def["arr"] == [1, 2] and run.network_type() == "diffusion"
    assert runs.noise_schedule(model_def) == "linear"
    run.write_model_def({"network": "conv_w2v_autocorr", "window": 8320})
    assert run.network_type() == "regression" and runs.NOISE_SCHEDULE_KEY not in run.model_def()


def test_old_diffusion_model_def_without_schedule(tmp_path):
    """Written before the schedule was recorded: the run's recorded train config says which, else the base default."""
    run = runs.TrainingRun(tmp_path)
    run.write_model_def(DIFFUSION_DEF)
    assert runs.base_noise_schedule() == "cosine"
    assert runs.noise_schedule(run.model_def()) == "cosine"
    (tmp_path / rundir.CONFIG_DIR).mkdir()
    (tmp_path / runs.TrainingRun.TRAIN_CONFIG).write_text(json.dumps({"DIFFUSION_NOISE_SCHEDULE": "linear"}))
    assert run.model_def()[runs.NOISE_SCHEDULE_KEY] == "linear"
    (tmp_path / runs.TrainingRun.TRAIN_CONFIG).write_text("{not json")
    assert runs.noise_schedule(run.model_def()) == "cosine"


@pytest.mark.parametrize("text, found", [(None, "no such file"), ("{", "JSONDecodeError"), ("[1]", "list")])
def test_model_def_missing_or_corrupt(tmp_path, text, found):
    path = tmp_path / runs.TrainingRun.MODEL_DEF
    if text is not None:
        path.write_text(text)
    with pytest.raises(DataError, match=rf"{path}: expected .*the network definition written by training.*found .*{found}"):
        runs.TrainingRun(tmp_path).model_def()


def test_training_run_metadata_and_lookup(tmp_path):
    run = runs.TrainingRun(tmp_path / "run")
    run.file("deploy").mkdir(parents=True)
    info = {"id": {"type": "diffusion"}, "params": {}}
    run.write_metadata(info, {"name": "diffusion_rnn", "path": pathlib.Path("x")}, {"window": "b,16000"}, DIFFUSION_DEF)
    assert run.network_info() == info
    assert json.loads(run.file(runs.TrainingRun.NETWORK_INFO_FULL).read_text())["path"] == "x"
    assert run.find(runs.TrainingRun.TRT_INFO) == run.file(runs.TrainingRun.TRT_INFO)
    assert run.find(runs.TrainingRun.NETWORK_ONNX) is None
    (run.path / "network.onnx").write_bytes(b"")  # an older layout: deploy/ files beside model_def.json
    assert run.find(runs.TrainingRun.NETWORK_ONNX) == run.path / "network.onnx"
    with pytest.raises(DataError, match=r"params.msgpack: expected a file of a finished training run, found no such file"):
        run.require(runs.TrainingRun.MODEL_DEF, runs.TrainingRun.PARAMS)


def test_training_run_preproc_runs(tmp_path):
    run = runs.TrainingRun(tmp_path / "run")
    with pytest.raises(DataError, match="preproc_info.json: expected .*preproc_run_name_full.*no such file"):
        run.preproc_runs()
    (run.path / rundir.CONFIG_DIR).mkdir(parents=True)
    run.file(runs.TrainingRun.PREPROC_INFO).write_text(json.dumps({"preproc_run_name_full": {"claire": "250101_000000_pre"}}))
    run.file(runs.TrainingRun.TRAIN_CONFIG).write_text(json.dumps({"PREPROC_ROOT": str(tmp_path / "pre")}))
    pre = run.preproc_run()
    assert pre.path == tmp_path / "pre" / "250101_000000_pre" and pre.name == "250101_000000_pre"
    assert run.preproc_run("claire", tmp_path / "elsewhere").path == tmp_path / "elsewhere" / "250101_000000_pre"
    assert pre.pca_shapes("skin") == pre.path / "pca" / "skin" / "skin_pca_shapes.npz"
    assert pre.pca_coeffs("tongue") == pre.path / "pca" / "tongue" / "tongue_pca_coeffs_all.npz"
    assert pre.network_data() == pre.path / "deploy" / "network_data.npz"
    assert pre.blendshapes("claire", "skin") == (pre.path / "deploy" / "bs_skin_claire.npz",
                                                 pre.path / "deploy" / "bs_skin_config_claire.json")
    with pytest.raises(DataError, match="an entry for 'mark'"):
        run.preproc_run("mark")


def test_preproc_run_resolve(tmp_path, monkeypatch):
    monkeypatch.setenv("A2F_DATASETS_ROOT", str(tmp_path / "ds"))
    monkeypatch.setenv("A2F_WORKSPACE_ROOT", str(tmp_path / "ws"))
    from a2f_jax import config

    configs = config.load(pathlib.Path(__file__).resolve().parents[1] / "configs" / "example-regression", ["train.BATCH_SIZE=4"])
    with rundir.staged_run_dir(tmp_path / "pre", "example", configs, actor="claire", attach_log=False) as staged:
        pass
    found = runs.PreprocRun.resolve(tmp_path / "pre", "claire", "latest")
    assert isinstance(found, runs.PreprocRun) and found.path == staged.final
    assert runs.PreprocRun.resolve(tmp_path / "pre", "claire", staged.final.name) == found
    with pytest.raises(ConfigError, match="expected a complete preprocessing run of actor 'mark'"):
        runs.PreprocRun.resolve(tmp_path / "pre", "mark", "latest")
    configs.train.PREPROC_ROOT = str(tmp_path / "pre")
    configs.train.PREPROC_RUN_NAME_FULL = {"claire": "latest", "mark": "latest"}
    assert runs.resolved_preproc_runs(configs.train) == {"claire": staged.final.name, "mark": "latest"}


def test_bundle_names(tmp_path):
    assert runs.Bundle.model_config_name("regression", "claire") == "model_config.json"
    assert runs.Bundle.model_data_name("diffusion", "claire") == "model_data_claire.npz"
    assert runs.Bundle.blendshape_names("claire", "tongue") == ("bs_tongue_claire.npz", "bs_tongue_config_claire.json")
    bundle = runs.Bundle(tmp_path)
    assert bundle.model_data("diffusion", "mark") == tmp_path / "model_data_mark.npz"  # the contract's name when none exists
    (tmp_path / "model_data.npz").write_bytes(b"")
    assert bundle.model_data("diffusion", "mark") == tmp_path / "model_data.npz"  # an untagged file serves every identity
    (tmp_path / "model_config_claire.json").write_text("{}")
    assert bundle.model_config("regression", "claire") == tmp_path / "model_config_claire.json"
    assert bundle.blendshapes("claire", "skin") == (tmp_path / "bs_skin_claire.npz", tmp_path / "bs_skin_config_claire.json")


def test_bundle_network_info_errors(tmp_path):
    bundle = runs.Bundle(tmp_path)
    with pytest.raises(DataError, match=r"network_info.json: expected the network_info.json of a deploy bundle, found no such file"):
        bundle.network_type()
    (tmp_path / runs.Bundle.NETWORK_INFO).write_text(json.dumps({"id": {"type": "gan"}}))
    with pytest.raises(DataError, match=r"network_info.json \[id.type\]: expected 'regression' or 'diffusion', found 'gan'"):
        bundle.network_type()
    (tmp_path / runs.Bundle.NETWORK_INFO).write_text(json.dumps({"id": {"type": "regression"}}))
    assert bundle.network_type() == "regression"
