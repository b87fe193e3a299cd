"""conv_w2v_autocorr: shapes, output order, flatten order, train/eval modes, phoneme head, parameter counts."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2f_jax.errors import ConfigError
from a2f_jax.models import audio_encoder
from a2f_jax.models.regression import ConvW2VAutocorr, RegressionNetConfig, count_params, init_params
from a2f_jax.ops.conv import conv1d_matmul

TINY_ENCODER = audio_encoder.EncoderConfig(
    model_type="wav2vec2",
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=32,
    conv_dim=(8,) * 7,
    num_conv_pos_embeddings=8,
    num_conv_pos_embedding_groups=4,
    layerdrop=0.0,
    apply_spec_augment=False,
    mask_time_prob=0.0,
)

HYPER = {
    "use_w2v_features": True,
    "use_autocorr_features": True,
    "w2v_freeze": True,
    "w2v_num_layers": 1,
    "autocorr_params": {"num_autocorr": 32, "num_windows": 25, "win_len": 640, "win_stride": 320,
                        "preemph": 0.0, "remove_dc": True, "win_func": "hanning"},
    "implicit_emotion_len": 16,
    "explicit_emo_emb_len": 8,
}
EMOTIONS = ["amazement", "anger", "cheekiness"]
KS, KT = 5, 3


def _cfg(encoder=TINY_ENCODER, **extra):
    params = dict(HYPER, explicit_emotions=EMOTIONS, num_shapes_skin=KS, num_shapes_tongue=KT,
                  result_jaw_size=15, result_eyes_size=4)
    params.update(extra)
    return RegressionNetConfig.from_network_params(params, encoder=encoder)


def _inputs(b=2, s=2, seed=0):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    audio = 0.1 * jax.random.normal(k1, (b, s, 8320))
    emo = jnp.concatenate([0.01 * jax.random.normal(k2, (b, s, 16)), jnp.eye(3)[jnp.arange(b * s) % 3].reshape(b, s, 3)], -1)
    return audio, emo, jnp.full((b,), 0.5)


@functools.lru_cache(maxsize=None)
def _fns(model):
    """One jitted init / eval / train / infer per model (compiles dominate this file's run time)."""
    def eval_(p, a, e, n):
        return model.apply({"params": p}, a, e, n, train=False, capture_intermediates=True, mutable=["intermediates"])

    def train(p, a, e, n, k):
        return model.apply({"params": p}, a, e, n, train=True, rngs={"dropout": k})

    return {
        "init": jax.jit(lambda k: init_params(model, k)),
        "eval": jax.jit(eval_),
        "train": jax.jit(train),
        "infer": jax.jit(lambda p, a, e: model.apply({"params": p}, a, e, method=model.infer)),
    }


@pytest.fixture(scope="module")
def net():
    model = ConvW2VAutocorr(_cfg(num_phonemes={"en": 7, "zh": 5}))
    return model, _fns(model)["init"](jax.random.PRNGKey(0))


def _eval(model, params, *args):
    (out, aux), state = _fns(model)["eval"](params, *args)
    return out, aux, state["intermediates"]


def test_shapes_through_every_layer(net):
    model, params = net
    out, aux, inter = _eval(model, params, *_inputs())
    assert out.shape == (2, 2, KS + KT + 19)
    shape = lambda name: inter[name]["__call__"][0].shape
    n = 4  # B * S
    assert shape("w2v_linear_mapping") == (n, 25, 256)
    assert [shape(f"freq{i}") for i in range(1, 6)] == [
        (n * 25, 16, 72), (n * 25, 8, 108), (n * 25, 4, 162), (n * 25, 2, 243), (n * 25, 1, 256)]
    assert [shape(f"time{i}") for i in range(1, 5)] == [(n, 13, 256), (n, 7, 256), (n, 4, 256), (n, 2, 256)]
    assert shape("time5") == (n, 256)
    assert shape("linear_explicit_emo") == (2, 2, 8)
    assert shape("linear_skin_jaw_eyes2") == (n, KS + 19) and shape("linear_tongue2") == (n, KT)
    assert shape("phoneme_conv1") == (n, 25, 256) and shape("phoneme_conv2") == (n, 25, 256)
    assert inter["w2v"]["__call__"][0].hidden_states[1].shape == (n, 25, 16)
    # the phoneme head runs in the original's "train" mode, in eval as well (r2_emo_zero pass)
    assert [p.shape for p in aux["phonemes"]] == [(2, 2, 25, 7), (2, 2, 25, 5)]
    assert params["phoneme_regressors_0"]["kernel"].shape == (256, 7)
    assert params["phoneme_regressors_1"]["kernel"].shape == (256, 5)


def test_autocorr_branch_input_is_normalised_scaled_autocorrelation(net):
    """freq1 must see the autocorrelation (docs/training.md) of audio / norm_factor * 8.912..., nothing more."""
    model, params = net
    audio, emo, nf = _inputs()
    _, _, inter = _eval(model, params, audio, emo, nf)
    x = np.asarray(audio, np.float64) / np.asarray(nf, np.float64)[:, None, None] * 8.912028121636435
    idx = np.arange(25)[:, None] * 320 + np.arange(640)[None, :]
    win = x[..., idx]
    win = (win - win.mean(-1, keepdims=True)) * np.hanning(640)
    ref = np.stack([(win[..., : 640 - k] * win[..., k:]).sum(-1) for k in range(32)], -1) / 640  # [B, S, 25, 32]
    k, bias = params["freq1"]["kernel"], params["freq1"]["bias"]
    ref_f1 = conv1d_matmul(jnp.asarray(ref.reshape(-1, 32, 1), jnp.float32), k, 2, (1, 1)) + bias
    np.testing.assert_allclose(inter["freq1"]["__call__"][0], ref_f1, rtol=2e-3, atol=2e-4 * float(np.abs(ref_f1).max()))


def test_output_order_skin_tongue_jaw_eye(net):
    model, params = net
    a = KS + 19
    p = dict(params)
    p["linear_skin_jaw_eyes2"] = {"kernel": jnp.zeros((a, a)), "bias": jnp.arange(a, dtype=jnp.float32)}
    p["linear_tongue2"] = {"kernel": jnp.zeros((KT, KT)), "bias": 100.0 + jnp.arange(KT, dtype=jnp.float32)}
    out, _, _ = _eval(model, p, *_inputs())
    expected = np.concatenate([np.arange(KS), 100 + np.arange(KT), np.arange(KS, KS + 15), np.arange(KS + 15, a)])
    np.testing.assert_array_equal(out[0, 0], expected)


def test_time5_flattens_channel_major_like_pytorch(net):
    model, params = net
    c_idx, h_idx = 37, 1
    p = dict(params)
    k = np.zeros((560, 256), np.float32)
    k[c_idx * 2 + h_idx, 0] = 1.0  # PyTorch view order of [C=280, H=2]: index c * 2 + h
    k[(256 + 2) * 2 + 0, 1] = 1.0  # channel 256 + j carries the joint emotion j (implicit first)
    p["time5"] = {"kernel": jnp.asarray(k), "bias": jnp.zeros(256)}
    audio, emo, nf = _inputs()
    _, _, inter = _eval(model, p, audio, emo, nf)
    t4 = inter["time4"]["__call__"][0]  # [B*S, H=2, 256] before NormRelu
    t5 = inter["time5"]["__call__"][0]
    np.testing.assert_allclose(t5[:, 0], math.sqrt(2) * np.maximum(np.asarray(t4[:, h_idx, c_idx]), 0), rtol=1e-5)
    np.testing.assert_allclose(t5[:, 1], np.asarray(emo[..., 2]).reshape(-1), rtol=1e-6)


def test_eval_deterministic_train_stochastic_with_dropout_key(net):
    model, params = net
    audio, emo, nf = _inputs()
    f = _fns(model)
    e1, _, _ = _eval(model, params, audio, emo, nf)
    e2, _, _ = _eval(model, params, audio, emo, nf)
    np.testing.assert_array_equal(e1, e2)
    t1, aux1 = f["train"](params, audio, emo, nf, jax.random.PRNGKey(1))
    t2, _ = f["train"](params, audio, emo, nf, jax.random.PRNGKey(2))
    np.testing.assert_array_equal(t1, f["train"](params, audio, emo, nf, jax.random.PRNGKey(1))[0])
    assert not np.allclose(t1, t2) and not np.allclose(t1, e1)
    assert [p.shape for p in aux1["phonemes"]] == [(2, 2, 25, 7), (2, 2, 25, 5)]
    # the export path: eval, no norm factor, no phoneme head
    np.testing.assert_allclose(f["infer"](params, audio, emo), _eval(model, params, audio, emo, jnp.ones(2))[0], rtol=1e-5, atol=1e-6)


def test_norm_factor_only_reaches_autocorr_branch(net):
    model, params = net
    audio, emo, nf = _inputs()
    o1, _, i1 = _eval(model, params, audio, emo, nf)
    o2, _, i2 = _eval(model, params, audio, emo, 3.0 * nf)
    w = lambda i: np.asarray(i["w2v_linear_mapping"]["__call__"][0])
    np.testing.assert_array_equal(w(i1), w(i2))  # the wav2vec branch sees raw audio
    assert not np.allclose(i1["freq1"]["__call__"][0], i2["freq1"]["__call__"][0])
    assert not np.allclose(o1, o2)
    # branches can be switched off; the parameter tree follows
    no_ac = ConvW2VAutocorr(_cfg(use_autocorr_features=False))
    shapes = jax.eval_shape(lambda k: init_params(no_ac, k), jax.random.PRNGKey(0))
    assert not any(k.startswith("freq") for k in shapes) and shapes["time1"]["kernel"].shape == (3, 256, 256)
    no_w2v = ConvW2VAutocorr(_cfg(use_w2v_features=False, num_phonemes={"en": 7}))
    shapes = jax.eval_shape(lambda k: init_params(no_w2v, k), jax.random.PRNGKey(0))
    assert "w2v" not in shapes and not any(k.startswith("phoneme") for k in shapes)


def test_frozen_encoder_gets_no_gradient_and_trunk_does(net):
    """w2v_freeze, as the train step applies it: the network's `models.freeze` labels, stop_gradient in the loss."""
    from a2f_jax.models import freeze
    from a2f_jax.networks import regression as R

    model, params = net
    labels = R.param_labels({"net": params}, model.cfg.w2v_freeze)

    def loss(p, a, e, n):
        p = freeze.stop_gradient_frozen({"net": p}, labels)["net"]
        return jnp.sum(model.apply({"params": p}, a, e, n, train=False)[0] ** 2)

    grads = jax.jit(jax.grad(loss))(params, *_inputs())
    assert sum(float(jnp.abs(g).sum()) for g in jax.tree_util.tree_leaves(grads["w2v"])) == 0.0
    for name in ("w2v_linear_mapping", "freq1", "time1", "time5", "linear_explicit_emo", "linear_tongue1"):
        assert float(jnp.abs(grads[name]["kernel"]).sum()) > 0, name


def test_config_errors():
    with pytest.raises(ConfigError, match="neither"):
        _cfg(use_w2v_features=False, use_autocorr_features=False)
    with pytest.raises(ConfigError, match="unknown"):
        _cfg(use_gru=True)
    with pytest.raises(ConfigError, match="autocorr_params"):
        _cfg(autocorr_params={"num_lags": 3})
    with pytest.raises(ConfigError, match="EncoderConfig"):
        _cfg(encoder=None)
    model = ConvW2VAutocorr(_cfg())
    audio, emo, nf = _inputs()
    with pytest.raises(ValueError, match="emotion expected"):
        jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), audio, emo[..., :-1], nf))


