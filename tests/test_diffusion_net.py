"""diffusion_rnn: shapes, zero-init heads, alignment, padding equivalence, streaming crop, parameter count."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2f_jax.errors import ConfigError
from a2f_jax.models import diffusion_rnn as dr
from a2f_jax.models import diffusion_sampling as ds
from a2f_jax.models import freeze
from a2f_jax.models.audio_encoder import EncoderConfig
from a2f_jax.train import losses_diffusion as ld

TINY_ENC = EncoderConfig(
    hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, conv_dim=(8,) * 7,
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, mask_time_length=3,
)
VS, VT = 4, 2


def _cfg(**kw):
    base = dict(skin_dim=3 * VS, tongue_dim=3 * VT, num_actors=2, num_emotions=3, encoder=TINY_ENC,
                hubert_feature_dim=16, feature_dim=16, gru_feature_dim=8, diffusion_steps=20,
                streaming=(3, 6, 3))
    base.update(kw)
    return dr.DiffusionNetConfig(**base)


def _mean_geometry(cfg, seed=0):
    return np.random.default_rng(seed).standard_normal((cfg.num_actors, cfg.output_dim)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    cfg = _cfg()
    net = dr.DiffusionRNN(cfg, dr.ActorConstants(_mean_geometry(cfg)))
    x = jnp.zeros((1, 12, cfg.output_dim))
    variables = jax.jit(net.init)({"params": jax.random.PRNGKey(0)}, x, jnp.array([3]), jnp.zeros((1, 3200)),
                                  jnp.eye(2)[:1], jnp.zeros((1, 3)))
    return cfg, net, variables["params"]


def _randomize_heads(params, seed=1):
    """Zero-init last layers give no gradient upstream; perturb them for gradient tests."""
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map(lambda p: p, params)
    for head in ("final_layer_skin", "final_layer_tongue", "final_layer_jaw", "final_layer_eye"):
        for leaf in ("kernel", "bias"):
            shape = params[head]["2"][leaf].shape
            params[head]["2"][leaf] = jnp.asarray(rng.standard_normal(shape).astype(np.float32) * 0.3)
    return params


def test_shapes_and_initial_prediction_is_mean_geometry(model):
    cfg, net, params = model
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((2, 12, cfg.output_dim)).astype(np.float32))
    audio = jnp.asarray(rng.standard_normal((2, 3200)).astype(np.float32))
    actor = jnp.asarray([[1.0, 0.0], [0.25, 0.75]])  # a blend: mean geometry is actor_vec-weighted
    out = jax.jit(net.apply)({"params": params}, x, jnp.array([0, 19]), audio, actor, jnp.eye(3)[:2])
    assert out.shape == (2, 12, cfg.output_dim)
    mg = np.asarray(actor) @ _mean_geometry(cfg)
    np.testing.assert_allclose(np.asarray(out), np.broadcast_to(mg[:, None], out.shape), rtol=1e-6, atol=1e-6)
    # Every head's last layer is zero; nothing else is.
    for head in ("final_layer_skin", "final_layer_tongue", "final_layer_jaw", "final_layer_eye"):
        assert not np.any(np.asarray(params[head]["2"]["kernel"])) and not np.any(np.asarray(params[head]["2"]["bias"]))
        assert np.any(np.asarray(params[head]["0"]["kernel"]))
    assert params["gru"]["weight_ih_l0"].shape == (3 * 8, cfg.gru_input_dim)


def test_parameter_tree_mirrors_torch_names(model):
    _, _, params = model
    names = {"/".join(str(k.key) for k in path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]}
    for expected in ("proj_hubert/kernel", "proj_time/0/kernel", "geometry_embedding/skin_embedding/0/kernel",
                     "geometry_embedding/skin_embedding/1/kernel", "geometry_embedding/final/2/bias",
                     "gru/bias_hh_l1", "final_layer_skin/2/kernel", "embed_actor/kernel", "embed_emo_vector/kernel",
                     "audio_model/masked_spec_embed"):
        assert expected in names, expected
    assert "embed_actor/bias" not in names


def _np_align(feats, out_len):
    """The original's linear1d(align_corners=True), float32, written from its formula."""
    src = feats.shape[0]
    scale = np.float32(src - 1.0) / np.float32(out_len - 1.0)
    x = np.arange(out_len).astype(np.float32) * scale
    lo = np.floor(x).astype(int)
    up = np.minimum(np.ceil(x), src - 1).astype(int)
    w = (x - np.floor(x))[:, None]
    return feats[lo] * (1 - w) + feats[up] * w


