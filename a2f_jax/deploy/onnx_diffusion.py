"""ONNX graph of the streaming diffusion network (`docs/bundle_contract.md`).

Inputs `window` [B, 16000], `identity` [B, I], `emotion` [B, C, E], `input_latents` [S, L, B, H],
`noise` [B, S+1, F, D]; outputs `prediction` [B, F, D] (deltas in original units, only the centre block
[left, left+C) meaningful) and `output_latents` [S, L, B, H]. HuBERT, the audio alignment, the S-step DDPM
sampler (x_S = noise[:, S], step k adds noise[:, k]), the GRU over the centre frames and the delta conversion
with the baked per-actor constants are all inside the graph; the model draws no randomness of its own.
The traced computation is `models.diffusion_sampling.export_fn`, the streaming sampler every caller uses.

A single-emotion network (E = 0) keeps the original's zero-width `emotion` [B, C, 0] input (its trt_info
says `emotion:1x30x0`, and network_info `emotions: []`): jax2onnx exports the static 0 and onnxruntime
runs it, the embedding being an empty product (zeros, as torch's bias-free Linear(0, 32)). A width-1
dummy input would contradict the sizes the SDK derives from network_info, and a graph without the input
would reject the SDK's emotion feed.
"""

from __future__ import annotations

import pathlib
from typing import Any, Mapping

from a2f_jax import runs
from a2f_jax.deploy import contract as C
from a2f_jax.deploy.onnx_utils import export_onnx
from a2f_jax.errors import ConfigError, DataError, describe
from a2f_jax.models import diffusion_sampling as sampling
from a2f_jax.models import gaussian_diffusion as gd
from a2f_jax.models.diffusion_rnn import net_from_model_def

INPUTS = ("window", "identity", "emotion", "input_latents", "noise")
OUTPUTS = ("prediction", "output_latents")


def check_consistency(net: Any, diffusion: Any, network_info: Mapping[str, Any]) -> None:
    """The baked graph must agree with what network_info tells the runtime (`docs/bundle_contract.md`)."""
    cfg, p = net.cfg, network_info["params"]
    left, center, right = cfg.streaming
    found = {
        "num_diffusion_steps": diffusion.num_timesteps, "num_gru_layers": cfg.num_gru_layers,
        "gru_latent_dim": cfg.gru_feature_dim, "num_frames_left_truncate": left, "num_frames_center": center,
        "num_frames_right_truncate": right, "skin_size": cfg.skin_dim, "tongue_size": cfg.tongue_dim,
        "jaw_size": cfg.jaw_dim, "eyes_size": cfg.eye_dim,
    }
    bad = {k: (p[k], v) for k, v in found.items() if p[k] != v}
    if len(p["identities"]) != cfg.num_actors or len(p["emotions"]) != cfg.num_emotions:
        bad["identities/emotions"] = ((len(p["identities"]), len(p["emotions"])), (cfg.num_actors, cfg.num_emotions))
    if bad:
        raise DataError(describe(runs.Bundle.NETWORK_INFO, "params", "values equal to the exported network's",
                                 ", ".join(f"{k}: info {a} vs network {b}" for k, (a, b) in bad.items())))


def export_diffusion(net: Any, params: Any, diffusion: Any, network_info: Mapping[str, Any], skip_steps: int = 0) -> Any:
    """`onnx.ModelProto` of the streaming sampler; `diffusion` must be the respaced one (TIMESTEP_RESPACING)."""
    if diffusion.num_timesteps > 10:
        raise ConfigError(describe("config_inference", "TIMESTEP_RESPACING", "a respaced diffusion (e.g. \"2\") to unroll in the graph",
                                   f"{diffusion.num_timesteps} steps"))
    check_consistency(net, diffusion, network_info)
    shapes = C.onnx_tensor_shapes(network_info)
    return export_onnx(
        sampling.export_fn(net, params, diffusion, skip_steps),
        [(n, shapes[n]) for n in INPUTS],
        [(n, shapes[n]) for n in OUTPUTS],
        opset=C.ONNX_OPSET,
        model_name="diffusion_rnn_streaming",
    )


def export_from_run(configs: Any, run_dir: pathlib.Path, network_info: Mapping[str, Any]) -> Any:
    """Export a finished diffusion training run (`model_def.json` + final params) with the inference config's
    TIMESTEP_RESPACING (must be set, e.g. "2": the base default None would mean all 1000 steps)."""
    icfg, tcfg = configs.inference, configs.train
    respacing = icfg.TIMESTEP_RESPACING
    if respacing in (None, ""):
        raise ConfigError(describe("config_inference", "TIMESTEP_RESPACING", 'a respacing such as "2" (NUM_DIFFUSION_STEPS)',
                                   repr(respacing)))
    if icfg.USE_DDIM:
        raise ConfigError(describe("config_inference", "USE_DDIM", "False (the deployed graph bakes the DDPM sampler)", "True"))
    for key in ("USE_PER_FRAME_EMO_LABEL", "USE_EXTERNAL_NOISE_INPUT", "USE_DELTA_OUTPUT"):
        if not icfg[key]:
            raise ConfigError(describe("config_inference", key, "True (the SDK contract needs it)", "False"))
    run = runs.TrainingRun(run_dir)
    model_def, params = run.model_def(), run.params()
    net = net_from_model_def(model_def)
    if isinstance(params, Mapping) and "net" in params:
        params = params["net"]
    # the schedule the run was trained with; a run that recorded none: the deploy train config's
    schedule = model_def.get(runs.NOISE_SCHEDULE_KEY) or tcfg.DIFFUSION_NOISE_SCHEDULE
    diffusion = gd.create_diffusion(net.cfg.diffusion_steps, schedule, str(respacing))
    return export_diffusion(net, params, diffusion, network_info, int(icfg.SKIP_STEPS))
