"""a2f_jax.deploy.onnx_diffusion: the streaming graph (HuBERT, 2-step sampler, latents, delta output) vs JAX, on a tiny net."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bundle_fixtures as F
from a2f_jax.deploy import bundle, check, onnx_diffusion, onnx_utils
from a2f_jax.deploy import contract as C
from a2f_jax.errors import ConfigError, DataError
from a2f_jax.models import diffusion_rnn as dr
from a2f_jax.models import diffusion_sampling as ds
from a2f_jax.models import gaussian_diffusion as gd
from a2f_jax.models.audio_encoder import EncoderConfig

LEFT, CENTER, RIGHT, HID = 3, 6, 3, 8


@pytest.fixture(scope="module")
def tiny():
    enc = EncoderConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, conv_dim=(8,) * 7,
                        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, mask_time_length=3)
    cfg = dr.DiffusionNetConfig(skin_dim=3 * F.VS, tongue_dim=3 * F.VT, num_actors=2, num_emotions=3, encoder=enc,
                                hubert_feature_dim=16, feature_dim=16, gru_feature_dim=HID, diffusion_steps=20,
                                streaming=(LEFT, CENTER, RIGHT))
    rng = np.random.default_rng(0)
    consts = dr.ActorConstants(rng.standard_normal((2, cfg.output_dim)).astype(np.float32), scale_skin=[2.0, 3.0],
                               scale_tongue=[0.5, 0.25], scale_jaw=[4.0, 1.0], scale_eye=[1.0, 2.0])
    net = dr.DiffusionRNN(cfg, consts)
    params = jax.jit(net.init)({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 12, cfg.output_dim)), jnp.array([3]),
                               jnp.zeros((1, 3200)), jnp.eye(2)[:1], jnp.zeros((1, 3)))["params"]
    params = jax.tree_util.tree_map(lambda p: p, params)
    for head in ("final_layer_skin", "final_layer_tongue", "final_layer_jaw", "final_layer_eye"):  # zero-init heads: perturb
        for leaf in ("kernel", "bias"):
            params[head]["2"][leaf] = jnp.asarray(0.3 * rng.standard_normal(params[head]["2"][leaf].shape), jnp.float32)
    diffusion = gd.create_diffusion(20, "cosine", "2")
    info = C.diffusion_network_info(["claire", "mark"], F.EMOTIONS, [0.0, 0.0, 0.0], F.VS, F.VT, gru_latent_dim=HID,
                                    left=LEFT, center=CENTER, right=RIGHT)
    model = onnx_diffusion.export_diffusion(net, params, diffusion, info)
    return net, params, diffusion, info, model


def _feeds(cfg, b, seed=3):
    rng = np.random.default_rng(seed)
    f = LEFT + CENTER + RIGHT
    feeds = {"window": 0.2 * rng.standard_normal((b, 16000)), "identity": np.eye(2)[np.arange(b) % 2],
             "emotion": rng.standard_normal((b, CENTER, 3)), "input_latents": rng.standard_normal((2, 2, b, HID)),
             "noise": rng.standard_normal((b, 3, f, cfg.output_dim))}
    return {k: v.astype(np.float32) for k, v in feeds.items()}


def test_graph_io_contract(tiny):
    *_, info, model = tiny
    dims = {vi.name: [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in list(model.graph.input) + list(model.graph.output)}
    d = 3 * F.VS + 3 * F.VT + 19
    assert dims == {"window": ["batch_size", 16000], "identity": ["batch_size", 2], "emotion": ["batch_size", CENTER, 3],
                    "input_latents": [2, 2, "batch_size", HID], "noise": ["batch_size", 3, 12, d],
                    "prediction": ["batch_size", 12, d], "output_latents": [2, 2, "batch_size", HID]}


def test_onnx_matches_jax_sampler(tiny):
    net, params, diffusion, _, model = tiny
    feeds = _feeds(net.cfg, 2)
    ref = jax.jit(lambda *a: ds.sample_streaming_window(net, params, diffusion, *a))(*feeds.values())
    ours = jax.jit(ds.export_fn(net, params, diffusion))(*feeds.values())
    for a, b in zip(ref, ours):  # the exported computation is the network's own streaming sampler
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    assert float(np.abs(np.asarray(ref[0])[:, LEFT:LEFT + CENTER]).max()) > 1e-2
    diffs = onnx_utils.compare_with_jax(model, jax.jit(ds.export_fn(net, params, diffusion)), feeds)
    assert max(diffs.values()) <= 1e-4, diffs


def test_skip_steps_and_noise_slots(tiny):
    net, params, diffusion, _, _ = tiny
    feeds = _feeds(net.cfg, 1)
    fn = jax.jit(ds.export_fn(net, params, diffusion))
    base = fn(*feeds.values())
    changed = dict(feeds, noise=feeds["noise"].copy())
    changed["noise"][:, 0] += 5.0  # slot 0 is multiplied by 0 in the last (k = 0) step
    np.testing.assert_allclose(np.asarray(fn(*changed.values())[0]), np.asarray(base[0]), atol=1e-6)
    changed["noise"][:, 2] += 1.0  # x_S = noise[:, S] matters
    assert float(np.abs(np.asarray(fn(*changed.values())[0]) - np.asarray(base[0])).max()) > 1e-4
    skip = ds.export_fn(net, params, diffusion, skip_steps=1)(*[jnp.asarray(v) for v in feeds.values()])
    ref = ds.sample_streaming_window(net, params, diffusion, *[jnp.asarray(v) for v in feeds.values()], skip_steps=1)
    np.testing.assert_allclose(np.asarray(skip[0]), np.asarray(ref[0]), atol=1e-6)
    with pytest.raises(ConfigError, match="SKIP_STEPS"):
        ds.export_fn(net, params, diffusion, skip_steps=2)(*[jnp.asarray(v) for v in feeds.values()])


def test_network_info_must_match_the_graph(tiny):
    net, params, diffusion, info, _ = tiny
    bad = json.loads(json.dumps(info))
    bad["params"]["num_diffusion_steps"] = 3
    with pytest.raises(DataError, match="num_diffusion_steps"):
        onnx_diffusion.export_diffusion(net, params, diffusion, bad)
    with pytest.raises(ConfigError, match="TIMESTEP_RESPACING"):
        onnx_diffusion.export_diffusion(net, params, gd.create_diffusion(20, "cosine", ""), info)


def test_diffusion_bundle_with_the_real_network_passes_the_checker(tiny, tmp_path):
    *_, info, model = tiny
    kw = F.bundle_kwargs(tmp_path, "diffusion", ("claire", "mark"))
    kw.update(network_info=info, onnx_model=model)
    out = bundle.write_bundle(tmp_path / "b", **kw)  # includes the SDK-style streaming run with carried latents
    assert check.check_bundle(out) == []


def test_deploy_run_exports_a_diffusion_training_run(tiny, tmp_path):
    """A run dir as the diffusion trainer leaves it (model_def.json + params, no network.onnx)."""
    import dataclasses
    import types

    import ml_collections

    from a2f_jax.config import inference_diffusion
    from a2f_jax.runs import TrainingRun

    net, params, diffusion, info, _ = tiny
    c = net.constants
    run = tmp_path / "train" / "250101_000000_diff"
    (run / "deploy").mkdir(parents=True)
    (run / "configs").mkdir()
    model_def = {"network": "diffusion_rnn", "net_cfg": {k: v for k, v in dataclasses.asdict(net.cfg).items() if k != "encoder"},
                 "encoder": net.cfg.encoder.to_dict(), "actors": ["claire", "mark"], "explicit_emotions": F.EMOTIONS,
                 "mean_geometry": c.mean_geometry.tolist(),
                 "scales": {k: getattr(c, f"scale_{k}").tolist() for k in ("skin", "tongue", "jaw", "eye")}}
    (run / "model_def.json").write_text(json.dumps(model_def))
    TrainingRun(run).save_params(params)
    (run / "deploy" / "network_info.json").write_text(json.dumps(info))
    runs = {}
    for i, actor in enumerate(("claire", "mark")):
        pre = tmp_path / "preproc" / f"250101_00000{i}_pre" / "deploy"
        pre.mkdir(parents=True)
        np.savez(pre / "network_data.npz", **F.model_data(i))
        runs[actor] = pre.parent.name
    (run / "configs" / "preproc_info.json").write_text(json.dumps({"preproc_run_name_full": runs}))
    (run / "run_status.json").write_text(json.dumps({"status": "complete"}))  # deploy takes finished runs only
    train = ml_collections.ConfigDict({"TRAIN_OUTPUT_ROOT": str(tmp_path / "train"), "PREPROC_ROOT": str(tmp_path / "preproc"),
                                       "FINAL_DEPLOY_ROOT": str(tmp_path / "deploy"), "DIFFUSION_NOISE_SCHEDULE": "cosine"})
    inference = ml_collections.ConfigDict({**inference_diffusion.base_dict(), "CONFIG": {}, "TIMESTEP_RESPACING": "2", "SKIP_STEPS": 0})
    configs = types.SimpleNamespace(network_type="diffusion", train=train, inference=inference)
    out = bundle.deploy_run(configs, run)
    assert check.check_bundle(out) == []
    feeds = _feeds(net.cfg, 1, seed=9)
    diffs = onnx_utils.compare_with_jax(out / "network.onnx", jax.jit(ds.export_fn(net, params, diffusion)), feeds)
    assert max(diffs.values()) <= 1e-4
    inference.TIMESTEP_RESPACING = None
    with pytest.raises(ConfigError, match="TIMESTEP_RESPACING"):
        bundle.deploy_run(configs, run, out_root=tmp_path / "other")