@pytest.mark.parametrize("fps", [60, 30])
def test_alignment_matches_reference_and_per_item_lengths(fps):
    rng = np.random.default_rng(3)
    feats = rng.standard_normal((2, 49, 5)).astype(np.float32)
    T = 60 if fps == 60 else 30
    out = np.asarray(dr.align_features(jnp.asarray(feats), T, fps))
    fold = 2 if fps == 30 else 1
    ref = _np_align(feats[0], fold * T).reshape(T, fold * 5)
    np.testing.assert_allclose(out[0], ref, rtol=1e-6, atol=1e-6)
    assert out.shape == (2, T, fold * 5)
    if fps == 30:  # consecutive interpolated frames are concatenated
        np.testing.assert_allclose(out[0, 3, 5:], _np_align(feats[0], 60)[7], rtol=1e-6)
    # Per-item lengths: item 1 is a padded 20-frame item with 17 real encoder frames.
    short = np.asarray(dr.align_features(jnp.asarray(feats[1:, :17]), 20, fps))
    padded = np.asarray(dr.align_features(jnp.asarray(feats), T, fps, jnp.array([49, 17]), jnp.array([T, 20])))
    np.testing.assert_allclose(padded[0], out[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(padded[1, :20], short[0], rtol=1e-6, atol=1e-6)
    assert not np.allclose(out[1, :20], short[0])  # without lengths the item would be aligned wrongly


def test_encoder_frame_counts():
    n = dr.encoder_frame_counts(TINY_ENC, jnp.array([16000, 8320, 400, 3200]))
    assert list(np.asarray(n)) == [49, 25, 1, 9]


def test_padded_batch_equals_unpadded_items_loss_and_gradients(model):
    cfg, net, params = model
    params = _randomize_heads(params)
    rng = np.random.default_rng(4)
    lengths, samples = [12, 8], [3200, 2134]
    audio = [jnp.asarray(rng.standard_normal((1, n)).astype(np.float32)) for n in samples]
    x_t = [rng.standard_normal((1, n, cfg.output_dim)).astype(np.float32) for n in lengths]
    x0 = [rng.standard_normal((1, n, cfg.output_dim)).astype(np.float32) * 0.3 for n in lengths]
    ts = [np.array([4]), np.array([11])]
    actors = [np.array([[1.0, 0.0]], np.float32), np.array([[0.0, 1.0]], np.float32)]
    emos = [np.array([[0.0, 1.0, 0.0]], np.float32), np.zeros((1, 3), np.float32)]
    encode = jax.jit(lambda p, a: net.apply({"params": p}, a, method=dr.DiffusionRNN.encode))
    hidden = [encode(params, a) for a in audio]  # the encoder sees each item unpadded
    mg = [np.asarray(_mean_geometry(cfg))[[0]], np.asarray(_mean_geometry(cfg))[[1]]]
    consts = ld.build_loss_constants(
        skin_dim=cfg.skin_dim, tongue_dim=cfg.tongue_dim, jaw_dim=15, eye_dim=4, scale_skin=[1.5, 0.7],
        translate_skin=[[0, 1, 0], [1, 0, 0]], shapes_matrix=[np.eye(3 * VS)[:5].reshape(5, VS, 3)] * 2,
        shapes_mean=[np.zeros((VS, 3))] * 2, lip_dist_verts={"upper": [0], "lower": [1]},
        eye_dist_verts={"lower": [2, 3]},
    )
    del mg

    def loss_fn(p, hid, xt, x0_, t, actor, emo, mask, feat_len):
        tokens = net.apply({"params": p}, hid, xt.shape[1], mask, feat_len, method=dr.DiffusionRNN.condition)
        pred, _ = net.apply({"params": p}, xt, t, tokens, actor, emo, None, mask, method=dr.DiffusionRNN.denoise)
        out = ld.diffusion_losses(pred, x0_, consts, actor, tongue_weight=0.1, jaw_weight=1.0, lip_dist_alpha=0.5,
                                  lip_dist_exp=10.0, velocity_alpha=0.3, exp_smooth_alpha=25.0, mask=mask)
        return jnp.sum(out["total"])

    grad_fn = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))
    singles, g_single, gh_single = 0.0, None, []
    for b in range(2):
        v, (gp, gh) = grad_fn(params, hidden[b], x_t[b], x0[b], ts[b], actors[b], emos[b], None, None)
        singles += float(v)
        g_single = gp if g_single is None else jax.tree_util.tree_map(jnp.add, g_single, gp)
        gh_single.append(np.asarray(gh))
    T, T50 = max(lengths), hidden[0].shape[1]
    hid_p = np.full((2, T50, hidden[0].shape[2]), 9.0, np.float32)  # garbage in padded encoder frames
    xt_p = np.full((2, T, cfg.output_dim), 4.0, np.float32)
    x0_p = np.full((2, T, cfg.output_dim), -2.0, np.float32)
    mask = np.zeros((2, T), np.float32)
    for b in range(2):
        hid_p[b, : hidden[b].shape[1]] = np.asarray(hidden[b][0])
        xt_p[b, : lengths[b]], x0_p[b, : lengths[b]], mask[b, : lengths[b]] = x_t[b][0], x0[b][0], 1
    feat_len = np.array([h.shape[1] for h in hidden])
    v, (gp, gh) = grad_fn(params, jnp.asarray(hid_p), jnp.asarray(xt_p), jnp.asarray(x0_p), np.concatenate(ts),
                          np.concatenate(actors), np.concatenate(emos), jnp.asarray(mask), jnp.asarray(feat_len))
    np.testing.assert_allclose(float(v), singles, rtol=1e-5)
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(gp)[0], jax.tree_util.tree_leaves(g_single)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=1e-6, err_msg=str(path))
    assert np.abs(np.asarray(gp["gru"]["weight_hh_l0"])).sum() > 0
    for b in range(2):
        n50 = hidden[b].shape[1]
        np.testing.assert_allclose(np.asarray(gh)[b, :n50], gh_single[b][0], rtol=2e-4, atol=1e-7)
        assert not np.any(np.asarray(gh)[b, n50:])


