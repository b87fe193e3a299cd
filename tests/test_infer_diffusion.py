"""a2f_jax.infer.diffusion: offline and streaming inference from a run (JAX) and a bundle (onnxruntime), tiny net."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import diffusion_infer_fixtures as F
from a2f_jax.errors import ConfigError, DataError
from a2f_jax.infer import diffusion as D
from a2f_jax.models import diffusion_sampling as ds
from a2f_jax.models import gaussian_diffusion as gd

CFG = {"TIMESTEP_RESPACING": "2", "CONDITION": "mark", "ACTOR_NAME": "mark", "INFERENCE_MODE": "offline"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    net, params = F.tiny_net()
    root = tmp_path_factory.mktemp("dinf")
    run = F.write_run(root / "run", net, params)
    bundle = F.write_bundle(root / "bundle", net, params)
    audio = (0.3 * np.sin(np.arange(20000) / 16000 * 2 * np.pi * 3.0)
             * np.random.default_rng(1).standard_normal(20000)).astype(np.float32)  # 1.25 s
    return net, params, run, bundle, audio


@pytest.fixture(scope="module")
def engine(setup):
    return D.from_run(setup[2], CFG)


def test_offline_shapes_and_units(setup, engine):
    net, params, _, _, audio = setup
    g = engine.predict(audio, fps=60, emotion="happy", seed=3)
    t = int(len(audio) / 16000 * 60)
    assert g.skin.shape == (t, F.VS, 3) and g.tongue.shape == (t, F.VT, 3) and g.jaw.shape == (t, 5, 3) and g.eye.shape == (t, 4)
    # reference: the network's own offline sampler with the same noise, un-rescaled with mark's scale/translate
    diff = gd.create_diffusion(20, "cosine", "2")
    noise = np.random.default_rng(3).standard_normal((1, 3, t, net.cfg.output_dim), dtype=np.float32)
    x = np.asarray(ds.sample_offline(net, params, diff, audio[None], np.eye(2, dtype=np.float32)[1:2],
                                     np.array([[0, 1, 0]], np.float32), noise))[0]
    s, tg = 3 * F.VS, 3 * F.VT
    np.testing.assert_allclose(g.raw, x, atol=1e-5)
    np.testing.assert_allclose(g.skin, x[:, :s].reshape(t, -1, 3) * 3.0 + [0.0, -1.0, 0.5], atol=1e-4)
    np.testing.assert_allclose(g.tongue, x[:, s:s + tg].reshape(t, -1, 3) * 0.25 + [0.0, 0.0, -2.0], atol=1e-4)
    np.testing.assert_allclose(g.jaw.reshape(t, -1), x[:, s + tg:s + tg + 15] * 1.0, atol=1e-5)
    np.testing.assert_allclose(g.eye, x[:, s + tg + 15:] * 2.0, atol=1e-5)
    d = engine.predict(audio, emotion="happy", seed=3, delta=True)  # (x̂0 − mean)·scale
    mean = net.constants.mean_geometry[1]
    np.testing.assert_allclose(d.skin, ((x[:, :s] - mean[:s]) * 3.0).reshape(t, -1, 3), atol=1e-4)
    assert float(np.abs(g.skin - d.skin).max()) > 0.1


def test_seed_noise_file_and_ddim(setup, engine, tmp_path):
    audio = setup[4]
    t = int(len(audio) / 16000 * 60)
    a = engine.predict(audio, seed=1).raw
    assert np.array_equal(a, engine.predict(audio, seed=1).raw)
    assert float(np.abs(a - engine.predict(audio, seed=2).raw).max()) > 1e-3
    noise = np.random.default_rng(9).standard_normal((1, 3, t + 10, engine.output_dim), dtype=np.float32)
    np.save(tmp_path / "noise.npy", noise)
    e2 = D.from_run(setup[2], {**CFG, "DETERMINISTIC_NOISE_PATH": str(tmp_path / "noise.npy")})
    b = e2.predict(audio).raw
    np.testing.assert_allclose(b, engine.offline_rows(audio, None, t, noise=noise[:, :, :t]), atol=1e-6)
    assert float(np.abs(b - engine.predict(audio).raw).max()) > 1e-3
    np.save(tmp_path / "bad.npy", noise[:, :2])
    with pytest.raises(DataError, match="DETERMINISTIC_NOISE_PATH"):
        D.from_run(setup[2], {**CFG, "DETERMINISTIC_NOISE_PATH": str(tmp_path / "bad.npy")}).predict(audio)
    # DDIM (η = 0) starts from noise[:, −1] and returns x̂0 of t = 0 as DDPM does; only DDPM adds σ·noise[:, 1]
    # (σ = 0.0064) to the input of that last step, so the two are close but not equal
    ddim = D.from_run(setup[2], {**CFG, "USE_DDIM": True}).predict(audio, seed=1).raw
    assert 1e-5 < float(np.abs(ddim - a).max()) < 0.05
    skip = D.from_run(setup[2], {**CFG, "SKIP_STEPS": 1}).predict(audio, seed=1).raw
    assert skip.shape == a.shape and float(np.abs(skip - a).max()) > 1e-4
    with pytest.raises(ConfigError, match="SKIP_STEPS"):
        D.from_run(setup[2], {**CFG, "SKIP_STEPS": 2})


def test_emotion_per_clip_and_per_frame(setup, engine):
    audio = setup[4]
    t = int(len(audio) / 16000 * 60)
    clip = engine.predict(audio, emotion={"happy": 0.5, "sad": 0.5}, seed=0).raw
    frames = np.tile(np.array([0, 0.5, 0.5], np.float32), (t, 1))
    np.testing.assert_allclose(engine.predict(audio, emotion=frames, seed=0).raw, clip, atol=1e-6)
    frames[40:] = [1.0, 0.0, 0.0]  # the GRU is causal: frames before the change are untouched
    changed = engine.predict(audio, emotion=frames, seed=0).raw
    np.testing.assert_allclose(changed[:40], clip[:40], atol=1e-6)
    assert float(np.abs(changed[40:] - clip[40:]).max()) > 1e-3
    for mode in ("streaming",):
        s_clip = engine.predict(audio, emotion={"happy": 0.5, "sad": 0.5}, seed=0, mode=mode).raw
        s_changed = engine.predict(audio, emotion=frames, seed=0, mode=mode).raw
        np.testing.assert_allclose(s_changed[:40], s_clip[:40], atol=1e-6)
        assert float(np.abs(s_changed[40:] - s_clip[40:]).max()) > 1e-3
    assert np.array_equal(engine.predict(audio, emotion="neutral", seed=0).raw, engine.predict(audio, emotion=[0, 0, 0], seed=0).raw)
    with pytest.raises(ConfigError, match="emotion"):
        engine.predict(audio, emotion="bored")
    with pytest.raises(ConfigError, match="fps"):
        engine.predict(audio, fps=30)


def _streaming_vs_padded_offline(engine, audio, seed=4):
    """Streaming rows, and offline rows over the same frames: the clip with 0.75 s of zeros in front (the first
    window's centre starts 45 frames before the clip) and the streaming noise block tiled over time."""
    g = engine.stream_geom
    noise = engine.noise(g.frames, seed)
    t = engine.num_frames(len(audio))
    stream = engine.stream(seed=seed)
    rows = np.concatenate([stream.push_rows(audio), stream.flush_rows()])
    lead = g.dropped * g.samplerate // int(g.fps)  # 12000 samples
    total = t + g.dropped
    slots = g.left + (np.arange(total) % g.center)
    tiled = noise[:, :, slots]
    padded = np.concatenate([np.zeros(lead, np.float32), audio])
    off = engine.offline_rows(padded, None, total, noise=tiled)[g.dropped:]
    return rows, off


def test_streaming_equals_offline_when_the_audio_tokens_agree(setup):
    """By design the centre blocks tile the clip and the GRU state is carried, so streaming is the offline sampler
    over the same frames: exact once HuBERT's view (1 s windows vs the whole clip) is taken out of the picture."""
    net, params, run, _, audio = setup
    flat = jax.tree_util.tree_map(np.asarray, params)
    flat["proj_hubert"]["kernel"] = np.zeros_like(flat["proj_hubert"]["kernel"])
    eng = D.engine_from_network(net, flat, F.model_def(net), CFG)
    rows, off = _streaming_vs_padded_offline(eng, audio)
    assert rows.shape == off.shape == (75, net.cfg.output_dim)
    np.testing.assert_allclose(rows, off, atol=2e-5)


def test_streaming_vs_offline_bound(setup, engine):
    """With the audio path on, the difference is HuBERT seeing 1 s windows instead of the whole clip.
    Measured on this fixed seed (tiny random net, audio projection ×4): max |Δ| 0.57 against max |output| 2.38;
    bound 1.0, and it must be non-zero (the windows really differ). With equal audio tokens it is 0 (test above)."""
    rows, off = _streaming_vs_padded_offline(engine, setup[4])
    diff = float(np.abs(rows - off).max())
    scale = float(np.abs(off).max())
    print(f"streaming vs offline: max |diff| {diff:.4f}, max |offline| {scale:.4f}")
    assert 1e-4 < diff < 1.0


def test_chunked_push_equals_whole_clip(setup, engine):
    audio = setup[4]
    whole = engine.stream(seed=2, emotion="sad")
    ref = np.concatenate([whole.push_rows(audio), whole.flush_rows()])
    assert len(ref) == engine.num_frames(len(audio))
    np.testing.assert_array_equal(ref, engine.predict(audio, emotion="sad", seed=2, mode="streaming").raw)
    stream = engine.stream(seed=2, emotion="sad")
    got, sizes, pos = [], [1234, 7000, 1, 333, 9000, 2432], 0
    for n in sizes:
        for geom in stream.push(audio[pos:pos + n]):
            got.append(geom.raw)
            assert len(geom.raw) > 0
        pos += n
    assert pos == len(audio)
    early = sum(len(r) for r in got)
    assert early == 2 * 30 - 45 + 30  # windows 0..2 are complete after 20000 samples; 45 frames precede the clip
    last = stream.flush()
    got.append(last.raw)
    np.testing.assert_array_equal(np.concatenate(got), ref)
    assert last.skin.shape[1:] == (F.VS, 3)
    with pytest.raises(DataError, match="flush"):
        list(stream.push(audio[:10]))


def test_jax_streaming_equals_onnx_bundle(setup, engine):
    audio = setup[4]
    ort = D.from_bundle(setup[3], {"CONDITION": "mark", "ACTOR_NAME": "mark"})
    assert ort.backend == "onnx" and ort.fps == 60.0 and ort.mode == "streaming"
    a = engine.predict(audio, seed=5, emotion="angry", mode="streaming", delta=True)
    b = ort.predict(audio, seed=5, emotion="angry", delta=True)
    for ch in ("skin", "tongue", "jaw", "eye"):
        np.testing.assert_allclose(getattr(b, ch), getattr(a, ch), atol=1e-4, err_msg=ch)
    assert float(np.abs(a.skin).max()) > 1e-2
    absolute = ort.predict(audio, seed=5, emotion="angry")  # SDK convention: neutral pose + delta
    with np.load(setup[3] / "model_data_mark.npz") as z:
        np.testing.assert_allclose(absolute.skin, b.skin + z["neutral_skin"], atol=1e-6)
    with pytest.raises(ConfigError, match="streaming"):
        ort.predict(audio, mode="offline")


def test_bad_sources(tmp_path, setup):
    with pytest.raises(DataError, match="model_def.json"):
        D.from_run(tmp_path)
    with pytest.raises(DataError, match="network_info.json"):
        D.from_bundle(tmp_path)
    with pytest.raises(ConfigError, match="CONDITION"):
        D.from_run(setup[2], {**CFG, "CONDITION": "nobody"}).predict(setup[4])


@pytest.mark.parametrize("skip", [0, 1])
def test_centre_only_window_equals_the_full_streaming_window(setup, skip):
    """The engine's window (centre_only) skips the embedding of the left/right frames; the centre block and latents must
    not move."""
    net, params, *_ = setup
    diff = gd.create_diffusion(20, "cosine", "2")
    rng = np.random.default_rng(skip)
    args = (0.2 * rng.standard_normal((1, 16000)), np.eye(2)[1:2], rng.standard_normal((1, 30, 3)),
            rng.standard_normal((2, 2, 1, F.HID)), rng.standard_normal((1, 3, 60, net.cfg.output_dim)))
    args = [np.asarray(a, np.float32) for a in args]
    ref, ref_lat = jax.jit(lambda *a: ds.sample_streaming_window(net, params, diff, *a, skip_steps=skip, delta_output=False))(*args)
    got, lat = jax.jit(lambda *a: ds.sample_streaming_window(net, params, diff, *a, skip_steps=skip, delta_output=False,
                                                              centre_only=True))(*args)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref)[:, 15:45], atol=1e-5)
    np.testing.assert_allclose(np.asarray(lat), np.asarray(ref_lat), atol=1e-5)
    assert float(np.abs(np.asarray(lat) - args[3]).max()) > 1e-3


