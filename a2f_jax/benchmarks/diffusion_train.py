"""diffusion_rnn training iteration (forward + diffusion losses + backward + Adam), from the trainer's own step.

Claire-sized shapes (docs/dataset_format.md): skin 24,002 vertices / 272 PCA components, tongue 5,602, 11 emotions, 1 actor,
HuBERT base with random weights (front end and blocks 0-1 frozen, as the trainer), 120 and 600 frames at
60 fps, batch 1 (unpadded, as the original) and batch 4 (padded batch with frame masks). Synthetic arrays,
no dataset. `quick` uses a tiny network. Reports wall and process CPU time per iteration, the first call
(trace + compile + one step), frames/s and the 1-minute load average (the shared machine is busy).
`train_iteration(..., compute_dtype="bfloat16")` runs the network in mixed precision (`models.precision`).
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from a2f_jax.benchmarks import compiled_flops

# lazy imports: `bench.py --only X` discovers every area module and must not import every area's stack


def _setup(frames: int, batch: int, quick: bool, compute_dtype: str = "float32") -> tuple[Any, dict, Any]:
    from a2f_jax.config import base
    from a2f_jax.models import diffusion_rnn as dnet
    from a2f_jax.models import gaussian_diffusion as gd
    from a2f_jax.models.audio_encoder import EncoderConfig
    from a2f_jax.models.precision import compute_dtype as resolve_dtype
    from a2f_jax.networks import diffusion as T
    from a2f_jax.train import losses_diffusion as dl

    if quick:
        vs, vt, ks, enc = 200, 20, 20, EncoderConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, mask_time_length=3)
        extra = dict(hubert_feature_dim=32, feature_dim=32, gru_feature_dim=32)
    else:
        vs, vt, ks, enc, extra = 24002, 5602, 272, EncoderConfig(), {}
    tcfg = base.train_diffusion()
    tcfg.BATCH_SIZE = batch
    cfg = dnet.DiffusionNetConfig(skin_dim=3 * vs, tongue_dim=3 * vt, num_actors=1, num_emotions=11, encoder=enc, **extra)
    rng = np.random.default_rng(0)
    net = dnet.DiffusionRNN(cfg, dnet.ActorConstants(rng.standard_normal((1, cfg.output_dim)).astype(np.float32) * 0.1),
                            resolve_dtype(compute_dtype))
    q, _ = np.linalg.qr(rng.standard_normal((3 * vs, ks)).astype(np.float32))
    consts = dl.build_loss_constants(
        skin_dim=cfg.skin_dim, tongue_dim=cfg.tongue_dim, jaw_dim=15, eye_dim=4, scale_skin=[1.0],
        translate_skin=[[0.0, 0.0, 0.0]], shapes_matrix=[q.T.reshape(ks, vs, 3)],
        shapes_mean=[rng.standard_normal((vs, 3)).astype(np.float32)],
        lip_dist_verts={"upper": [0, 1, 2, 3, 4], "lower": [5, 6, 7, 8, 9]}, eye_dist_verts={"lower": [10, 11]})
    diffusion = gd.create_diffusion(int(tcfg.DIFFUSION_STEPS), tcfg.DIFFUSION_NOISE_SCHEDULE, "")
    setup = T.Setup(ConfigDict({"train": tcfg}), None, [], [], T.Network(net, {}), diffusion, consts, [], None)
    samples = int(frames / 60 * 16000)
    batch_arrays = {
        "audio": rng.standard_normal((batch, samples)).astype(np.float32) * 0.1,
        "y": rng.standard_normal((batch, frames, cfg.output_dim)).astype(np.float32) * 0.1,
        "mask": np.ones((batch, frames), np.float32),
        "audio_len": np.full((batch,), samples, np.int32),
        "actor": np.ones((batch, 1), np.float32),
        "emotion": np.eye(11, dtype=np.float32)[np.arange(batch) % 11],
    }
    return setup, batch_arrays, T


def train_iteration(frames: int, batch: int, quick: bool, compute_dtype: str = "float32") -> dict:
    """One training iteration of the trainer's step at `frames` x `batch` (quick: at most 30 frames, tiny net)."""
    if quick:
        frames = min(frames, 30)
    setup, arrays, T = _setup(frames, batch, quick, compute_dtype)
    t0 = time.perf_counter()
    params = T.init(setup, jax.random.PRNGKey(0))
    init_s = time.perf_counter() - t0
    opt = T.make_optimizer(setup, params, 100).tx
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": opt.init(params)}
    # The state is donated each call, as in the trainer.
    step = jax.jit(T.make_train_step(setup, opt, seed=42), donate_argnums=(0,))
    consts = jax.device_put(setup.consts)
    batch_dev = {**jax.device_put(arrays), "constants": consts}  # the loss constants travel with the batch
    holder = {"state": state}
    c0, t0 = time.process_time(), time.perf_counter()
    compiled = step.lower(state, batch_dev).compile()
    flops = compiled_flops(compiled)

    def run() -> None:
        holder["state"], metrics = compiled(holder["state"], batch_dev)
        jax.block_until_ready(metrics["loss"])

    run()
    first_s, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    # With GRADIENT_ACCUMULATION_STEPS = K (4, the original's), Adam runs on one micro-step in K: an iteration's
    # cost is the mean over a whole cycle of K consecutive steps.
    accum = int(setup.configs.train.get("GRADIENT_ACCUMULATION_STEPS", 1))
    cycles = 1 if quick else 2
    c0 = time.process_time()
    per_cycle, per_step = [], []
    for _ in range(cycles):
        for _ in range(accum):
            t0 = time.perf_counter()
            run()
            per_step.append(time.perf_counter() - t0)
        per_cycle.append(sum(per_step[-accum:]) / accum)
    cpu_s = (time.process_time() - c0) / (cycles * accum)
    best = min(per_cycle)
    return {
        "frames": frames, "batch": batch, "skin_dim": setup.net_cfg.skin_dim, "tongue_dim": setup.net_cfg.tongue_dim,
        "params": int(sum(x.size for x in jax.tree_util.tree_leaves(params))),
        "init_s": round(init_s, 2), "first_call_s": round(first_s, 2), "first_call_cpu_s": round(first_cpu, 2),  # compile + one step
        "gradient_accumulation_steps": accum, "best_s": round(best, 3), "mean_s": round(sum(per_cycle) / cycles, 3),
        "micro_step_s": {"min": round(min(per_step), 3), "max": round(max(per_step), 3)},
        "cpu_s_per_iter": round(cpu_s, 3),
        "frames_per_s": round(frames * batch / best, 1),
        "gflop_per_iter": round(flops / 1e9, 1), "achieved_gflops": round(flops / best / 1e9, 1),
        "loss_finite": bool(np.isfinite(float(jax.device_get(compiled(holder["state"], batch_dev)[1]["loss"])))),
        "load_avg_1m": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count(), "compute_dtype": compute_dtype,
    }


def train_120_b1(quick: bool) -> dict:
    return train_iteration(120, 1, quick)


def train_120_b4(quick: bool) -> dict:
    return train_iteration(120, 4, quick)


def train_600_b1(quick: bool) -> dict:
    return train_iteration(600, 1, quick)


def train_600_b4(quick: bool) -> dict:
    return train_iteration(600, 4, quick)


BENCHMARKS = {"train_120_b1": train_120_b1, "train_120_b4": train_120_b4,
              "train_600_b1": train_600_b1, "train_600_b4": train_600_b4}