def test_padded_batch_from_audio_equals_unpadded_items(model):
    """The whole network, HuBERT included: a right-padded batch with mask + audio lengths gives each item's
    unpadded output on its real frames (the encoder ignores the padding, the GRU keeps its state)."""
    cfg, net, params = model
    params = _randomize_heads(params, seed=9)
    rng = np.random.default_rng(10)
    lengths, samples = [12, 8], [3200, 2134]
    T, N = max(lengths), max(samples)
    audio_p = np.zeros((2, N), np.float32)
    x_p = np.full((2, T, cfg.output_dim), 3.0, np.float32)
    mask = np.zeros((2, T), np.float32)
    t, actor, emo = jnp.array([5, 17]), jnp.eye(2), jnp.asarray(rng.uniform(size=(2, 3)).astype(np.float32))
    fwd = jax.jit(net.apply)
    singles = []
    for b in range(2):
        a = rng.standard_normal(samples[b]).astype(np.float32)
        x = rng.standard_normal((lengths[b], cfg.output_dim)).astype(np.float32)
        audio_p[b, : samples[b]], x_p[b, : lengths[b]], mask[b, : lengths[b]] = a, x, 1.0
        singles.append(np.asarray(fwd({"params": params}, x[None], t[b : b + 1], a[None], actor[b : b + 1], emo[b : b + 1]))[0])
    batch = np.asarray(fwd({"params": params}, jnp.asarray(x_p), t, jnp.asarray(audio_p), actor, emo, jnp.asarray(mask),
                           jnp.asarray(samples)))
    for b in range(2):
        np.testing.assert_allclose(batch[b, : lengths[b]], singles[b], rtol=2e-4, atol=2e-5)
    # Without the lengths the shorter item's encoder sees the zero padding, and its frames change.
    blind = np.asarray(fwd({"params": params}, jnp.asarray(x_p), t, jnp.asarray(audio_p), actor, emo, jnp.asarray(mask)))
    assert not np.allclose(blind[1, : lengths[1]], singles[1], rtol=2e-4, atol=2e-5)


def test_call_equals_encode_condition_denoise_and_audio_lengths(model):
    cfg, net, params = model
    params = _randomize_heads(params, seed=5)
    rng = np.random.default_rng(6)
    audio = jnp.asarray(rng.standard_normal((1, 3200)).astype(np.float32))
    x = jnp.asarray(rng.standard_normal((1, 12, cfg.output_dim)).astype(np.float32))
    args = (x, jnp.array([7]), audio, jnp.eye(2)[:1], jnp.zeros((1, 3)))
    full = jax.jit(net.apply)({"params": params}, *args)
    with_len = jax.jit(net.apply)({"params": params}, *args, jnp.ones((1, 12)), jnp.array([3200]))
    np.testing.assert_allclose(np.asarray(with_len), np.asarray(full), rtol=1e-6, atol=1e-6)
    assert not np.allclose(np.asarray(full), np.asarray(full)[:, :1])  # frames differ: the GRU sees the audio