def test_bad_inputs_are_project_errors(tmp_path, setup, engine):
    """Weights outside [0, 1], a clip shorter than one frame, a bundle missing a model_data key or with a truncated
    network.onnx: each a ConfigError/DataError naming the emotion or the file, never another library's exception."""
    import shutil

    with pytest.raises(ConfigError, match=r"emotion \[sad\]: expected a weight in \[0, 1\], found 1.5"):
        engine.emotion_vector({"happy": 0.5, "sad": 1.5})
    with pytest.raises(ConfigError, match=r"emotion \[angry\]: expected a weight in \[0, 1\], found -0.5"):
        engine.emotion_vector([-0.5, 0.0, 0.0])
    with pytest.raises(ConfigError, match=r"emotion \[happy \(frame 2\)\]"):
        engine.emotion_vector(np.array([[0, 0, 0], [0, 1, 0], [0, 2, 0]], np.float32))
    with pytest.raises(DataError, match=r"audio: expected at least one frame \(267 samples at 60 fps\), found 200 samples"):
        engine.predict(np.zeros(200, np.float32))
    broken = tmp_path / "bundle"
    shutil.copytree(setup[3], broken)
    np.savez(broken / "model_data_mark.npz", neutral_skin=np.zeros((F.VS, 3), np.float32))
    with pytest.raises(DataError, match=r"model_data_mark\.npz \[neutral_tongue\]: expected an array 'neutral_tongue'"):
        D.from_bundle(broken)
    onnx = broken / "network.onnx"
    onnx.write_bytes(onnx.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"network\.onnx: expected an ONNX model onnxruntime can load"):
        D.from_bundle(broken)
