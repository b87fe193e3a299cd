"""A tiny diffusion training run and the matching deploy bundle, for the inference tests.

The run holds `model_def.json` + `params.msgpack` as the diffusion trainer writes them; the bundle holds
`network.onnx` exported from the same params, `network_info.json` and `model_data_<actor>.npz`.
STREAMING_CFG is the real one (15, 30, 15) at 60 fps so offline and streaming frame rates agree.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

ACTORS = ["claire", "mark"]
EMOTIONS = ["angry", "happy", "sad"]
VS, VT, HID = 6, 3, 8


def tiny_net(seed: int = 0):
    import jax
    import jax.numpy as jnp

    from a2f_jax.models import diffusion_rnn as dr
    from a2f_jax.models.audio_encoder import EncoderConfig

    enc = EncoderConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, conv_dim=(8,) * 7,
                        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, mask_time_length=3)
    cfg = dr.DiffusionNetConfig(skin_dim=3 * VS, tongue_dim=3 * VT, num_actors=2, num_emotions=3, encoder=enc,
                                hubert_feature_dim=16, feature_dim=16, gru_feature_dim=HID, diffusion_steps=20)
    rng = np.random.default_rng(seed)
    consts = dr.ActorConstants(rng.standard_normal((2, cfg.output_dim)).astype(np.float32), scale_skin=[2.0, 3.0],
                               scale_tongue=[0.5, 0.25], scale_jaw=[4.0, 1.0], scale_eye=[1.0, 2.0])
    net = dr.DiffusionRNN(cfg, consts)
    params = jax.jit(net.init)({"params": jax.random.PRNGKey(seed)}, jnp.zeros((1, 60, cfg.output_dim)), jnp.array([3]),
                               jnp.zeros((1, 16000)), jnp.eye(2)[:1], jnp.zeros((1, 3)))["params"]
    params = jax.tree_util.tree_map(np.asarray, params)
    for head in ("final_layer_skin", "final_layer_tongue", "final_layer_jaw", "final_layer_eye"):  # zero-init heads: perturb
        for leaf in ("kernel", "bias"):
            params[head]["2"][leaf] = (0.3 * rng.standard_normal(params[head]["2"][leaf].shape)).astype(np.float32)
    params["proj_hubert"]["kernel"] = params["proj_hubert"]["kernel"] * 4.0  # let the audio matter
    return net, params


def model_def(net) -> dict:
    c = net.cfg
    k = net.constants
    return {
        "network": "diffusion_rnn", "noise_schedule": "cosine",
        "net_cfg": {n: v for n, v in dataclasses.asdict(c).items() if n != "encoder"},
        "encoder": c.encoder.to_dict(),
        "actors": ACTORS, "explicit_emotions": EMOTIONS,
        "mean_geometry": k.mean_geometry.tolist(),
        "scales": {n: getattr(k, f"scale_{n}").tolist() for n in ("skin", "tongue", "jaw", "eye")},
        "translates": {"skin": [[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]], "tongue": [[0.1, 0.2, 0.3], [0.0, 0.0, -2.0]]},
    }


def write_run(run_dir: pathlib.Path, net, params) -> pathlib.Path:
    from a2f_jax.runs import TrainingRun

    run_dir.mkdir(parents=True, exist_ok=True)
    run = TrainingRun(run_dir)
    run.write_model_def(model_def(net))
    run.save_params(params)
    return run_dir


def write_bundle(bundle_dir: pathlib.Path, net, params) -> pathlib.Path:
    """network.onnx (2 respaced steps), network_info.json, model_data_<actor>.npz (neutral poses)."""
    import jax

    from a2f_jax.deploy import contract as C
    from a2f_jax.deploy.onnx_diffusion import export_diffusion
    from a2f_jax.models import gaussian_diffusion as gd

    bundle_dir.mkdir(parents=True, exist_ok=True)
    info = C.diffusion_network_info(ACTORS, EMOTIONS, [0.0, 0.0, 0.0], VS, VT, gru_latent_dim=HID)
    model = export_diffusion(net, jax.tree_util.tree_map(np.asarray, params), gd.create_diffusion(20, "cosine", "2"), info)
    (bundle_dir / "network.onnx").write_bytes(model.SerializeToString())
    (bundle_dir / "network_info.json").write_text(json.dumps(info))
    rng = np.random.default_rng(5)
    for a in ACTORS:
        np.savez(bundle_dir / f"model_data_{a}.npz", neutral_skin=rng.standard_normal((VS, 3)).astype(np.float32),
                 neutral_tongue=rng.standard_normal((VT, 3)).astype(np.float32))
    return bundle_dir