def test_streaming_crop_and_carried_state(model):
    cfg, net, params = model
    params = _randomize_heads(params, seed=7)
    rng = np.random.default_rng(8)
    left, block, right = cfg.streaming
    F = left + block + right
    x = jnp.asarray(rng.standard_normal((2, F, cfg.output_dim)).astype(np.float32))
    tokens = jnp.asarray(rng.standard_normal((2, F, cfg.feature_dim)).astype(np.float32))
    actor, t = jnp.eye(2), jnp.array([19, 19])
    emo_frames = jnp.asarray(rng.uniform(size=(2, block, 3)).astype(np.float32))
    h0 = jnp.asarray(rng.standard_normal((2, 2, 8)).astype(np.float32))
    den = jax.jit(lambda p, *a, crop: net.apply({"params": p}, *a, method=dr.DiffusionRNN.denoise, crop=crop),
                  static_argnames="crop")
    pred, h = den(params, x, t, tokens, actor, emo_frames, h0, crop=True)
    assert pred.shape == (2, F, cfg.output_dim) and h.shape == (2, 2, 8)
    assert not np.any(np.asarray(pred[:, :left])) and not np.any(np.asarray(pred[:, left + block :]))
    # The centre equals an uncropped run over the centre frames from the same state.
    sl = slice(left, left + block)
    ref, h_ref = den(params, x[:, sl], t, tokens[:, sl], actor, emo_frames, h0, crop=False)
    np.testing.assert_allclose(np.asarray(pred[:, sl]), np.asarray(ref), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(h), np.asarray(h_ref), rtol=1e-5, atol=1e-6)
    # Two half blocks with the state carried equal one run over the block.
    half = block // 2
    p1, h1 = den(params, x[:, left : left + half], t, tokens[:, left : left + half], actor,
                 emo_frames[:, :half], h0, crop=False)
    p2, h2 = den(params, x[:, left + half : left + block], t, tokens[:, left + half : left + block], actor,
                 emo_frames[:, half:], h1, crop=False)
    np.testing.assert_allclose(np.asarray(jnp.concatenate([p1, p2], 1)), np.asarray(ref), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(h2), np.asarray(h_ref), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="frames per window"):
        den(params, x[:, :-1], t, tokens[:, :-1], actor, emo_frames, h0, crop=True)


def test_train_mode_is_stochastic_and_eval_is_not(model):
    cfg, net, params = model
    params = _randomize_heads(params, seed=9)
    rng = np.random.default_rng(10)
    args = (jnp.asarray(rng.standard_normal((1, 12, cfg.output_dim)).astype(np.float32)), jnp.array([2]),
            jnp.asarray(rng.standard_normal((1, 3200)).astype(np.float32)), jnp.eye(2)[:1], jnp.zeros((1, 3)))
    f = jax.jit(lambda p, k, *a: net.apply({"params": p}, *a, train=True,
                                            rngs={"dropout": k, "mask": jax.random.fold_in(k, 1)}))
    a = f(params, jax.random.PRNGKey(1), *args)
    b = f(params, jax.random.PRNGKey(2), *args)
    e = jax.jit(net.apply)({"params": params}, *args)
    assert not np.allclose(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(a), np.asarray(e))


def test_to_delta_matches_numpy():
    cfg = _cfg()
    mg = _mean_geometry(cfg)
    consts = dr.ActorConstants(mg, scale_skin=[2.0, 3.0], scale_tongue=[0.5, 0.25], scale_jaw=[4.0, 1.0],
                               scale_eye=[10.0, 20.0])
    rng = np.random.default_rng(11)
    pred = rng.standard_normal((2, 5, cfg.output_dim)).astype(np.float32)
    actor = np.array([[1.0, 0.0], [0.5, 0.5]], np.float32)
    out = np.asarray(dr.to_delta(jnp.asarray(pred), jnp.asarray(actor), cfg, consts))
    s, tg = cfg.skin_dim, cfg.tongue_dim
    m = actor @ mg
    sc = lambda v: (actor @ np.asarray(v, np.float32))[:, None, None]  # noqa: E731
    ref = np.concatenate([
        (pred[..., :s] - m[:, None, :s]) * sc([2.0, 3.0]),
        (pred[..., s : s + tg] - m[:, None, s : s + tg]) * sc([0.5, 0.25]),
        pred[..., s + tg : s + tg + 15] * sc([4.0, 1.0]),
        pred[..., s + tg + 15 :] * sc([10.0, 20.0]),
    ], axis=-1)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    with pytest.raises(ConfigError, match="scale_skin"):
        dr.to_delta(jnp.asarray(pred), jnp.asarray(actor), cfg, dr.ActorConstants(mg))


