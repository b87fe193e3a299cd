"""a2f_jax.deploy.bundle: the files, names, keys and encodings the SDK / Maya-ACE read; atomicity; run-dir resolution."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import stat
import types

import numpy as np
import pytest

import bundle_fixtures as F
from a2f_jax import rundir
from a2f_jax.deploy import bundle, check
from a2f_jax.deploy import contract as C
from a2f_jax.deploy.onnx_utils import ort_session
from a2f_jax.errors import ConfigError, DataError


def _no_leftovers(parent: pathlib.Path, name: str) -> bool:
    return not (parent / name).exists() and not any(p.name.startswith(f".{name}.") for p in parent.iterdir())


def test_regression_bundle_layout_and_contents(tmp_path):
    kw = F.bundle_kwargs(tmp_path, "regression")
    # float64, shuffled key order and a missing neutral alias must come out canonical float32
    arrays = F.model_data()
    shuffled = {k: arrays[k].astype(np.float64) for k in reversed(C.MODEL_DATA_KEYS) if k != "neutral_skin"}
    kw["model_data"] = {"claire": shuffled}
    out = bundle.write_bundle(tmp_path / "b", **kw)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["README.md", "model.json", "network_info.json", "network.onnx", "trt_info.json", "implicit_emo_db.npz", "model_config.json", "model_data.npz"])
    model = json.loads((out / "model.json").read_text())
    assert list(model) == ["networkInfoPath", "networkPath", "modelConfigPath", "modelDataPath", "emotionDatabasePath", "blendshapePaths"]
    assert model["networkPath"] == "network.trt" and model["modelDataPath"] == "model_data.npz" and model["blendshapePaths"] == {}
    cfg = json.loads((out / "model_config.json").read_text())["config"]
    assert list(cfg) == list(C.MODEL_CONFIG_KEYS) + ["source_shot", "source_frame"]
    assert cfg["input_strength"] == 1.0 and cfg["upper_face_smoothing"] == 0.001 and cfg["lower_face_strength"] == 1.7
    assert (cfg["source_shot"], cfg["source_frame"]) == ("shot_a", 0)  # first shot by start frame, frame 0
    assert isinstance(cfg["eye_saccade_seed"], int)
    with np.load(out / "model_data.npz") as z:
        assert z.files == list(C.MODEL_DATA_KEYS)
        assert all(z[k].dtype == np.float32 and z[k].flags.c_contiguous for k in z.files)
        np.testing.assert_array_equal(z["neutral_skin"], arrays["shapes_mean_skin"])
    with np.load(out / "implicit_emo_db.npz") as z:
        assert z.files == list(C.EMO_DB_KEYS)
        assert z["emo_spec_names"].dtype.kind == "S" and z["emo_spec_names"].tolist() == [b"shot_a", b"shot_b"]
        assert z["emo_spec_start"].dtype == np.int32 and z["emo_spec_start"].tolist() == [0, 12]
        assert z["emo_spec_size"].tolist() == [12, 18] and z["emo_db"].dtype == np.float32
    assert (out / "README.md").read_text().splitlines()[0] == "# Audio2Face Regression Model"
    trt = json.loads((out / "trt_info.json").read_text())
    assert trt["trt_build_param"]["batch"][0] == "--minShapes=input:1x1x8320,emotion:1x1x19"
    assert trt["trt_build_param"]["batch"][1] == "--maxShapes=input:{MAX_BATCH_SIZE}x1x8320,emotion:{MAX_BATCH_SIZE}x1x19"


def test_diffusion_bundle_multi_actor_with_blendshapes(tmp_path):
    kw = F.bundle_kwargs(tmp_path, "diffusion", ("claire", "mark"))
    bs_npz, bs_cfg = tmp_path / "bs.npz", tmp_path / "bs.json"
    np.savez(bs_npz, poseNames=np.array([b"neutral", b"jawOpen"]), neutral=np.zeros(9, np.float32), jawOpen=np.ones(9, np.float32))
    bs_cfg.write_text(json.dumps({"blendshape_params": {
        "strengthL1regularization": 1.0, "strengthL2regularization": 1.0, "strengthTemporalSmoothing": 0.0, "strengthSymmetry": 0.0,
        "numPoses": 2, "bsSolveActivePoses": [1, 1], "bsSolveCancelPoses": [-1, -1], "bsSolveSymmetryPoses": [-1, -1],
        "bsWeightMultipliers": [1.0, 1.0], "bsWeightOffsets": [0.0, 0.0]}}))
    kw["blendshapes"] = {"mark": {"skin": (bs_npz, bs_cfg), "tongue": (bs_npz, bs_cfg)},
                         "claire": {"skin": (bs_npz, tmp_path / "absent.json")}}  # incomplete pair: not copied
    kw["inference_config"] = {"lip_open_offset": 0.1, "eye_saccade_seed": 7.0}
    out = bundle.write_bundle(tmp_path / "b", **kw)
    model = json.loads((out / "model.json").read_text())
    assert model["modelConfigPaths"] == ["model_config_claire.json", "model_config_mark.json"]
    assert model["modelDataPaths"] == ["model_data_claire.npz", "model_data_mark.npz"]
    assert model["blendshapePaths"] == [{}, {"skin": {"config": "bs_skin_config_mark.json", "data": "bs_skin_mark.npz"},
                                            "tongue": {"config": "bs_tongue_config_mark.json", "data": "bs_tongue_mark.npz"}}]
    assert (out / "bs_tongue_mark.npz").read_bytes() == bs_npz.read_bytes() and not (out / "bs_skin_claire.npz").exists()
    cfg = json.loads((out / "model_config_mark.json").read_text())["config"]
    assert "source_shot" not in cfg and cfg["upper_face_smoothing"] == 0.003 and cfg["lip_open_offset"] == 0.1
    assert cfg["eye_saccade_seed"] == 7 and isinstance(cfg["eye_saccade_seed"], int)
    assert (out / "README.md").read_text().startswith("# Audio2Face Multi-Actor Diffusion Model")
    trt = json.loads((out / "trt_info.json").read_text())
    assert list(trt) == ["estimated_trt_builder_time", "trt_build_param", "defaults"]
    d = 3 * F.VS + 3 * F.VT + 15 + 4
    assert trt["trt_build_param"]["batch"][2] == (
        "--optShapes=window:{OPT_BATCH_SIZE}x16000,identity:{OPT_BATCH_SIZE}x2,emotion:{OPT_BATCH_SIZE}x30x3,"
        "input_latents:2x2x{OPT_BATCH_SIZE}x256,noise:{OPT_BATCH_SIZE}x3x60x" + str(d))
    assert check.check_bundle(out, run_onnx=False) == []


def test_failure_midway_leaves_nothing(tmp_path):
    kw = F.bundle_kwargs(tmp_path, "diffusion", ("claire", "mark"))
    kw["model_data"]["mark"] = tmp_path / "missing.npz"  # second actor fails after the first was written
    with pytest.raises(DataError, match="missing.npz"):
        bundle.write_bundle(tmp_path / "b", **kw)
    assert _no_leftovers(tmp_path, "b")


def test_contract_violation_refuses_the_bundle(tmp_path):
    kw = F.bundle_kwargs(tmp_path, "regression")
    kw["network_info"]["params"]["explicit_emotions"].append("fear")  # ONNX emotion input no longer matches
    kw["network_info"]["params"]["default_emotion"].append(0.0)
    with pytest.raises(bundle.BundleError, match="onnx.shape"):
        bundle.write_bundle(tmp_path / "b", **kw)
    assert _no_leftovers(tmp_path, "b")


def test_existing_bundle_is_not_overwritten(tmp_path):
    (tmp_path / "b").mkdir()
    with pytest.raises(FileExistsError):
        bundle.write_bundle(tmp_path / "b", **F.bundle_kwargs(tmp_path, "diffusion"))
    assert not any(p.name.startswith(".b.") for p in tmp_path.iterdir())


@pytest.mark.parametrize("change,match", [
    ({"face_mask_softness": 0.0}, r"face_mask_softness.*\[0.001, 0.5\]"),
    ({"lower_face_strength": "1.7"}, "lower_face_strength.*finite number"),
    ({"eye_saccade_seed": 1.5}, "eye_saccade_seed.*integer"),
    ({"skin_strenght": 1.0}, "skin_strenght"),
    ({"source_shot": "nope", "source_frame": 0}, "source_shot.*shot_a"),
    ({"source_shot": "shot_b", "source_frame": 18}, r"source_frame.*\[0, 18\)"),
])
def test_model_config_rejects_bad_values(change, match):
    specs = {"shot_a": (0, 12), "shot_b": (12, 18)}
    with pytest.raises(ConfigError, match=match):
        bundle.model_config("regression", change, specs)


def test_model_config_keeps_explicit_source():
    cfg = bundle.model_config("regression", {"source_shot": "shot_b", "source_frame": 17}, {"shot_a": (0, 12), "shot_b": (12, 18)})
    assert (cfg["config"]["source_shot"], cfg["config"]["source_frame"]) == ("shot_b", 17)


def test_deploy_run_resolves_training_and_preproc_dirs(tmp_path, caplog):
    kw = F.bundle_kwargs(tmp_path, "regression")
    preproc = tmp_path / "output_preproc" / "250101_000000_pre" / "deploy"
    preproc.mkdir(parents=True)
    np.savez(preproc / "network_data.npz", **F.model_data())
    run = tmp_path / "output_train" / "250102_000000_reg"
    (run / "deploy").mkdir(parents=True)
    (run / "configs").mkdir()
    (run / "configs" / "preproc_info.json").write_text(json.dumps({"preproc_run_name_full": {"claire": "250101_000000_pre"}}))
    (run / "deploy" / "network_info.json").write_text(json.dumps(kw["network_info"]))
    (run / "deploy" / "network.onnx").write_bytes(kw["onnx_model"])
    np.savez(run / "deploy" / "implicit_emo_db.npz", **bundle.emo_db_arrays(F.emo_db()))
    (run / "deploy" / "trt_info.json").write_text(json.dumps(_trainer_trt(kw["network_info"])))
    rundir.write_status(run, "complete")
    configs = types.SimpleNamespace(
        network_type="regression",
        train=types.SimpleNamespace(TRAIN_OUTPUT_ROOT=str(tmp_path / "output_train"), PREPROC_ROOT=str(tmp_path / "output_preproc"),
                                    FINAL_DEPLOY_ROOT=str(tmp_path / "output_deploy")),
        inference=types.SimpleNamespace(CONFIG={"source_shot": "shot_b", "source_frame": 3}),
    )
    with caplog.at_level(logging.WARNING):
        out = bundle.deploy_run(configs, "250102_000000_reg")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text  # a fresh run: no "differs"
    assert out == tmp_path / "output_deploy" / "250102_000000_reg"
    assert json.loads((out / "model_config.json").read_text())["config"]["source_shot"] == "shot_b"
    assert check.errors(check.check_bundle(out)) == []
    with pytest.raises(ConfigError, match="diffusion"):
        bundle.deploy_run(types.SimpleNamespace(**{**vars(configs), "network_type": "diffusion"}), run, out_root=tmp_path / "x")


@pytest.mark.parametrize("kind,ids", [("regression", ("claire",)), ("diffusion", ("claire", "mark"))])
def test_animate_a_bundle_end_to_end(tmp_path, kind, ids):
    from a2f_jax.deploy import run_bundle
    from a2f_jax.deploy import runtime_feed as rf
    from a2f_jax.infer import postprocess as pp

    out = bundle.write_bundle(tmp_path / "b", **F.bundle_kwargs(tmp_path, kind, ids), run_onnx=False)
    audio = np.random.default_rng(0).standard_normal(12000).astype(np.float32) * 0.1  # 0.75 s
    geo = run_bundle.animate(out, audio, actor=ids[-1], fps=30.0)
    frames = 23 if kind == "regression" else 45  # ceil(0.75 s · 30) / 0.75 s · 60
    assert geo["skin"].shape == (frames, F.VS, 3) and geo["tongue"].shape == (frames, F.VT, 3)
    assert geo["jaw"].shape == (frames, 16) and geo["eyes"].shape == (frames, 6)
    # the same pipeline by hand for the regression case: input_strength applied, source_shot row used
    if kind == "regression":
        cfg = json.loads((out / "model_config.json").read_text())["config"]
        run = rf.ort_runner(ort_session(out / "network.onnx"))
        with np.load(out / "implicit_emo_db.npz") as z:
            implicit = z["emo_db"][0]  # source_shot shot_a (start 0), frame 0
        rows = rf.run_regression(run, audio, np.concatenate([implicit, np.zeros(3, np.float32)]), fps=30.0,
                                 input_strength=cfg["input_strength"])
        data = pp.ModelData.load(out / "model_data.npz", "regression")
        want = pp.PostProcessor(data, cfg, 30.0).process(pp.deltas_from_regression(rows, data))
        np.testing.assert_allclose(geo["skin"], want["skin"], atol=1e-6)
    with pytest.raises(DataError, match="identities"):
        run_bundle.animate(out, audio, actor="nobody")


def _trainer_trt(info: dict) -> dict:
    """deploy/trt_info.json in the compact layout training writes (`write_run_metadata` of
    a2f_jax.networks.regression / .diffusion): one "b,..." shape string per network input."""
    p = info["params"]
    if info["id"]["type"] == "regression":
        e = p["implicit_emotion_len"] + len(p["explicit_emotions"])
        return {"input": "b,1,8320", "emotion": f"b,1,{e}", "extra": "--memPoolSize=tacticSharedMem:0.046875"}
    s, d = p["num_diffusion_steps"], p["skin_size"] + p["tongue_size"] + p["jaw_size"] + p["eyes_size"]
    return {"window": "b,16000", "identity": f"b,{len(p['identities'])}", "emotion": f"b,30,{len(p['emotions'])}",
            "input_latents": f"{s},{p['num_gru_layers']},b,{p['gru_latent_dim']}", "noise": f"b,{s + 1},60,{d}",
            "estimated_trt_builder_time": 150, "MAX_BATCH_SIZE": 8, "OPT_BATCH_SIZE": 3}


@pytest.mark.parametrize("kind", ["regression", "diffusion"])
def test_trt_info_of_a_fresh_run_matches_and_a_real_difference_is_named(tmp_path, kind):
    info = F.regression_info() if kind == "regression" else F.diffusion_info()
    path = tmp_path / "trt_info.json"
    for same in (_trainer_trt(info), C.trt_info(info)):  # the trainers' layout and the original's
        path.write_text(json.dumps(same))
        assert bundle.trt_differences(path, info) == []
    changed = _trainer_trt(info)
    changed["emotion"] += "0"  # ten times the emotion length
    del changed["input" if kind == "regression" else "window"]
    path.write_text(json.dumps(changed))
    diffs = bundle.trt_differences(path, info)
    assert len(diffs) == 2 and any(d.startswith("emotion: expected") for d in diffs) and any(d.endswith("found nothing") for d in diffs)
    original = C.trt_info(info)
    original["trt_build_param"]["batch"][0] = original["trt_build_param"]["batch"][0].replace("emotion:1x", "emotion:2x")
    path.write_text(json.dumps(original))
    assert any("--minShapes" in d for d in bundle.trt_differences(path, info))
    path.write_text("{not json")
    assert bundle.trt_differences(path, info)[0].startswith("not JSON")


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_bundle_files_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    kw = F.bundle_kwargs(tmp_path, "regression")
    old = os.umask(umask)
    try:
        out = bundle.write_bundle(tmp_path / "b", **kw, run_onnx=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == dir_mode
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {p.name: file_mode for p in out.iterdir()}
