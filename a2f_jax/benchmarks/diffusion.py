"""diffusion_rnn training cost: forward + backward of network and diffusion losses at 120 frames.

Base size Claire-sized (docs/dataset_format.md): skin 24,002 vertices, tongue 5,602, 11 emotions, 1 actor, HuBERT base
(random weights), 120 frames at 60 fps (2 s of audio), batch 1, train mode (dropout, LayerDrop,
SpecAugment). The full iteration (optimizer, sampling) is benchmarked by the training loop's module.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from a2f_jax.benchmarks import timeit

# lazy imports: `bench.py --only X` discovers every area module and must not import every area's stack


def _forward_backward(quick: bool) -> dict:
    from a2f_jax.models import diffusion_rnn as dr
    from a2f_jax.models import gaussian_diffusion as gd
    from a2f_jax.models.audio_encoder import EncoderConfig
    from a2f_jax.train import losses_diffusion as ld

    if quick:
        vs, vt, frames, enc, extra = 200, 20, 30, EncoderConfig(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, mask_time_length=3,
        ), dict(hubert_feature_dim=32)
    else:
        vs, vt, frames, enc, extra = 24002, 5602, 120, EncoderConfig(), {}
    cfg = dr.DiffusionNetConfig(skin_dim=3 * vs, tongue_dim=3 * vt, num_actors=1, num_emotions=11, encoder=enc, **extra)
    rng = np.random.default_rng(0)
    net = dr.DiffusionRNN(cfg, dr.ActorConstants(rng.standard_normal((1, cfg.output_dim)).astype(np.float32) * 0.1))
    samples = int(frames / 60 * 16000)
    audio = jnp.asarray(rng.standard_normal((1, samples)).astype(np.float32) * 0.1)
    x0 = jnp.asarray(rng.standard_normal((1, frames, cfg.output_dim)).astype(np.float32) * 0.1)
    actor, emotion = jnp.ones((1, 1)), jnp.eye(11)[:1]
    t0 = time.perf_counter()
    params = jax.jit(net.init)({"params": jax.random.PRNGKey(0)}, x0, jnp.array([0]), audio, actor, emotion)["params"]
    init_s = time.perf_counter() - t0
    diff = gd.create_diffusion(1000, "cosine", "")
    ks = 272 if not quick else 20
    q, _ = np.linalg.qr(rng.standard_normal((3 * vs, ks)).astype(np.float32))
    consts = ld.build_loss_constants(
        skin_dim=cfg.skin_dim, tongue_dim=cfg.tongue_dim, jaw_dim=15, eye_dim=4, scale_skin=[1.0],
        translate_skin=[[0.0, 0.0, 0.0]], shapes_matrix=[q.T.reshape(ks, vs, 3)],
        shapes_mean=[rng.standard_normal((vs, 3)).astype(np.float32)],
        lip_dist_verts={"upper": [0, 1, 2, 3, 4], "lower": [5, 6, 7, 8, 9]}, eye_dist_verts={"lower": [10, 11]},
    )

    # Data and loss constants are arguments: closed-over arrays would become (folded) XLA constants.
    def loss(p, key, x0, audio, consts):
        k_noise, k_drop, k_mask = jax.random.split(key, 3)
        t = jnp.array([500])
        x_t = gd.q_sample(diff, x0, t, jax.random.normal(k_noise, x0.shape))
        pred = net.apply({"params": dr.stop_frozen_gradients(p)}, x_t, t, audio, actor, emotion, train=True,
                         rngs={"dropout": k_drop, "mask": k_mask})
        out = ld.diffusion_losses(pred, x0, consts, actor, tongue_weight=0.1, jaw_weight=1.0, lip_dist_alpha=1e-5,
                                  lip_dist_exp=10.0, velocity_alpha=0.0, exp_smooth_alpha=25.0)
        return jnp.sum(out["total"])

    step = jax.jit(jax.value_and_grad(loss))
    key = jax.random.PRNGKey(1)
    args = (params, key, x0, audio, consts)
    t0 = time.perf_counter()
    jax.block_until_ready(step(*args))
    compile_s = time.perf_counter() - t0
    timing = timeit(lambda: jax.block_until_ready(step(*args)), repeats=1 if quick else 3, warmup=0)
    cpu0 = time.process_time()
    jax.block_until_ready(step(*args))
    cpu = time.process_time() - cpu0
    return {
        "frames": frames,
        "skin_vertices": vs,
        "tongue_vertices": vt,
        "params": int(sum(x.size for x in jax.tree_util.tree_leaves(params))),
        "init_s": round(init_s, 2),
        "first_call_s": round(compile_s, 2),
        **timing,
        "cpu_s": round(cpu, 3),
    }


def forward_120(quick: bool) -> dict:
    return _forward_backward(quick)


BENCHMARKS = {"forward_120": forward_120}