def test_config_errors():
    with pytest.raises(ConfigError, match="hubert_feature_dim"):
        _cfg(target_fps=30)  # 30 fps folds frame pairs: needs 2 × hidden
    assert _cfg(target_fps=30, hubert_feature_dim=32).hubert_feature_dim == 32
    with pytest.raises(ConfigError, match="TARGET_FPS"):
        _cfg(target_fps=25)
    cfg = _cfg()
    net = dr.DiffusionRNN(cfg, dr.ActorConstants(np.zeros((1, cfg.output_dim))))
    with pytest.raises(ConfigError, match="mean_geometry"):
        net.init(jax.random.PRNGKey(0), jnp.zeros((1, 12, cfg.output_dim)), jnp.array([0]), jnp.zeros((1, 3200)),
                 jnp.eye(2)[:1], jnp.zeros((1, 3)))


def test_from_train_config_reads_base_keys():
    from a2f_jax.config import train_diffusion

    tcfg = train_diffusion.base_dict()
    cfg = dr.DiffusionNetConfig.from_train_config(tcfg, skin_dim=30, tongue_dim=6, jaw_dim=15, eye_dim=4,
                                                  num_actors=1, num_emotions=10, encoder=EncoderConfig())
    assert (cfg.feature_dim, cfg.gru_feature_dim, cfg.num_gru_layers, cfg.hubert_feature_dim) == (256, 256, 2, 768)
    assert cfg.streaming == (15, 30, 15) and cfg.target_fps == 60 and cfg.diffusion_steps == 1000
    assert cfg.gru_input_dim == 861
    bad = dict(tcfg, NETWORK_HYPER_PARAMS=dict(tcfg["NETWORK_HYPER_PARAMS"], gru_dim=3))
    with pytest.raises(ConfigError, match="NETWORK_HYPER_PARAMS"):
        dr.DiffusionNetConfig.from_train_config(bad, skin_dim=30, tongue_dim=6, jaw_dim=15, eye_dim=4,
                                                num_actors=1, num_emotions=10, encoder=EncoderConfig())


def _count(tree):
    return sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree))


def test_parameter_count_at_base_size():
    vs, vt = 5000, 500
    cfg = dr.DiffusionNetConfig(skin_dim=3 * vs, tongue_dim=3 * vt, num_actors=1, num_emotions=10,
                                encoder=EncoderConfig())
    net = dr.DiffusionRNN(cfg, dr.ActorConstants(np.zeros((1, cfg.output_dim))))
    shapes = jax.eval_shape(
        net.init, jax.random.PRNGKey(0), jax.ShapeDtypeStruct((1, 60, cfg.output_dim), jnp.float32),
        jax.ShapeDtypeStruct((1,), jnp.int32), jax.ShapeDtypeStruct((1, 16000), jnp.float32),
        jax.ShapeDtypeStruct((1, 1), jnp.float32), jax.ShapeDtypeStruct((1, 10), jnp.float32),
    )["params"]
    encoder = shapes.pop("audio_model")
    non_encoder = _count(shapes)
    assert non_encoder == 2_529_306 + 3_075 * vs + 1_599 * vt  # docs/training.md "Parameter count"
    assert non_encoder == dr.non_encoder_param_count(cfg)
    assert _count(shapes["gru"]) == 1_254_144
    assert _count(shapes["geometry_embedding"]["final"]) == 488_205
    assert _count(shapes["proj_time"]) == 256_256
    assert _count(shapes["proj_hubert"]) == 196_864
    assert _count(shapes["final_layer_skin"]["0"]) == 131_584
    total_enc = _count(encoder)
    assert round(total_enc / 1e6, 2) == 94.37
    shapes["audio_model"] = encoder
    labels = freeze.param_labels(shapes, dr.frozen_param_predicate())
    trainable = sum(math.prod(x.shape) for x, lab in zip(jax.tree_util.tree_leaves(shapes), jax.tree_util.tree_leaves(labels))
                    if lab == freeze.TRAINABLE)
    assert round((trainable - non_encoder) / 1e6, 2) == 75.60


