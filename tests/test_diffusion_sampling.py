"""a2f_jax.models.diffusion_sampling: the one diffusion sampler (validation, inference, ONNX export), tiny net."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffusion_infer_fixtures as F
from a2f_jax.errors import ConfigError
from a2f_jax.infer import diffusion as D
from a2f_jax.models import diffusion_rnn as dr
from a2f_jax.models import diffusion_sampling as ds
from a2f_jax.models import gaussian_diffusion as gd

AUDIO = (0.3 * np.sin(np.arange(20000) / 16000 * 2 * np.pi * 3.0)
         * np.random.default_rng(1).standard_normal(20000)).astype(np.float32)  # 1.25 s: 4 streaming windows


@pytest.fixture(scope="module")
def tiny():
    net, params = F.tiny_net()
    return net, params, gd.create_diffusion(20, "cosine", "2")


def _window_inputs(net, b: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    left, block, right = net.cfg.streaming
    args = (0.2 * rng.standard_normal((b, 16000)), np.eye(2)[np.arange(b) % 2], rng.uniform(size=(b, block, 3)),
            rng.standard_normal((2, 2, b, F.HID)), rng.standard_normal((b, 3, left + block + right, net.cfg.output_dim)))
    return [np.asarray(a, np.float32) for a in args]


def test_streaming_windows_stitched_equal_the_engine_stream(tiny):
    """Windows of `sample_streaming_window` driven by hand (16000 samples every 8000, 1 s of left padding, latents
    carried, one noise block, centre blocks kept, the frames before the clip start dropped) are the engine's stream."""
    net, params, diff = tiny
    engine = D.engine_from_network(net, params, F.model_def(net), {"TIMESTEP_RESPACING": "2", "INFERENCE_MODE": "streaming"})
    got = np.concatenate(list(engine.iter_rows(AUDIO, emotion="happy", seed=0)), 0)

    g = engine.stream_geom
    noise = engine.noise(g.frames, 0)
    identity, emotion = engine.identity(None), np.broadcast_to(engine.emotion_vector("happy"), (1, g.center, 3))
    padded = np.concatenate([np.zeros(g.padding_left, np.float32), AUDIO, np.zeros(2 * g.window, np.float32)])
    run = jax.jit(lambda p, *a: ds.sample_streaming_window(net, p, diff, *a, delta_output=False))
    latents, rows = g.zero_latents(), []
    total = int(len(AUDIO) / 16000 * 60)
    k = 0
    while k * g.center - g.dropped < total:
        window = padded[k * g.hop:k * g.hop + g.window][None]
        pred, latents = run(params, window, identity, emotion, latents, noise)
        rows.append(np.asarray(pred)[0, g.left:g.left + g.center])
        k += 1
    want = np.concatenate(rows, 0)[g.dropped:g.dropped + total]
    assert got.shape == want.shape == (total, net.cfg.output_dim)
    # the engine runs the centre-only fast path: the same centre frames up to float rounding of smaller matmuls
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert float(np.abs(got[1:] - got[:-1]).max()) > 1e-3


def test_offline_equals_one_streaming_window_without_truncation():
    """With STREAMING_CFG (0, F, 0) and zero latents a window is a whole clip: the streaming GRU starts from zero and
    reads every frame, exactly as the offline sampler (which holds for any respacing and skip)."""
    net, params = F.tiny_net(seed=2)
    net = dr.DiffusionRNN(dataclasses.replace(net.cfg, streaming=(0, 12, 0)), net.constants)
    diff = gd.create_diffusion(20, "cosine", "3")
    rng = np.random.default_rng(4)
    window = (0.2 * rng.standard_normal((2, 16000))).astype(np.float32)
    identity = np.eye(2, dtype=np.float32)
    emotion = rng.uniform(size=(2, 3)).astype(np.float32)
    noise = rng.standard_normal((2, 4, 12, net.cfg.output_dim)).astype(np.float32)
    for skip in (0, 1):
        stream, latents = ds.streaming_sampler(net, diff, skip_steps=skip, delta_output=False)(
            params, window, identity, emotion, np.zeros((3, 2, 2, F.HID), np.float32), noise)
        offline = ds.offline_sampler(net, diff, skip_steps=skip)(params, window, identity, emotion, noise)
        np.testing.assert_allclose(np.asarray(stream), np.asarray(offline), atol=1e-5)
        assert np.abs(np.asarray(latents)).max() > 0


