"""Diffusion inference speed: streaming latency per 1 s window (0.5 s hop) through `infer.diffusion`.

Base size (random weights): HuBERT base (12 layers), skin 24,002 / tongue 5,602 vertices, 10 emotions,
1 actor, 2 respaced diffusion steps, STREAMING_CFG (15, 30, 15). `jax_window`: one `Stream.push` of 8000
samples (exactly one window: HuBERT, 2 denoising steps, latents carried, decode to vertices), target
≤ 0.25 s on CPU. `ort_window`: the same window through the exported `network.onnx` with onnxruntime
(1 and all intra-op threads); RTF = seconds of compute per second of audio (2 windows per second).
`quick`: a tiny network. `jax_window(..., compute_dtype="bfloat16")` runs the JAX network in bf16.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from a2f_jax.benchmarks import random_diffusion_net
from a2f_jax.deploy import contract as C
from a2f_jax.deploy.onnx_diffusion import export_diffusion
from a2f_jax.deploy.onnx_utils import ort_session
from a2f_jax.infer.diffusion import engine_from_network
from a2f_jax.models import gaussian_diffusion as gd

EMOTIONS = 10


def _net(quick: bool, compute_dtype: str = "float32"):
    net, params = random_diffusion_net(quick, EMOTIONS, compute_dtype)
    model_def = {"actors": ["bench"], "explicit_emotions": [f"e{i}" for i in range(EMOTIONS)],
                 "mean_geometry": net.constants.mean_geometry, "scales": {k: [1.0] for k in ("skin", "tongue", "jaw", "eye")},
                 "translates": {"skin": [[0.0, 0.0, 0.0]], "tongue": [[0.0, 0.0, 0.0]]}}
    return net, params, model_def


def _window_times(engine, audio: np.ndarray, repeats: int) -> dict:
    """Time one window per push: the stream is primed so that every further 8000-sample push runs one window."""
    stream = engine.stream(emotion="e1", seed=0)
    stream.push_rows(audio[:16000])  # windows 0 and 1; the first call compiles
    times, cpu = [], []
    pos = 16000
    for _ in range(repeats):
        chunk = audio[pos:pos + 8000]
        pos += 8000
        t0, c0 = time.perf_counter(), time.process_time()
        rows = stream.push_rows(chunk)
        geom = engine.decode(rows)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        assert len(rows) == 30 and np.isfinite(geom.skin).all()
    # CPU seconds (all threads) per window: the load-independent cost; wall ≈ cpu / free cores on an idle machine
    return {"window_best_s": round(min(times), 4), "window_mean_s": round(float(np.mean(times)), 4),
            "window_cpu_s": round(float(np.median(cpu)), 4), "rtf": round(2 * min(times), 4)}


def jax_window(quick: bool, compute_dtype: str = "float32") -> dict:
    """One streaming window through the JAX engine (`compute_dtype`: the network's; params are float32)."""
    t0 = time.perf_counter()
    net, params, model_def = _net(quick, compute_dtype)
    init_s = time.perf_counter() - t0
    engine = engine_from_network(net, params, model_def, {"TIMESTEP_RESPACING": "2", "INFERENCE_MODE": "streaming"})
    repeats = 3 if quick else 6
    audio = (0.1 * np.random.default_rng(1).standard_normal(16000 + 8000 * (repeats + 1))).astype(np.float32)
    t0 = time.perf_counter()
    engine.stream(seed=0).push_rows(audio[:8000])  # compile (window 0)
    compile_s = time.perf_counter() - t0
    out = _window_times(engine, audio, repeats)
    return {"init_s": round(init_s, 1), "compile_s": round(compile_s, 1), **out, "target_s": 0.25,
            "cores": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2), "compute_dtype": compute_dtype}


def _ort_window(quick: bool) -> dict:
    net, params, model_def = _net(quick)
    c = net.cfg
    info = C.diffusion_network_info(["bench"], model_def["explicit_emotions"], [0.0] * EMOTIONS, c.skin_dim // 3, c.tongue_dim // 3,
                                    gru_latent_dim=c.gru_feature_dim)
    t0 = time.perf_counter()
    model = export_diffusion(net, params, gd.create_diffusion(c.diffusion_steps, "cosine", "2"), info)
    export_s = time.perf_counter() - t0
    data = model.SerializeToString()
    del model
    jax_engine = engine_from_network(net, params, model_def, {"TIMESTEP_RESPACING": "2", "INFERENCE_MODE": "streaming"})
    result = {"export_s": round(export_s, 1), "onnx_mb": round(len(data) / 2**20, 1)}
    repeats = 3 if quick else 5
    audio = (0.1 * np.random.default_rng(1).standard_normal(16000 + 8000 * (repeats + 1))).astype(np.float32)
    for threads in sorted({1, os.cpu_count() or 1}):
        sess = ort_session(data, threads)

        def window_fn(w, i, e, lat, nz, sess=sess):
            return tuple(sess.run(["prediction", "output_latents"], {"window": w, "identity": i, "emotion": np.ascontiguousarray(e),
                                                                      "input_latents": lat, "noise": nz}))

        # the JAX engine's conventions with the ORT window: rows are deltas, decoded as such
        eng = dataclasses.replace(jax_engine, backend="onnx", window_fn=window_fn, rows_are_delta=True, delta=True, offline_fn=None)
        result[f"threads_{threads}"] = _window_times(eng, audio, repeats)
    result["loadavg_1m"] = round(os.getloadavg()[0], 2)
    return result


BENCHMARKS = {"jax_window": jax_window, "ort_window": _ort_window}