def test_streaming_window_sampler_matches_manual_two_steps(model):
    from a2f_jax.models import gaussian_diffusion as gd

    cfg, _, params = model
    consts = dr.ActorConstants(_mean_geometry(cfg), scale_skin=[2.0, 3.0], scale_tongue=[0.5, 0.25],
                               scale_jaw=[4.0, 1.0], scale_eye=[10.0, 20.0])
    net = dr.DiffusionRNN(cfg, consts)
    params = _randomize_heads(params, seed=12)
    diff = gd.create_diffusion(cfg.diffusion_steps, "cosine", "2")
    rng = np.random.default_rng(13)
    left, block, right = cfg.streaming
    F, B = left + block + right, 2
    window = jnp.asarray(rng.standard_normal((B, 3200)).astype(np.float32))
    identity = jnp.asarray([[1.0, 0.0], [0.0, 1.0]])
    emotion = jnp.asarray(rng.uniform(size=(B, block, 3)).astype(np.float32))
    latents = jnp.asarray(rng.standard_normal((2, 2, B, 8)).astype(np.float32))
    noise = jnp.asarray(rng.standard_normal((B, 3, F, cfg.output_dim)).astype(np.float32))
    run = jax.jit(lambda p, *a: ds.sample_streaming_window(net, p, diff, *a))
    pred, out_latents = run(params, window, identity, emotion, latents, noise)
    assert pred.shape == (B, F, cfg.output_dim) and out_latents.shape == latents.shape

    v = {"params": params}
    tokens = net.apply(v, net.apply(v, window, method=dr.DiffusionRNN.encode), F, method=dr.DiffusionRNN.condition)
    den = lambda x, t, h: net.apply(v, x, jnp.full((B,), t), tokens, identity, emotion, h,  # noqa: E731
                                    method=dr.DiffusionRNN.denoise, crop=True)
    x2 = noise[:, 2]
    p1, h1 = den(x2, cfg.diffusion_steps - 1, latents[1])
    x1 = (diff.posterior_mean_coef1[1] * p1 + diff.posterior_mean_coef2[1] * x2
          + np.exp(0.5 * diff.posterior_log_variance_clipped[1]) * noise[:, 1])
    p0, h0 = den(x1, 0, latents[0])
    np.testing.assert_allclose(np.asarray(out_latents[0]), np.asarray(h0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out_latents[1]), np.asarray(h1), rtol=1e-4, atol=1e-5)
    ref = dr.to_delta(p0, identity, cfg, consts)
    np.testing.assert_allclose(np.asarray(pred[:, left : left + block]), np.asarray(ref[:, left : left + block]),
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="input_latents"):
        ds.sample_streaming_window(net, params, diff, window, identity, emotion, latents[:1], noise)

    # Offline: zero state, no crop, the same two DDPM steps over the whole clip.
    off = jax.jit(lambda p, *a: ds.sample_offline(net, p, diff, *a))(params, window, identity, emotion[:, 0], noise)
    den_off = lambda x, t: net.apply(v, x, jnp.full((B,), t), tokens, identity, emotion[:, 0],  # noqa: E731
                                     method=dr.DiffusionRNN.denoise)[0]
    q1 = den_off(x2, cfg.diffusion_steps - 1)
    y1 = (diff.posterior_mean_coef1[1] * q1 + diff.posterior_mean_coef2[1] * x2
          + np.exp(0.5 * diff.posterior_log_variance_clipped[1]) * noise[:, 1])
    np.testing.assert_allclose(np.asarray(off), np.asarray(den_off(y1, 0)), rtol=1e-4, atol=1e-4)