def test_parameter_count_base_config():
    """docs/training.md "Parameter count": trainable core 1,699,316; heads (281A) + (A^2 + A) + (281Kt) + (Kt^2 + Kt); phoneme 393,728 + 257P."""
    enc = audio_encoder.TORCHAUDIO_WAV2VEC2_BASE
    params = dict(HYPER, explicit_emotions=[f"e{i}" for i in range(10)], num_shapes_skin=140, num_shapes_tongue=10,
                  result_jaw_size=15, result_eyes_size=4, num_phonemes={"en": 42})
    model = ConvW2VAutocorr(RegressionNetConfig.from_network_params(params, encoder=enc))
    shapes = jax.eval_shape(lambda k: init_params(model, k), jax.random.PRNGKey(0))
    counts = {k: count_params(v) for k, v in shapes.items()}
    heads = ("linear_skin_jaw_eyes1", "linear_skin_jaw_eyes2", "linear_tongue1", "linear_tongue2")
    core = sum(v for k, v in counts.items() if k != "w2v" and k not in heads and not k.startswith("phoneme"))
    assert core == 1_699_316
    assert counts["w2v_linear_mapping"] == 196_864 and counts["time1"] == 393_472 and counts["time5"] == 143_616
    assert [counts[f"freq{i}"] for i in range(1, 6)] == [288, 23_436, 52_650, 118_341, 124_672]
    assert counts["linear_explicit_emo"] == 88 and counts["w2v_feature_coeffs"] == 1
    a, kt = 140 + 19, 10
    assert sum(counts[h] for h in heads) == 281 * a + a * a + a + 281 * kt + kt * kt + kt == 73_039
    assert sum(v for k, v in counts.items() if k.startswith("phoneme")) == 393_728 + 257 * 42
    # the frozen truncated wav2vec: about 16.40 M (docs/training.md)
    assert counts["w2v"] == 4_200_448 + 395_008 + 4_719_488 + 1_536 + 7_087_872 == 16_404_352


