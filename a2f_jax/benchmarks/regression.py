"""Regression network benchmarks at Claire-sized shapes (docs/dataset_format.md).

Batch 32 × SEQ_LEN 2 windows of 8320 samples, base-size wav2vec2 truncated to one frozen layer, 272 skin /
10 tongue PCA components, a 24,002-vertex skin basis for the lip-distance loss, the whole jitted train
step (gather from the device dataset, forward, all losses, backward, Adam). Plus inference latency.
`compute_dtype` "bfloat16" runs the network in mixed precision (`models.precision`; params stay float32).
"""

from __future__ import annotations

import time
import types

import jax
import jax.numpy as jnp
import numpy as np

from a2f_jax.benchmarks import compiled_flops, peak_rss_mb, timeit

# lazy imports: `bench.py --only X` discovers every area module and must not import every area's stack


def _setup(quick: bool, compute_dtype: str = "float32"):
    from a2f_jax.models.audio_encoder import TORCHAUDIO_WAV2VEC2_BASE
    from a2f_jax.networks import regression as N
    from a2f_jax.train import losses

    ks, kt, verts, n_emo = (16, 4, 500, 4) if quick else (272, 10, 24002, 10)
    enc = TORCHAUDIO_WAV2VEC2_BASE.extract_features_mode()
    if quick:
        enc = enc.replace(hidden_size=32, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
                          num_conv_pos_embedding_groups=4, num_hidden_layers=1)
    hp = {"use_w2v_features": True, "use_autocorr_features": True, "w2v_freeze": True, "w2v_num_layers": 1,
          "autocorr_params": {"num_autocorr": 32, "num_windows": 25, "win_len": 640, "win_stride": 320,
                              "preemph": 0.0, "remove_dc": True, "win_func": "hanning"},
          "implicit_emotion_len": 16, "explicit_emo_emb_len": 8}
    params = {**hp, "explicit_emotions": [f"e{i}" for i in range(n_emo)], "num_shapes_skin": ks,
              "num_shapes_tongue": kt, "result_jaw_size": 15, "result_eyes_size": 4}
    model = N.build_network(params, enc, compute_dtype=compute_dtype)
    rng = np.random.default_rng(0)
    shapes = (rng.standard_normal((ks, verts, 3)) / np.sqrt(verts)).astype(np.float32)
    mean = rng.standard_normal((verts, 3)).astype(np.float32)
    lips = {"upper": [1, 2, 3, 4, 5], "lower": [6, 7, 8, 9, 10]}
    eyes = {"upper": [11, 12], "lower": [13, 14]}
    # Open eyes in the mean pose: random vertices would close them, and the closed-eye mask then zeroes every
    # sample (zero terms, a 0/0 normaliser, NaN losses from the third step).
    mean[eyes["upper"], 1] = mean[eyes["lower"], 1] + 2.0
    geometry = losses.prepare_loss_geometry(shapes, mean, lip_dist_verts=lips, eye_dist_verts=eyes)
    train_cfg = types.SimpleNamespace(LEARNING_RATE=2e-4, get=lambda k, d=None: {"LR_STEP_GAMMA": 0.994}.get(k, d))
    setup = types.SimpleNamespace(
        configs=types.SimpleNamespace(train=train_cfg), network=model, loss_cfg=losses.RegressionLossConfig(),
        geometry=geometry, lip_dist_weights=None, phonemes=None,
        data=types.SimpleNamespace(channel_sizes={"skin_coeffs": ks, "tongue_coeffs": kt, "jaw": 15, "eye": 4},
                                   num_frames_total=22359 if not quick else 500),
    )
    return setup, ks + kt + 19, n_emo