def _np_forward(params, cfg, x, t, tokens, actor, emo, mean_geometry):
    """The original's forward_offline after the audio path, in float64 NumPy (conv as torch cross-correlation)."""
    P = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    lin = lambda p, v: v @ p["kernel"] + (p["bias"] if "bias" in p else 0.0)  # noqa: E731
    relu = lambda v: np.maximum(v, 0)  # noqa: E731

    def conv9(p, v):  # torch Conv1d(1, 1, 9, padding=4) along the last axis
        w, b = p["kernel"][:, 0, 0], p["bias"][0]
        vp = np.pad(v, [(0, 0)] * (v.ndim - 1) + [(4, 4)])
        return b + sum(w[j] * vp[..., j : j + v.shape[-1]] for j in range(9))

    g = P["geometry_embedding"]
    s, tg = cfg.skin_dim, cfg.tongue_dim
    skin = relu(conv9(g["skin_embedding"]["1"], lin(g["skin_embedding"]["0"], x[..., :s])))
    tongue = relu(conv9(g["tongue_embedding"]["1"], lin(g["tongue_embedding"]["0"], x[..., s : s + tg])))
    jaw = relu(lin(g["jaw_embedding"]["2"], relu(lin(g["jaw_embedding"]["0"], x[..., s + tg : s + tg + 15]))))
    eye = relu(lin(g["eye_embedding"]["2"], relu(lin(g["eye_embedding"]["0"], x[..., s + tg + 15 :]))))
    geom = lin(g["final"]["2"], relu(lin(g["final"]["0"], np.concatenate([skin, tongue, jaw, eye], -1))))
    onehot = np.eye(cfg.diffusion_steps)[t]
    z = lin(P["proj_time"]["0"], onehot)
    t_tok = z * np.tanh(np.log1p(np.exp(z)))
    T = x.shape[1]
    rep = lambda v: np.repeat(v[:, None], T, axis=1)  # noqa: E731
    seq = np.concatenate([tokens, geom, rep(lin(P["embed_actor"], actor)), rep(t_tok), rep(lin(P["embed_emo_vector"], emo))], -1)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    gp = P["gru"]
    layer_in = seq
    for k in range(cfg.num_gru_layers):
        w_ih, w_hh, b_ih, b_hh = (gp[f"{n}_l{k}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        H = w_hh.shape[1]
        h = np.zeros((x.shape[0], H))
        outs = []
        for i in range(T):
            gi, gh = layer_in[:, i] @ w_ih.T + b_ih, h @ w_hh.T + b_hh
            r = sig(gi[:, :H] + gh[:, :H])
            zg = sig(gi[:, H : 2 * H] + gh[:, H : 2 * H])
            n = np.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
            h = (1 - zg) * n + zg * h
            outs.append(h)
        layer_in = np.stack(outs, 1)
    heads = [lin(P[name]["2"], relu(lin(P[name]["0"], layer_in)))
             for name in ("final_layer_skin", "final_layer_tongue", "final_layer_jaw", "final_layer_eye")]
    return np.concatenate(heads, -1) + (actor @ mean_geometry)[:, None]


def test_denoise_matches_numpy_reference_of_the_original(model):
    cfg, net, params = model
    params = _randomize_heads(params, seed=14)
    # Make the conv kernels asymmetric and sizeable so a flipped kernel or wrong padding would show.
    for part in ("skin_embedding", "tongue_embedding"):
        params["geometry_embedding"][part]["1"]["kernel"] = jnp.arange(9.0).reshape(9, 1, 1) / 10 - 0.3
    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 7, cfg.output_dim)).astype(np.float32)
    tokens = rng.standard_normal((2, 7, cfg.feature_dim)).astype(np.float32)
    actor = np.array([[1.0, 0.0], [0.3, 0.7]], np.float32)
    emo = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    t = np.array([0, 17])
    out, _ = jax.jit(lambda p, *a: net.apply({"params": p}, *a, method=dr.DiffusionRNN.denoise))(
        params, x, t, tokens, actor, emo)
    ref = _np_forward(params, cfg, x, t, tokens, actor, emo, _mean_geometry(cfg).astype(np.float64))
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-4, atol=1e-5)


