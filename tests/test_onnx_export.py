"""a2f_jax.deploy.onnx_utils + export.onnx_regression: contract names/shapes, opset-14 legalisation, ORT vs JAX."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest

import bundle_fixtures as F
from a2f_jax.deploy import bundle, check, onnx_regression, onnx_utils
from a2f_jax.deploy import contract as C
from a2f_jax.errors import DataError


def _dims(vi):
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def test_harness_names_batch_axes_and_opset():
    info = F.diffusion_info(("a", "b"))
    shapes = C.onnx_tensor_shapes(info)
    fn = F.diffusion_standin(info)
    ins = [(n, shapes[n]) for n in ("window", "identity", "emotion", "input_latents", "noise")]
    outs = [(n, shapes[n]) for n in ("prediction", "output_latents")]
    model = onnx_utils.export_onnx(fn, ins, outs)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [14]
    assert [vi.name for vi in model.graph.input] == [n for n, _ in ins]
    assert _dims(model.graph.input[3]) == [2, 2, "batch_size", 256]  # latents: batch at dim 2
    assert _dims(model.graph.output[0]) == ["batch_size", 60, shapes["prediction"][2]]
    rng = np.random.default_rng(0)
    for b in (1, 3):
        feeds = {n: rng.standard_normal([b if d == "B" else d for d in s]).astype(np.float32) for n, s in ins}
        diffs = onnx_utils.compare_with_jax(model, jax.jit(fn), feeds)
        assert set(diffs) == {"prediction", "output_latents"} and max(diffs.values()) <= 1e-4


def test_validate_io_reports_contract_mismatches():
    fn = lambda x: jnp.tanh(x) * 2.0  # noqa: E731
    model = onnx_utils.export_onnx(fn, [("input", ("B", 4))], [("result", ("B", 4))])
    assert onnx_utils.validate_io(model, [("input", ("B", 4))], [("result", ("B", 4))]) == []
    problems = onnx_utils.validate_io(model, [("audio", ("B", 4))], [("result", ("B", 5))])
    assert any("input names" in p for p in problems) and any("result dim 1: expected 5" in p for p in problems)
    with pytest.raises(DataError, match="does not match the contract"):
        onnx_utils.export_onnx(fn, [("input", ("B", 4))], [("result", (1, 4))])  # batch must stay symbolic


def test_opset14_legalisation_of_reductions_and_batch_shapes():
    # mean over a batch-sized axis makes jax2onnx emit ReduceMean(axes as input) and Shape(start=..)
    fn = lambda x: x - x.mean(axis=(0, 2), keepdims=True) + x.max(axis=-1, keepdims=True)  # noqa: E731
    model = onnx_utils.export_onnx(fn, [("x", ("B", 2, 5))], [("y", ("B", 2, 5))])
    for node in model.graph.node:
        if node.op_type.startswith("Reduce") and node.op_type != "ReduceSum":
            assert len(node.input) == 1 and any(a.name == "axes" for a in node.attribute)
        if node.op_type == "Shape":
            assert not node.attribute
    onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(1).standard_normal((3, 2, 5)).astype(np.float32)
    assert onnx_utils.compare_with_jax(model, fn, {"x": x})["y"] <= 1e-5


@pytest.fixture(scope="module")
def tiny_regression():
    from a2f_jax.models.audio_encoder import EncoderConfig
    from a2f_jax.models.regression import ConvW2VAutocorr, RegressionNetConfig, init_params

    enc = EncoderConfig(model_type="wav2vec2", hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                        conv_dim=(8,) * 7, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4, layerdrop=0.0,
                        apply_spec_augment=False, mask_time_prob=0.0)
    params = {"use_w2v_features": True, "use_autocorr_features": True, "w2v_freeze": True, "w2v_num_layers": 1,
              "implicit_emotion_len": 16, "explicit_emo_emb_len": 8, "explicit_emotions": F.EMOTIONS,
              "num_shapes_skin": F.KS, "num_shapes_tongue": F.KT, "result_jaw_size": 15, "result_eyes_size": 4}
    net = ConvW2VAutocorr(RegressionNetConfig.from_network_params(params, encoder=enc))
    weights = jax.jit(lambda key: init_params(net, key, seq=1))(jax.random.PRNGKey(0))
    info = F.regression_info()
    return net, weights, info, onnx_regression.export_regression(net, weights, info)


def test_regression_graph_matches_jax(tiny_regression):
    net, weights, info, model = tiny_regression
    assert [(vi.name, _dims(vi)) for vi in model.graph.input] == [("input", ["batch_size", 1, 8320]), ("emotion", ["batch_size", 1, 19])]
    assert [(vi.name, _dims(vi)) for vi in model.graph.output] == [("result", ["batch_size", 1, F.KS + F.KT + 19])]
    rng = np.random.default_rng(2)
    feeds = {"input": 0.2 * rng.standard_normal((2, 1, 8320)).astype(np.float32),
             "emotion": rng.standard_normal((2, 1, 19)).astype(np.float32)}
    fn = jax.jit(onnx_regression.regression_fn(net, weights))
    diffs = onnx_utils.compare_with_jax(model, fn, feeds)
    assert diffs["result"] <= 1e-4
    assert float(np.abs(np.asarray(fn(feeds["input"], feeds["emotion"]))).max()) > 1e-3  # non-trivial output


def test_regression_network_bundle_passes_the_checker(tiny_regression, tmp_path):
    _, _, info, model = tiny_regression
    kw = F.bundle_kwargs(tmp_path, "regression")
    kw["onnx_model"] = model
    out = bundle.write_bundle(tmp_path / "b", **kw)  # write_bundle runs the checker incl. onnxruntime feeding
    assert check.check_bundle(out) == []
    assert json.loads((out / "network_info.json").read_text()) == info


def test_regression_export_rejects_mismatched_network_info(tiny_regression):
    net, weights, info, _ = tiny_regression
    bad = json.loads(json.dumps(info))
    bad["params"]["explicit_emotions"].append("fear")
    with pytest.raises(DataError, match="emotion"):
        onnx_regression.export_regression(net, weights, bad)


def test_deploy_run_exports_a_regression_training_run(tiny_regression, tmp_path):
    """A run dir as the regression trainer leaves it (no network.onnx): deploy exports the checkpointed network."""
    import types

    from a2f_jax.runs import TrainingRun

    net, weights, info, _ = tiny_regression
    run = tmp_path / "train" / "250101_000000_reg"
    (run / "deploy").mkdir(parents=True)
    (run / "configs").mkdir()
    hyper = {"use_w2v_features": True, "use_autocorr_features": True, "w2v_freeze": True, "w2v_num_layers": 1,
             "implicit_emotion_len": 16, "explicit_emo_emb_len": 8}
    model_def = {"network": "conv_w2v_autocorr", "window": 8320, "encoder": net.cfg.encoder.to_dict(),
                 "params": {**hyper, "explicit_emotions": F.EMOTIONS, "num_shapes_skin": F.KS, "num_shapes_tongue": F.KT,
                            "result_jaw_size": 15, "result_eyes_size": 4}}
    (run / "model_def.json").write_text(json.dumps(model_def))
    TrainingRun(run).save_params({"net": weights, "emo_db": np.zeros((30, 16), np.float32)})
    (run / "deploy" / "network_info.json").write_text(json.dumps(info))
    (run / "deploy" / "trt_info.json").write_text(json.dumps({"input": "b,1,8320"}))  # a non-original layout: replaced
    np.savez(run / "deploy" / "implicit_emo_db.npz", **bundle.emo_db_arrays(F.emo_db()))
    pre = tmp_path / "preproc" / "250101_000000_pre" / "deploy"
    pre.mkdir(parents=True)
    np.savez(pre / "network_data.npz", **F.model_data())
    (run / "configs" / "preproc_info.json").write_text(json.dumps({"preproc_run_name_full": {"claire": "250101_000000_pre"}}))
    (run / "run_status.json").write_text(json.dumps({"status": "complete"}))  # deploy takes finished runs only
    configs = types.SimpleNamespace(
        network_type="regression", inference=types.SimpleNamespace(CONFIG={}),
        train=types.SimpleNamespace(TRAIN_OUTPUT_ROOT=str(tmp_path / "train"), PREPROC_ROOT=str(tmp_path / "preproc"),
                                    FINAL_DEPLOY_ROOT=str(tmp_path / "deploy")))
    out = bundle.deploy_run(configs, run)
    assert check.check_bundle(out) == []
    assert json.loads((out / "trt_info.json").read_text()) == C.trt_info(info)
    # the exported graph is the checkpointed network: same output as JAX on a window
    rng = np.random.default_rng(5)
    feeds = {"input": 0.2 * rng.standard_normal((1, 1, 8320)).astype(np.float32), "emotion": rng.standard_normal((1, 1, 19)).astype(np.float32)}
    diffs = onnx_utils.compare_with_jax(out / "network.onnx", jax.jit(onnx_regression.regression_fn(net, weights)), feeds)
    assert diffs["result"] <= 1e-4
