"""COMPUTE_DTYPE (bf16 mixed precision) on tiny regression and diffusion steps (also the fixtures of
`tests/test_reference_ops.py`, which runs the same steps with the plain and the CPU-tuned ops).

Both networks' own train steps (`a2f_jax.networks`) run with an "optimizer" that stores the gradients in its
state, so one step gives (loss, gradients) exactly as training computes them.

Measured on CPU with these tiny nets (regression / diffusion): bf16 vs float32 loss 1e-5 / 1.4e-3 relative;
gradient cosine similarity 0.9996 / 0.9991 overall, at least 0.988 / 0.996 for each leaf holding 1 % of the
gradient norm. (CPU-tuned vs plain ops: `tests/test_reference_ops.py`, on these same tiny steps.)
"""

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ml_collections import ConfigDict

from a2f_jax.config import base
from a2f_jax.errors import ConfigError
from a2f_jax.models import precision

# Tolerances of bf16 against float32 (bf16 keeps 8 mantissa bits: ~4e-3 relative per rounding).
BF16_LOSS_RTOL = 1e-2
BF16_GRAD_COSINE = 0.995  # all gradients as one vector
BF16_LEAF_COSINE = 0.98  # each leaf holding at least 1 % of the gradient norm


def _capture_gradients() -> optax.GradientTransformation:
    """An 'optimizer' whose state after a step is that step's gradients (params unchanged)."""
    zeros = lambda tree: jax.tree_util.tree_map(jnp.zeros_like, tree)  # noqa: E731
    return optax.GradientTransformation(zeros, lambda g, _s, _p=None: (zeros(g), g))


# --- tiny regression --------------------------------------------------------------------------------------

REG_KS, REG_KT, REG_VERTS, REG_EMO, REG_FRAMES = 6, 3, 40, 3, 200


def _regression_setup(compute_dtype: str):
    from a2f_jax.models.audio_encoder import TORCHAUDIO_WAV2VEC2_BASE
    from a2f_jax.networks import regression as N
    from a2f_jax.train import losses

    enc = TORCHAUDIO_WAV2VEC2_BASE.extract_features_mode().replace(
        hidden_size=16, num_attention_heads=2, intermediate_size=32, conv_dim=(8,) * 7, num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=4, num_hidden_layers=1)
    hp = dict(base.train_regression().NETWORK_HYPER_PARAMS.to_dict(), w2v_num_layers=1)
    params = {**hp, "explicit_emotions": [f"e{i}" for i in range(REG_EMO)], "num_shapes_skin": REG_KS,
              "num_shapes_tongue": REG_KT, "result_jaw_size": 15, "result_eyes_size": 4}
    model = N.build_network(params, enc, compute_dtype=compute_dtype)
    rng = np.random.default_rng(0)
    shapes = (rng.standard_normal((REG_KS, REG_VERTS, 3)) / np.sqrt(REG_VERTS)).astype(np.float32)
    mean = rng.standard_normal((REG_VERTS, 3)).astype(np.float32)
    eyes = {"upper": [11, 12], "lower": [13, 14]}
    mean[eyes["upper"], 1] = mean[eyes["lower"], 1] + 2.0  # open eyes: the closed-eye mask keeps every sample
    geometry = losses.prepare_loss_geometry(shapes, mean, lip_dist_verts={"upper": [1, 2, 3], "lower": [4, 5, 6]},
                                            eye_dist_verts=eyes)
    train_cfg = ConfigDict({"LEARNING_RATE": 2e-4, "LR_STEP_GAMMA": 0.994})
    return types.SimpleNamespace(
        configs=types.SimpleNamespace(train=train_cfg), network=model, loss_cfg=losses.RegressionLossConfig(),
        geometry=geometry, lip_dist_weights=None, phonemes=None,
        data=types.SimpleNamespace(channel_sizes={"skin_coeffs": REG_KS, "tongue_coeffs": REG_KT, "jaw": 15, "eye": 4}),
    )