def test_encoder_runs_in_extract_features_mode_without_layerdrop(net):
    """The original's wav2vec path never applies LayerDrop: a snapshot config's layerdrop must not matter."""
    model, params = net
    args = _inputs()
    key = jax.random.PRNGKey(7)
    cfg = model.cfg
    lossy = ConvW2VAutocorr(RegressionNetConfig(**{**cfg.__dict__, "encoder": cfg.encoder.replace(layerdrop=0.99)}))
    np.testing.assert_array_equal(_fns(lossy)["train"](params, *args, key)[0], _fns(model)["train"](params, *args, key)[0])


def _conv2d_nchw(x, w, b, stride, pad):
    """PyTorch Conv2d semantics in NumPy (cross-correlation), x [N, C, H, W], w [O, C, kH, kW]."""
    x = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    kh, kw = w.shape[2:]
    ho, wo = (x.shape[2] - kh) // stride[0] + 1, (x.shape[3] - kw) // stride[1] + 1
    out = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i : i + stride[0] * (ho - 1) + 1 : stride[0], j : j + stride[1] * (wo - 1) + 1 : stride[1]]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out + b[None, :, None, None]


def test_torch_state_dict_import_matches_numpy_original_forward():
    """Full eval forward of the original (autocorr branch), re-stated in NumPy with torch layouts and weights."""
    from a2f_jax.models.regression import params_from_torch_state_dict

    cfg = _cfg(use_w2v_features=False)
    rng = np.random.default_rng(5)
    j, a = 24, KS + 19
    shapes = {"freq1": (72, 1, 1, 3), "freq2": (108, 72, 1, 3), "freq3": (162, 108, 1, 3), "freq4": (243, 162, 1, 3),
              "freq5": (256, 243, 1, 2), "time1": (256, 256, 3, 1), "time2": (256, 256 + j, 3, 1),
              "time3": (256, 256 + j, 3, 1), "time4": (256, 256 + j, 3, 1), "time5": (256, 2 * (256 + j)),
              "linear_skin_jaw_eyes1": (a, 256 + j), "linear_skin_jaw_eyes2": (a, a), "linear_tongue1": (KT, 256 + j),
              "linear_tongue2": (KT, KT), "linear_explicit_emo": (8, 3)}
    sd = {}
    for name, shp in shapes.items():
        sd[f"{name}.weight"] = rng.uniform(-1, 1, shp) / math.sqrt(np.prod(shp[1:]))
        sd[f"{name}.bias"] = rng.uniform(-0.1, 0.1, shp[0])
    sd["some.extra"] = np.zeros(2)
    params, unused = params_from_torch_state_dict(cfg, sd)
    assert unused == ["some.extra"]
    model = ConvW2VAutocorr(cfg)
    audio, emo, nf = _inputs(seed=3)
    out = jax.jit(lambda p, a, e, n: model.apply({"params": p}, a, e, n, train=False)[0])(params, audio, emo, nf)

    # --- the original's forward, [B, S, C, H, W] flattened to [N, C, H, W] ---
    b, s = 2, 2
    x = np.asarray(audio, np.float64) / np.asarray(nf, np.float64)[:, None, None] * 8.912028121636435
    idx = np.arange(25)[:, None] * 320 + np.arange(640)[None, :]
    win = x[..., idx]
    win = (win - win.mean(-1, keepdims=True)) * np.hanning(640)
    ac = np.stack([(win[..., : 640 - k] * win[..., k:]).sum(-1) for k in range(32)], -1) / 640
    h = ac.reshape(b * s, 1, 25, 32)
    nr = lambda v: np.sqrt(2) * np.maximum(v, 0)
    for i in range(1, 5):
        h = nr(_conv2d_nchw(h, sd[f"freq{i}.weight"], sd[f"freq{i}.bias"], (1, 2), (0, 1)))
    h = nr(_conv2d_nchw(h, sd["freq5.weight"], sd["freq5.bias"], (1, 1), (0, 0)))  # [N, 256, 25, 1]
    e = np.asarray(emo, np.float64).reshape(b * s, -1)
    joint = np.concatenate([e[:, :16], e[:, 16:] @ sd["linear_explicit_emo.weight"].T + sd["linear_explicit_emo.bias"]], -1)
    for i in range(1, 5):
        h = nr(_conv2d_nchw(h, sd[f"time{i}.weight"], sd[f"time{i}.bias"], (2, 1), (1, 0)))
        h = np.concatenate([h, np.broadcast_to(joint[:, :, None, None], (b * s, j) + h.shape[2:])], 1)
    h = h.reshape(b * s, -1)  # torch .view: index c * 2 + h
    h = nr(h @ sd["time5.weight"].T + sd["time5.bias"])
    h = np.concatenate([h, joint], -1)
    oa = (h @ sd["linear_skin_jaw_eyes1.weight"].T + sd["linear_skin_jaw_eyes1.bias"]) @ sd["linear_skin_jaw_eyes2.weight"].T + sd["linear_skin_jaw_eyes2.bias"]
    ot = (h @ sd["linear_tongue1.weight"].T + sd["linear_tongue1.bias"]) @ sd["linear_tongue2.weight"].T + sd["linear_tongue2.bias"]
    ref = np.concatenate([oa[:, :KS], ot, oa[:, KS:]], -1).reshape(b, s, -1)
    np.testing.assert_allclose(out, ref, rtol=2e-3, atol=2e-4 * np.abs(ref).max())

    del sd["time3.bias"]
    with pytest.raises(ConfigError, match=r"time3\.bias"):
        params_from_torch_state_dict(cfg, sd)
    sd["time3.bias"] = np.zeros(7)
    with pytest.raises(ConfigError, match="expected shape"):
        params_from_torch_state_dict(cfg, sd)
