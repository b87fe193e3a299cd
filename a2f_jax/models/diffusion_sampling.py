"""Sampling the diffusion network: the one place that turns noise into x̂0 (validation, inference, ONNX export).

Two samplers, both pure functions of explicit `params`, schedule (`gaussian_diffusion.Diffusion`, respaced)
and noise; neither draws randomness of its own:

- `sample_offline`: a whole clip in one pass, zero initial GRU state at every diffusion step (DDPM, or DDIM
  with η = 0). Used by the validation of the diffusion trainer and by offline inference.
- `sample_streaming_window`: one window of the streaming graph of the deploy bundle (`network.onnx`, see
  `docs/bundle_contract.md`): HuBERT over the window, S unrolled DDPM steps, each reading and overwriting
  its own slot of the carried GRU latents, the GRU over the centre block only. Options:
  `centre_only` (the JAX inference engine's fast path: the geometry embedding and the heads run on the
  centre frames only, which are the only ones that reach the output), `symbolic_batch` (the ONNX export:
  the timestep vector is built from the inputs' batch dimension, which jax2onnx keeps symbolic) and
  `delta_output` (the graph's "output_delta" units).

Noise layout (the original's): DDPM noise [B, K + 1, T, C], x_K = noise[:, −1] and spaced step k adds
noise[:, k]; DDIM reads only x_K. The loops are `gaussian_diffusion.p_sample_loop` / `ddim_sample_loop`.

Nothing here is cached: `offline_sampler`, `streaming_sampler` and `export_fn` return closures over one
network and schedule (jitted for the first two) that the caller keeps, e.g. on its engine or setup object.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from a2f_jax.errors import DataError, describe
from a2f_jax.models import gaussian_diffusion as gd
from a2f_jax.models.diffusion_rnn import DiffusionRNN, encoder_frame_counts, to_delta

Array = jax.Array


# ---------------------------------------------------------------------------------------------------------
# Offline: the whole clip
# ---------------------------------------------------------------------------------------------------------


def sample_offline(
    net: DiffusionRNN,
    params: Any,
    diffusion: gd.Diffusion,
    audio: Array,
    actor_vec: Array,
    emotion_vec: Array,
    noise: Array,
    *,
    skip_steps: int = 0,
    use_ddim: bool = False,
    audio_lengths: Array | None = None,
    frame_lengths: Array | None = None,
) -> Array:
    """x̂0 [B, T, C] of a whole clip, T = noise.shape[-2] frames; zero initial GRU state at every step.

    audio [B, N], actor_vec [B, A], emotion_vec [B, E] or per-frame [B, T, E]. DDPM: noise [B, K + 1, T, C].
    DDIM (η = 0): noise [B, T, C] is x_K, or the DDPM layout of which only x_K = noise[:, −1] is read.
    A clip right-padded to a fixed length (one compiled program for many clips) passes its real `audio_lengths`
    [B] samples and `frame_lengths` [B] frames: its real frames then equal those of the unpadded clip (the GRU
    is causal; the encoder ignores the padding).
    """
    variables = {"params": params}
    frames = noise.shape[-2]
    hidden = net.apply(variables, audio, method=DiffusionRNN.encode, lengths=audio_lengths)
    if audio_lengths is None or frame_lengths is None:
        tokens = net.apply(variables, hidden, frames, method=DiffusionRNN.condition)
    else:
        mask = jnp.arange(frames)[None, :] < jnp.asarray(frame_lengths)[:, None]
        feat = encoder_frame_counts(net.cfg.encoder, audio_lengths)
        tokens = net.apply(variables, hidden, frames, mask, feat, method=DiffusionRNN.condition)

    def denoise_fn(x: Array, t: Array, slot: int, carry: Any) -> tuple[Array, Any]:
        pred, _ = net.apply(variables, x, t, tokens, actor_vec, emotion_vec, method=DiffusionRNN.denoise)
        return pred, carry

    if use_ddim:
        x_T = noise[:, -1] if noise.ndim == 4 else noise
        x, _ = gd.ddim_sample_loop(diffusion, denoise_fn, x_T, None, skip_steps)
    else:
        x, _ = gd.p_sample_loop(diffusion, denoise_fn, noise, None, skip_steps)
    return x


def offline_sampler(net: DiffusionRNN, diffusion: gd.Diffusion, *, skip_steps: int = 0, use_ddim: bool = False,
                    padded: bool = False) -> Callable[..., Array]:
    """jit of `sample_offline` for one network and schedule; keep it (one compiled program per input shape).

    (params, audio, actor_vec, emotion_vec, noise) -> x̂0 [B, T, C]; with `padded`, two more arguments
    `audio_lengths` [B] and `frame_lengths` [B] (see `sample_offline`).
    """
    if padded:
        return jax.jit(lambda p, a, ac, e, nz, al, fl: sample_offline(
            net, p, diffusion, a, ac, e, nz, skip_steps=skip_steps, use_ddim=use_ddim, audio_lengths=al, frame_lengths=fl))
    return jax.jit(lambda p, a, ac, e, nz: sample_offline(
        net, p, diffusion, a, ac, e, nz, skip_steps=skip_steps, use_ddim=use_ddim))


# ---------------------------------------------------------------------------------------------------------
# Streaming: one window with carried GRU latents
# ---------------------------------------------------------------------------------------------------------


def sample_streaming_window(
    net: DiffusionRNN,
    params: Any,
    diffusion: gd.Diffusion,
    window: Array,
    identity: Array,
    emotion: Array,
    input_latents: Array,
    noise: Array,
    *,
    skip_steps: int = 0,
    delta_output: bool = True,
    centre_only: bool = False,
    symbolic_batch: bool = False,
) -> tuple[Array, Array]:
    """One streaming window → (prediction, output_latents [S, L, B, H]).

    window [B, W] audio, identity [B, A], emotion [B, block, E] (or [B, E]), input_latents [S, L, B, H],
    noise [B, S + 1, F, C] with F = left + block + right frames (STREAMING_CFG). HuBERT runs once per window
    (deterministic in eval mode, so equal to the original's per-step recomputation); spaced step k reads and
    overwrites only latent slot `diffusion.latent_slot(k)` and adds noise[:, k]; x_S = noise[:, S].

    prediction: [B, F, C] with the frames outside the centre block zero before the delta conversion (the
    exported graph), or with `centre_only` just the centre block [B, block, C]: the geometry embedding and
    the heads are per frame and the GRU reads only the centre block, so the left/right frames of x_t never
    reach the centre output, and skipping them saves the skin embedding (a step's largest matmul) on half
    the frames. x̂0 in rescaled units, or deltas in original units with `delta_output` ("output_delta").
    `symbolic_batch`: the timestep vector is derived from `window`'s batch dimension instead of
    `jnp.full((B,), t)`, which jax2onnx cannot trace with a symbolic batch (the values are the same).
    """
    cfg = net.cfg
    left, block, right = cfg.streaming
    frames = left + block + right
    steps = diffusion.num_timesteps
    if input_latents.shape[0] != steps or noise.ndim != 4 or noise.shape[1] != steps + 1 or noise.shape[2] != frames:
        raise DataError(describe("streaming window", "input_latents/noise",
                                 f"[{steps}, L, B, H] / [B, {steps + 1}, {frames}, C]",
                                 f"{tuple(input_latents.shape)} / {tuple(noise.shape)}"))
    variables = {"params": params}
    hidden = net.apply(variables, window, method=DiffusionRNN.encode)
    tokens = net.apply(variables, hidden, frames, method=DiffusionRNN.condition)
    if centre_only:
        tokens = tokens[:, left:left + block]
        noise = noise[:, :, left:left + block]

    def denoise_fn(x: Array, t: Array, slot: int, latents: Array) -> tuple[Array, Array]:
        pred, h = net.apply(variables, x, t, tokens, identity, emotion, latents[slot], method=DiffusionRNN.denoise,
                            crop=not centre_only)
        # A static slot: stacking keeps the exported graph free of scatter ops.
        latents = jnp.stack([h if i == slot else latents[i] for i in range(latents.shape[0])])
        return pred, latents

    timesteps = None
    if symbolic_batch:
        zeros_b = jnp.zeros_like(window[:, 0], dtype=jnp.int32)  # [B], batch-symbolic
        timesteps = lambda k: zeros_b + int(diffusion.timestep_map[k])  # noqa: E731
    pred, latents = gd.p_sample_loop(diffusion, denoise_fn, noise, input_latents, skip_steps, timesteps=timesteps)
    if delta_output:
        pred = to_delta(pred, identity, cfg, net.constants)
    return pred, latents


def streaming_sampler(net: DiffusionRNN, diffusion: gd.Diffusion, *, skip_steps: int = 0, delta_output: bool = True,
                      centre_only: bool = False) -> Callable[..., tuple[Array, Array]]:
    """jit of `sample_streaming_window` for one network and schedule; keep it.

    (params, window, identity, emotion, input_latents, noise) -> (prediction, output_latents).
    """
    return jax.jit(lambda p, w, i, e, lat, nz: sample_streaming_window(
        net, p, diffusion, w, i, e, lat, nz, skip_steps=skip_steps, delta_output=delta_output, centre_only=centre_only))


def export_fn(net: DiffusionRNN, params: Any, diffusion: gd.Diffusion, skip_steps: int = 0
              ) -> Callable[[Array, Array, Array, Array, Array], tuple[Array, Array]]:
    """The computation of the deployed `network.onnx`, params closed over (traced by the exporter, not jitted):

    (window, identity, emotion, input_latents, noise) -> (prediction [B, F, C] deltas, output_latents), with a
    symbolic batch dimension.
    """

    def fn(window: Array, identity: Array, emotion: Array, input_latents: Array, noise: Array) -> tuple[Array, Array]:
        return sample_streaming_window(net, params, diffusion, window, identity, emotion, input_latents, noise,
                                       skip_steps=skip_steps, delta_output=True, symbolic_batch=True)

    return fn