def _regression_inputs(setup):
    from a2f_jax.models import emotion_db
    from a2f_jax.train import losses
    from a2f_jax.train.sampler_regression import DeviceDataset

    key = jax.random.PRNGKey(0)
    params = {"net": setup.network.init_params(key), "emo_db": emotion_db.init_emotion_db(key, REG_FRAMES)}
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "norm": losses.init_normalizer_state()}
    rng = np.random.default_rng(1)
    d = REG_KS + REG_KT + 19
    audio = (0.1 * rng.standard_normal(16000 * 3)).astype(np.float32)
    dev = DeviceDataset(jnp.asarray(audio), jnp.asarray(rng.standard_normal((REG_FRAMES, d)).astype(np.float32)),
                        jnp.zeros((2, 8320), jnp.float32))
    b, s = 2, 2
    start = rng.integers(0, REG_FRAMES - 3, size=b)
    frames = (start[:, None] + np.arange(s)).astype(np.int32)
    idx = {"track_start": np.zeros(b, np.int32), "track_len": np.full(b, len(audio), np.int32),
           "sample_start": (rng.integers(0, len(audio) - 8320 - 600, size=(b, 1)) + np.arange(s) * 533).astype(np.int32),
           "muted": np.zeros(b, bool), "noise_idx": np.zeros((b, s), np.int32), "noise_scale": np.zeros(b, np.float32),
           "tgt_i0": frames, "tgt_i1": frames + 1, "tgt_w": rng.uniform(size=(b, s)).astype(np.float32),
           "global_frame_idx": frames, "explicit_emo": np.eye(REG_EMO, dtype=np.float32)[np.zeros((b, s), int)],
           "x_norm_factor": np.ones(b, np.float32), "shot_index": np.zeros(b, np.int32)}
    return state, dev, idx


def _regression_step(setup, opt):
    """The network's step on (state, dataset, indices), as the entry feeds it {"dataset", "index"}."""
    from a2f_jax.networks import regression as N

    step = N.make_train_step(setup, opt, 10, num_epochs=5, seed=42)
    return lambda state, dev, idx: step(state, {"dataset": dev, "index": idx})


def regression_loss_and_grads(compute_dtype: str = "float32"):
    """(loss, gradients, traced jaxpr text) of one regression train step, traced afresh."""
    setup = _regression_setup(compute_dtype)
    state, dev, idx = _regression_inputs(setup)
    opt = _capture_gradients()
    state["opt_state"] = opt.init(state["params"])
    fn = _regression_step(setup, opt)
    new_state, metrics = jax.jit(fn)(state, dev, idx)
    jaxpr = str(jax.make_jaxpr(fn)(state, dev, idx))
    return float(metrics["loss"]), jax.device_get(new_state["opt_state"]), jaxpr


# --- tiny diffusion ---------------------------------------------------------------------------------------

DIF_VS, DIF_VT, DIF_FRAMES, DIF_BATCH = 40, 8, 30, 2