def train_step(quick: bool, compute_dtype: str = "float32") -> dict:
    from a2f_jax.models import emotion_db
    from a2f_jax.networks import regression as N
    from a2f_jax.train import optim
    from a2f_jax.train.sampler_regression import DeviceDataset

    setup, d, n_emo = _setup(quick, compute_dtype)
    b, s, w = (4, 2, 8320) if quick else (32, 2, 8320)
    frames = setup.data.num_frames_total
    key = jax.random.PRNGKey(0)
    net_params = setup.network.init_params(key)
    params = {"net": net_params, "emo_db": emotion_db.init_emotion_db(key, frames)}
    opt = optim.regression_optimizer(2e-4, 1.0, 0.994, 697, N.param_labels(params, True))
    from a2f_jax.train import losses

    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": opt.init(params), "norm": losses.init_normalizer_state()}
    rng = np.random.default_rng(1)
    audio = rng.standard_normal(16000 * 60).astype(np.float32) * 0.1
    dev = DeviceDataset(jnp.asarray(audio), jnp.asarray(rng.standard_normal((frames, d)).astype(np.float32)),
                        jnp.zeros((8, w), jnp.float32))

    def index(k: int) -> dict:
        r = np.random.default_rng(k)
        start = r.integers(0, frames - 2, size=b)
        return {"track_start": np.zeros(b, np.int32), "track_len": np.full(b, len(audio), np.int32),
                "sample_start": (r.integers(0, len(audio) - w, size=(b, 1)) + np.arange(s) * 533).astype(np.int32),
                "muted": np.zeros(b, bool), "noise_idx": np.zeros((b, s), np.int32), "noise_scale": np.zeros(b, np.float32),
                "tgt_i0": (start[:, None] + np.arange(s)).astype(np.int32), "tgt_i1": (start[:, None] + np.arange(s) + 1).astype(np.int32),
                "tgt_w": r.uniform(size=(b, s)).astype(np.float32), "global_frame_idx": (start[:, None] + np.arange(s)).astype(np.int32),
                "explicit_emo": np.zeros((b, s, n_emo), np.float32), "x_norm_factor": np.ones(b, np.float32),
                "shot_index": np.zeros(b, np.int32)}

    step = jax.jit(N.make_train_step(setup, opt, 697, num_epochs=50, seed=42), donate_argnums=(0,))
    t0 = time.perf_counter()
    compiled = step.lower(state, {"dataset": dev, "index": index(0)}).compile()
    compile_s = time.perf_counter() - t0
    holder = {"state": state, "k": 0, "loss": None}

    def run():
        holder["k"] += 1
        holder["state"], m = compiled(holder["state"], {"dataset": dev, "index": index(holder["k"])})
        holder["loss"] = jax.block_until_ready(m["loss"])

    t = timeit(run, repeats=2 if quick else 5, warmup=1)
    cpu0 = time.process_time()
    run()
    cpu = time.process_time() - cpu0
    return {"shape": {"batch": b, "seq": s, "skin_components": setup.data.channel_sizes["skin_coeffs"]},
            "step_s": round(t["best_s"], 4), "step_mean_s": round(t["mean_s"], 4), "step_cpu_s": round(cpu, 4),
            "compile_s": round(compile_s, 2), "target_step_s": 1.70, "original_step_s": 2.55, "peak_rss_mb": round(peak_rss_mb(), 1),
            "loss_finite": bool(np.isfinite(float(holder["loss"]))), "compute_dtype": compute_dtype}


def _matmul_gflops(n: int) -> float:
    """This machine's float32 matmul rate (GFLOP/s) on [n, n] @ [n, n], the practical compute ceiling."""
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    t = timeit(lambda: jax.block_until_ready(f(a, a)), repeats=5, warmup=1)
    return 2.0 * n**3 / t["best_s"] / 1e9


def inference(quick: bool, compute_dtype: str = "float32") -> dict:
    """Per-frame latency (batch 1) and batched offline speed (64 frames per call), with the FLOP count.

    Each frame is a separate 8320-sample window through the frozen wav2vec2 front end, whose per-window
    GroupNorm makes the windows' conv work impossible to share exactly; so offline speed is bounded by
    FLOPs per frame over the machine's matmul rate, reported as `offline_realtime_factor_ceiling`.
    """
    setup, d, n_emo = _setup(quick, compute_dtype)
    params = setup.network.init_params(jax.random.PRNGKey(0))
    fn = jax.jit(lambda a, e: setup.network.apply_eval(params, a, e, None))
    out = {}
    for batch in (1, 64):
        a = jnp.zeros((batch, 1, 8320), jnp.float32)
        e = jnp.zeros((batch, 1, 16 + n_emo), jnp.float32)
        t = timeit(lambda: jax.block_until_ready(fn(a, e)), repeats=3 if quick else 10, warmup=1)
        out[f"batch{batch}_s"] = round(t["best_s"], 5)
    flops = compiled_flops(fn.lower(a, e).compile())  # the batch-64 program
    out["frame_latency_ms"] = round(1000 * out["batch1_s"], 2)
    out["offline_realtime_factor_30fps"] = round((64 / 30.0) / out["batch64_s"], 2)  # seconds of audio per second
    out["target_frame_latency_ms"] = 20.0
    if flops > 0:
        per_frame = flops / 64
        peak = _matmul_gflops(256 if quick else 2048)
        out["gflop_per_frame"] = round(per_frame / 1e9, 3)
        out["achieved_gflops_batch64"] = round(flops / out["batch64_s"] / 1e9, 1)
        out["matmul_peak_gflops"] = round(peak, 1)
        out["offline_realtime_factor_ceiling"] = round(peak * 1e9 / per_frame / 30.0, 2)
    out["compute_dtype"] = compute_dtype
    return out


BENCHMARKS = {"train_step": train_step, "inference": inference}