def test_import_of_torch_state_dict_round_trip(model):
    cfg, net, params = model
    params = _randomize_heads(params, seed=16)
    # Build the original's state dict from our params (the inverse naming), including HF encoder names.
    state = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        names = [str(k.key) for k in path]
        if names[0] == "audio_model":
            continue
        v = np.asarray(leaf)
        if names[-1] == "kernel":
            names[-1] = "weight"
            v = v.transpose(2, 1, 0) if v.ndim == 3 else v.T
        state[".".join(names)] = v
    assert state["gru.weight_ih_l0"].shape == (24, cfg.gru_input_dim)
    assert state["geometry_embedding.skin_embedding.1.weight"].shape == (1, 1, 9)
    assert state["final_layer_skin.2.weight"].shape == (cfg.skin_dim, 16)
    state.update({"audio_model." + k: v for k, v in _hf_encoder_state(params["audio_model"]).items()})
    loaded = dr.params_from_torch_state_dict(state, net)
    for (pa, a), b in zip(jax.tree_util.tree_flatten_with_path(loaded)[0], jax.tree_util.tree_leaves(params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6, err_msg=str(pa))
    del state["proj_hubert.bias"]
    state["proj_hubert.extra"] = np.zeros(3)
    with pytest.raises(ConfigError, match="proj_hubert"):
        dr.params_from_torch_state_dict(state, net)


def _hf_encoder_state(enc):
    """Our encoder params → HF HubertModel state-dict names (inverse of encoder_weights' rules)."""
    import re

    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(enc)[0]:
        names = [str(k.key) for k in path]
        v = np.asarray(leaf)
        last = names[-1]
        if names[0] == "feature_extractor":
            i = names[1].split("_")[-1]
            sub = {"kernel": "conv.weight", "bias": "conv.bias", "norm_scale": "layer_norm.weight",
                   "norm_bias": "layer_norm.bias"}[last]
            key = f"feature_extractor.conv_layers.{i}.{sub}"
        elif names[:2] == ["encoder", "pos_conv_embed"]:
            key = "encoder.pos_conv_embed.conv." + last
            v = v.reshape(1, 1, -1) if last == "weight_g" else v
        else:
            key = re.sub(r"layers_(\d+)", r"layers.\1", ".".join(names))
            key = key.replace(".kernel", ".weight").replace(".scale", ".weight")
        if last in ("kernel", "weight_v"):
            v = v.transpose(2, 1, 0) if v.ndim == 3 else v.T
        out[key] = v
    return out


def test_streaming_window_exports_to_onnx_and_matches(model):
    """The deploy graph's contract (7 tensors, latents [S, 2, B, H], noise [B, S+1, F, C]) exports as is."""
    import jax2onnx

    from a2f_jax.deploy.onnx_utils import ort_session
    from a2f_jax.models import gaussian_diffusion as gd

    cfg, _, params = model
    consts = dr.ActorConstants(_mean_geometry(cfg), scale_skin=[2.0, 3.0], scale_tongue=[0.5, 0.25],
                               scale_jaw=[4.0, 1.0], scale_eye=[10.0, 20.0])
    net = dr.DiffusionRNN(cfg, consts)
    params = _randomize_heads(params, seed=17)
    diff = gd.create_diffusion(cfg.diffusion_steps, "cosine", "2")
    left, block, right = cfg.streaming
    rng = np.random.default_rng(18)
    B = 3
    feeds = {
        "window": rng.standard_normal((B, 3200)).astype(np.float32),
        "identity": np.eye(2, dtype=np.float32)[[0, 1, 0]],
        "emotion": rng.uniform(size=(B, block, 3)).astype(np.float32),
        "input_latents": rng.standard_normal((2, 2, B, 8)).astype(np.float32),
        "noise": rng.standard_normal((B, 3, left + block + right, cfg.output_dim)).astype(np.float32),
    }

    def fn(window, identity, emotion, input_latents, noise):
        return ds.sample_streaming_window(net, params, diff, window, identity, emotion, input_latents, noise)

    proto = jax2onnx.to_onnx(fn, [jax.ShapeDtypeStruct(v.shape, v.dtype) for v in feeds.values()],
                             input_names=list(feeds), output_names=["prediction", "output_latents"])
    assert [i.name for i in proto.graph.input] == list(feeds)
    assert not {n.op_type for n in proto.graph.node} & {"Mish", "ScatterND"}
    sess = ort_session(proto)
    got = sess.run(["prediction", "output_latents"], feeds)
    ref = jax.jit(fn)(*feeds.values())
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, np.asarray(r), rtol=1e-4, atol=1e-4)


def test_stop_frozen_gradients_zeroes_exactly_the_frozen_params(model):
    cfg, net, params = model
    params = _randomize_heads(params, seed=19)
    rng = np.random.default_rng(20)
    args = (jnp.asarray(rng.standard_normal((1, 12, cfg.output_dim)).astype(np.float32)), jnp.array([2]),
            jnp.asarray(rng.standard_normal((1, 3200)).astype(np.float32)), jnp.eye(2)[:1], jnp.zeros((1, 3)))
    grads = jax.jit(jax.grad(lambda p: jnp.sum(net.apply({"params": dr.stop_frozen_gradients(p)}, *args) ** 2)))(params)
    labels = freeze.param_labels(params, dr.frozen_param_predicate())
    flat_g = jax.tree_util.tree_flatten_with_path(grads)[0]
    flat_l = jax.tree_util.tree_leaves(labels)
    frozen_names = set()
    for (path, g), lab in zip(flat_g, flat_l):
        name = "/".join(str(k.key) for k in path)
        if lab == freeze.FROZEN:
            frozen_names.add(name.split("/")[1] + "/" + name.split("/")[2])
            assert not np.any(np.asarray(g)), name
        elif name.startswith(("audio_model/encoder/pos_conv_embed", "audio_model/encoder/layer_norm", "gru/")):
            assert np.any(np.asarray(g)), name
    assert {"encoder/layers_0", "encoder/layers_1"} <= frozen_names
    assert not any(n.startswith("encoder/layers_1") and n != "encoder/layers_1" for n in frozen_names)