def _randomize_zero_heads(params, seed: int = 1):
    """The heads' last layers start at zero (so x̂0 = mean geometry and nothing upstream gets a gradient):
    small random values make the loss depend on every layer."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    out = [0.05 * jax.random.normal(k, x.shape, x.dtype) if x.size and not np.any(np.asarray(x)) else x
           for k, x in zip(keys, leaves)]
    return jax.tree_util.tree_unflatten(treedef, out)


def _diffusion_setup(compute_dtype: str):
    from a2f_jax.models import diffusion_rnn as dnet
    from a2f_jax.models import gaussian_diffusion as gd
    from a2f_jax.models.audio_encoder import EncoderConfig
    from a2f_jax.networks import diffusion as T
    from a2f_jax.train import losses_diffusion as dl

    enc = EncoderConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                        conv_dim=(8,) * 7, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2, mask_time_length=3)
    tcfg = base.train_diffusion()
    tcfg.BATCH_SIZE = DIF_BATCH
    cfg = dnet.DiffusionNetConfig(skin_dim=3 * DIF_VS, tongue_dim=3 * DIF_VT, num_actors=1, num_emotions=3, encoder=enc,
                                  hubert_feature_dim=16, feature_dim=16, gru_feature_dim=16)
    rng = np.random.default_rng(0)
    consts_actor = dnet.ActorConstants(0.1 * rng.standard_normal((1, cfg.output_dim)).astype(np.float32))
    net = dnet.DiffusionRNN(cfg, consts_actor, precision.compute_dtype(compute_dtype))
    q, _ = np.linalg.qr(rng.standard_normal((3 * DIF_VS, 8)).astype(np.float32))
    consts = dl.build_loss_constants(
        skin_dim=cfg.skin_dim, tongue_dim=cfg.tongue_dim, jaw_dim=15, eye_dim=4, scale_skin=[1.0],
        translate_skin=[[0.0, 0.0, 0.0]], shapes_matrix=[q.T.reshape(8, DIF_VS, 3)],
        shapes_mean=[rng.standard_normal((DIF_VS, 3)).astype(np.float32)],
        lip_dist_verts={"upper": [0, 1, 2], "lower": [3, 4, 5]}, eye_dist_verts={"lower": [6, 7]})
    diffusion = gd.create_diffusion(int(tcfg.DIFFUSION_STEPS), tcfg.DIFFUSION_NOISE_SCHEDULE, "")
    return T.Setup(ConfigDict({"train": tcfg}), None, [], [], T.Network(net, {}), diffusion, consts, [], None)


def _diffusion_inputs(setup):
    from a2f_jax.networks import diffusion as T

    params = _randomize_zero_heads(T.init(setup, jax.random.PRNGKey(0)))
    rng = np.random.default_rng(2)
    samples = DIF_FRAMES * 16000 // 60
    lengths = np.array([DIF_FRAMES, DIF_FRAMES - 7])  # the second item right-padded: masks and audio lengths
    batch = {
        "audio": (0.1 * rng.standard_normal((DIF_BATCH, samples))).astype(np.float32),
        "y": (0.1 * rng.standard_normal((DIF_BATCH, DIF_FRAMES, setup.net_cfg.output_dim))).astype(np.float32),
        "mask": (np.arange(DIF_FRAMES)[None] < lengths[:, None]).astype(np.float32),
        "audio_len": (lengths * 16000 // 60).astype(np.int32),
        "actor": np.ones((DIF_BATCH, 1), np.float32),
        "emotion": np.eye(3, dtype=np.float32)[np.arange(DIF_BATCH) % 3],
    }
    return {"step": jnp.zeros((), jnp.int32), "params": params}, batch


def diffusion_loss_and_grads(compute_dtype: str = "float32"):
    """(loss, gradients, traced jaxpr text) of one diffusion train step, traced afresh."""
    from a2f_jax.networks import diffusion as T

    setup = _diffusion_setup(compute_dtype)
    state, batch = _diffusion_inputs(setup)
    batch["constants"] = setup.consts
    opt = _capture_gradients()
    state["opt_state"] = opt.init(state["params"])
    fn = T.make_train_step(setup, opt, seed=42)
    new_state, metrics = jax.jit(fn)(state, batch)
    jaxpr = str(jax.make_jaxpr(fn)(state, batch))
    return float(metrics["loss"]), jax.device_get(new_state["opt_state"]), jaxpr


# --- comparisons ------------------------------------------------------------------------------------------


def _flat(tree) -> dict:
    return {jax.tree_util.keystr(p): np.asarray(v, np.float64) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a.ravel(), b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _compare_bf16(ref, low) -> dict:
    fa, fb = _flat(ref), _flat(low)
    assert fa.keys() == fb.keys()
    total = np.sqrt(sum(float(np.sum(v * v)) for v in fa.values()))
    whole = _cosine(np.concatenate([v.ravel() for v in fa.values()]), np.concatenate([fb[k].ravel() for k in fa]))
    leaves = {k: _cosine(v, fb[k]) for k, v in fa.items() if np.linalg.norm(v) >= 0.01 * total}
    return {"cosine": whole, "leaf_cosines": leaves}


def _count_low_precision(jaxpr: str, prim: str) -> int:
    """Equations of primitive `prim` with a bf16 result in a printed jaxpr."""
    return sum(1 for line in jaxpr.splitlines() if f"= {prim}[" in line and ":bf16[" in line.split("=")[0])


# --- tests: mixed precision -------------------------------------------------------------------------------


@pytest.mark.parametrize("network", ["regression", "diffusion"])
def test_bf16_step_matches_float32_within_tolerance(network):
    fn = regression_loss_and_grads if network == "regression" else diffusion_loss_and_grads
    loss32, grads32, jaxpr32 = fn("float32")
    loss16, grads16, jaxpr16 = fn("bfloat16")
    # bf16 really ran: matmuls and convs with bf16 results, none in the float32 program
    assert _count_low_precision(jaxpr16, "dot_general") >= 5, "expected bf16 matmuls in the bf16 step"
    assert _count_low_precision(jaxpr16, "conv_general_dilated") >= 1
    assert _count_low_precision(jaxpr32, "dot_general") == 0
    assert loss16 != loss32  # not silently float32
    assert np.isfinite(loss16) and abs(loss16 - loss32) <= BF16_LOSS_RTOL * abs(loss32), (loss16, loss32)
    cmp = _compare_bf16(grads32, grads16)
    assert cmp["cosine"] >= BF16_GRAD_COSINE, cmp["cosine"]
    worst = min(cmp["leaf_cosines"].items(), key=lambda kv: kv[1])
    assert len(cmp["leaf_cosines"]) >= 5 and worst[1] >= BF16_LEAF_COSINE, worst
    # gradients (what Adam sees) and their dtype: float32 like the params
    assert {np.asarray(g).dtype for g in jax.tree_util.tree_leaves(grads16)} == {np.dtype(np.float32)}


def test_bf16_keeps_params_and_optimizer_state_float32():
    from a2f_jax.networks import regression as T
    from a2f_jax.train import optim

    setup = _regression_setup("bfloat16")
    state, dev, idx = _regression_inputs(setup)
    opt = optim.regression_optimizer(2e-4, 1.0, 0.994, 10, T.param_labels(state["params"], True))
    state["opt_state"] = opt.init(state["params"])
    new_state, metrics = jax.jit(_regression_step(setup, opt))(state, dev, idx)
    floats = {np.asarray(x).dtype for x in jax.tree_util.tree_leaves((new_state["params"], new_state["opt_state"],
                                                                       new_state["norm"]))
              if np.issubdtype(np.asarray(x).dtype, np.floating)}
    assert floats == {np.dtype(np.float32)}
    assert np.asarray(metrics["loss"]).dtype == np.float32 and np.isfinite(float(metrics["loss"]))
    moved = jax.tree_util.tree_map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
                                   state["params"]["net"]["time1"], new_state["params"]["net"]["time1"])
    assert max(jax.tree_util.tree_leaves(moved)) > 0  # Adam stepped on the float32 master weights


def test_bf16_diffusion_output_and_state_are_float32():
    from a2f_jax.models import diffusion_rnn as dnet

    setup = _diffusion_setup("bfloat16")
    state, batch = _diffusion_inputs(setup)
    c = setup.net_cfg
    x = jnp.asarray(batch["y"])
    pred = setup.net.apply({"params": state["params"]}, x, jnp.array([3, 7]), batch["audio"], batch["actor"], batch["emotion"])
    assert pred.dtype == jnp.float32  # the mean geometry is added in float32
    tokens = jnp.zeros((DIF_BATCH, DIF_FRAMES, c.feature_dim))
    _, h = setup.net.apply({"params": state["params"]}, x, jnp.array([3, 7]), tokens, batch["actor"], batch["emotion"],
                           method=dnet.DiffusionRNN.denoise)
    assert h.dtype == jnp.float32  # GRU state (the streaming latents) stays float32


def test_compute_dtype_key_and_errors():
    assert base.train_regression().COMPUTE_DTYPE == "float32" and base.train_diffusion().COMPUTE_DTYPE == "float32"
    assert precision.compute_dtype("bfloat16") == jnp.bfloat16 and precision.compute_dtype(None) == jnp.float32
    for bad in ("float16", "bf16", 32):
        with pytest.raises(ConfigError, match=r"COMPUTE_DTYPE.*expected one of \['bfloat16', 'float32'\]"):
            precision.compute_dtype(bad)
    # the trainer's model builder refuses it before reading any encoder snapshot
    from a2f_jax.networks import regression as N

    tcfg = base.train_regression()
    tcfg.COMPUTE_DTYPE = "float16"
    with pytest.raises(ConfigError, match="COMPUTE_DTYPE.*'float16'"):
        N.network_from_configs(tcfg, {"skin_coeffs": 4, "tongue_coeffs": 2, "jaw": 15, "eye": 4}, ["e0"])


def test_inference_model_def_stays_float32():
    """model_def.json does not carry the training dtype: a bf16 run's model rebuilds in float32."""
    from a2f_jax.networks import regression as N

    tcfg = base.train_regression()
    tcfg.COMPUTE_DTYPE = "bfloat16"
    tcfg.AUDIO_ENCODER_RANDOM_INIT = True
    tcfg.AUDIO_ENCODER_CONFIG_OVERRIDES = {"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 32,
                                           "conv_dim": [8] * 7, "num_conv_pos_embedding_groups": 4}
    model, _ = N.network_from_configs(tcfg, {"skin_coeffs": 4, "tongue_coeffs": 2, "jaw": 15, "eye": 4}, ["e0"])
    assert model.net.dtype == jnp.bfloat16
    assert "bfloat16" not in repr(model.model_def)
    assert N.from_model_def(model.model_def).net.dtype == jnp.float32