def test_two_networks_sampled_alternately_keep_their_own_results(tiny):
    """No cache shared between networks: two nets of the same shapes (different constants, different params) sampled
    in turn by their own samplers and engines each give what they give alone."""
    net_a, params_a, diff = tiny
    net_b = dr.DiffusionRNN(net_a.cfg, dataclasses.replace(net_a.constants, mean_geometry=net_a.constants.mean_geometry + 1.0))
    params_b = jax.tree_util.tree_map(lambda p: np.asarray(p) * 0.9, params_a)
    audio, ident = AUDIO[None], np.eye(2, dtype=np.float32)[:1]
    emo = np.array([[0, 1, 0]], np.float32)
    noise = np.random.default_rng(3).standard_normal((1, 3, 75, net_a.cfg.output_dim), dtype=np.float32)  # as engine.noise
    alone = {n: np.asarray(ds.sample_offline(net, p, diff, audio, ident, emo, noise))
             for n, net, p in (("a", net_a, params_a), ("b", net_b, params_b))}
    assert float(np.abs(alone["a"] - alone["b"]).max()) > 0.1
    samplers = {"a": (ds.offline_sampler(net_a, diff), params_a), "b": (ds.offline_sampler(net_b, diff), params_b)}
    for name in ("a", "b", "a", "b"):
        fn, p = samplers[name]
        np.testing.assert_allclose(np.asarray(fn(p, audio, ident, emo, noise)), alone[name], atol=1e-5)
    # the same network with two parameter sets, and two engines, alternately
    fn_a = samplers["a"][0]
    for p, name in ((params_a, "a"), (params_b, None), (params_a, "a")):
        out = np.asarray(fn_a(p, audio, ident, emo, noise))
        if name:
            np.testing.assert_allclose(out, alone[name], atol=1e-5)
        else:
            assert float(np.abs(out - alone["a"]).max()) > 1e-3
    cfg = {"TIMESTEP_RESPACING": "2", "INFERENCE_MODE": "offline"}
    md_b = dict(F.model_def(net_b), mean_geometry=net_b.constants.mean_geometry.tolist())
    engines = {"a": D.engine_from_network(net_a, params_a, F.model_def(net_a), cfg),
               "b": D.engine_from_network(net_b, params_b, md_b, cfg)}
    first = {n: e.offline_rows(AUDIO, "happy", 75, seed=3, condition="claire") for n, e in engines.items()}
    for n in ("a", "b", "a"):
        np.testing.assert_array_equal(engines[n].offline_rows(AUDIO, "happy", 75, seed=3, condition="claire"), first[n])
    np.testing.assert_allclose(first["a"], alone["a"][0], atol=1e-5)
    np.testing.assert_allclose(first["b"], alone["b"][0], atol=1e-5)


def test_export_fn_symbolic_batch_and_ddim_noise_layouts(tiny):
    """The export's timestep vector (from the inputs' batch) changes no value; DDIM reads x_K from either noise layout;
    bad shapes and SKIP_STEPS are project errors."""
    net, params, diff = tiny
    args = _window_inputs(net, b=2, seed=7)
    ref = jax.jit(lambda p, *a: ds.sample_streaming_window(net, p, diff, *a))(params, *args)
    got = jax.jit(lambda p, *a: ds.sample_streaming_window(net, p, diff, *a, symbolic_batch=True))(params, *args)
    for r, g in zip(ref, got):
        np.testing.assert_array_equal(np.asarray(r), np.asarray(g))
    audio, ident, emo = AUDIO[None], np.eye(2, dtype=np.float32)[1:], np.array([[1, 0, 0]], np.float32)
    noise = np.random.default_rng(0).standard_normal((1, 3, 75, net.cfg.output_dim)).astype(np.float32)
    ddim = ds.offline_sampler(net, diff, use_ddim=True)
    np.testing.assert_array_equal(np.asarray(ddim(params, audio, ident, emo, noise)),
                                  np.asarray(ddim(params, audio, ident, emo, noise[:, -1])))
    window, identity, emotion, latents, wnoise = args
    with pytest.raises(ValueError, match="input_latents"):
        ds.sample_streaming_window(net, params, diff, window, identity, emotion, latents[:1], wnoise)
    with pytest.raises(ValueError, match="noise"):
        ds.sample_streaming_window(net, params, diff, window, identity, emotion, latents, wnoise[:, :, :30])
    with pytest.raises(ConfigError, match="SKIP_STEPS"):
        ds.export_fn(net, params, diff, skip_steps=2)(*[jnp.asarray(a) for a in args])
