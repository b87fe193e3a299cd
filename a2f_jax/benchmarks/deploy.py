"""Deployed-network speed: onnxruntime CPU real-time factor per stream, fed the way the SDK feeds it.

Base size (random weights): regression = wav2vec2-base feature encoder + 1 transformer layer + autocorrelation,
K_s 140, K_t 10, 10 emotions, one 8320-sample window per frame; diffusion = HuBERT base (12 layers), skin
24,002 / tongue 5,602 vertices (Claire's released model), 2 respaced steps, one 16000-sample window per
0.5 s hop. RTF = compute seconds per second of audio for one track, batch 1, one onnxruntime thread
(< 1 is faster than real time), from wall time and from process CPU time (the latter is what a busy, shared
machine does not inflate). Also reports export time and the ONNX size. `quick`: tiny networks.
"""

from __future__ import annotations

import time

import numpy as np

from a2f_jax.benchmarks import timeit

# lazy imports: `bench.py --only X` discovers every area module and must not import every area's stack


def _cpu_seconds(fn, repeats: int) -> float:
    """Best process CPU time of fn() (one ORT thread): a per-stream cost that a busy machine does not inflate."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def _session(model):  # one intra-op thread: a per-stream figure, independent of the core count
    from a2f_jax.deploy.onnx_utils import ort_session

    return ort_session(model, threads=1)


def _regression(quick: bool) -> dict:
    import jax

    from a2f_jax.deploy import contract as C
    from a2f_jax.deploy.onnx_regression import export_regression
    from a2f_jax.models.audio_encoder import TORCHAUDIO_WAV2VEC2_BASE, EncoderConfig
    from a2f_jax.models.regression import ConvW2VAutocorr, RegressionNetConfig, init_params

    if quick:
        enc = EncoderConfig(model_type="wav2vec2", hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                            conv_dim=(8,) * 7, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4)
        ks, kt, emotions = 8, 4, 3
    else:
        enc, ks, kt, emotions = TORCHAUDIO_WAV2VEC2_BASE, 140, 10, 10
    enc = enc.extract_features_mode()
    names = [f"e{i}" for i in range(emotions)]
    params = {"use_w2v_features": True, "use_autocorr_features": True, "w2v_freeze": True, "w2v_num_layers": 1,
              "implicit_emotion_len": 16, "explicit_emo_emb_len": 8, "explicit_emotions": names,
              "num_shapes_skin": ks, "num_shapes_tongue": kt, "result_jaw_size": 15, "result_eyes_size": 4}
    net = ConvW2VAutocorr(RegressionNetConfig.from_network_params(params, encoder=enc))
    weights = jax.jit(lambda key: init_params(net, key, seq=1))(jax.random.PRNGKey(0))
    info = C.regression_network_info("bench", names, [0.0] * emotions, ks, 100, kt, 10)
    t0 = time.perf_counter()
    model = export_regression(net, weights, info)
    export_s = time.perf_counter() - t0
    sess = _session(model)
    rng = np.random.default_rng(0)
    feeds = {"input": 0.1 * rng.standard_normal((1, 1, 8320)).astype(np.float32),
             "emotion": rng.standard_normal((1, 1, 16 + emotions)).astype(np.float32)}
    call = timeit(lambda: sess.run(None, feeds), repeats=3 if quick else 20)
    cpu = _cpu_seconds(lambda: sess.run(None, feeds), 3 if quick else 20)
    feeds8 = {k: np.repeat(v, 8, 0) for k, v in feeds.items()}
    call8 = timeit(lambda: sess.run(None, feeds8), repeats=2 if quick else 5)
    return {
        "export_s": round(export_s, 2), "onnx_mb": round(model.ByteSize() / 2**20, 1),
        "call_b1_ms": round(1e3 * call["best_s"], 2), "call_b8_ms": round(1e3 * call8["best_s"], 2),
        "rtf_30fps": round(call["best_s"] * 30, 4), "rtf_60fps": round(call["best_s"] * 60, 4),
        "call_b1_cpu_ms": round(1e3 * cpu, 2), "rtf_cpu_30fps": round(cpu * 30, 4), "rtf_cpu_60fps": round(cpu * 60, 4),
    }


def _diffusion(quick: bool) -> dict:
    from a2f_jax.benchmarks import random_diffusion_net
    from a2f_jax.deploy import contract as C
    from a2f_jax.deploy.onnx_diffusion import export_diffusion
    from a2f_jax.models import gaussian_diffusion as gd

    emotions = 10
    net, params = random_diffusion_net(quick, emotions)
    cfg = net.cfg
    vs, vt, hid = cfg.skin_dim // 3, cfg.tongue_dim // 3, cfg.gru_feature_dim
    rng = np.random.default_rng(0)
    diffusion = gd.create_diffusion(1000, "cosine", "2")
    info = C.diffusion_network_info(["bench"], [f"e{i}" for i in range(emotions)], [0.0] * emotions, vs, vt, gru_latent_dim=hid)
    t0 = time.perf_counter()
    model = export_diffusion(net, params, diffusion, info)
    export_s = time.perf_counter() - t0
    sess = _session(model)
    feeds = {"window": 0.1 * rng.standard_normal((1, 16000)), "identity": np.ones((1, 1)),
             "emotion": np.zeros((1, 30, emotions)), "input_latents": np.zeros((2, 2, 1, hid)),
             "noise": rng.standard_normal((1, 3, 60, cfg.output_dim))}
    feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
    call = timeit(lambda: sess.run(None, feeds), repeats=3 if quick else 5)
    cpu = _cpu_seconds(lambda: sess.run(None, feeds), 3 if quick else 5)
    return {
        "export_s": round(export_s, 2), "onnx_mb": round(model.ByteSize() / 2**20, 1),
        "call_b1_ms": round(1e3 * call["best_s"], 2),
        "rtf": round(call["best_s"] * 2, 4),  # 16000-sample window every 8000 samples: 2 calls per second of audio
        "call_b1_cpu_ms": round(1e3 * cpu, 2), "rtf_cpu": round(cpu * 2, 4),
    }


BENCHMARKS = {"regression_ort_rtf": _regression, "diffusion_ort_rtf": _diffusion}
