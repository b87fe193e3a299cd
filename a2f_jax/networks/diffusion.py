"""The diffusion network `diffusion_rnn` behind the networks interface (`docs/networks.md`).

`Network` is the Flax module (`a2f_jax.models.diffusion_rnn.DiffusionRNN`) with its model_def; `Setup` is what
training builds from the configs before the first step: the data, the network, the Gaussian diffusion, the loss
constants. Beyond the original: BATCH_SIZE > 1 (items padded to LENGTH_BUCKETS with frame masks), multi-device
data parallelism, resume, validation. Sampling is `a2f_jax.models.diffusion_sampling`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import pathlib
from typing import Any, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from a2f_jax import runs
from a2f_jax.data.actor import ActorData, ActorSettings
from a2f_jax.deploy import onnx_diffusion
from a2f_jax.errors import ConfigError, describe
from a2f_jax.infer import metrics as M
from a2f_jax.models import diffusion_rnn as dnet
from a2f_jax.models import diffusion_sampling as sampling
from a2f_jax.models import freeze, precision
from a2f_jax.models import gaussian_diffusion as gd
from a2f_jax.networks.common import Feed, log_validation, split_validation
from a2f_jax.ops import random as ops_random
from a2f_jax.train import losses_diffusion as dl
from a2f_jax.train import optim, prefetch, sharding
from a2f_jax.train.dataset import TrainingData, emotion_vector, load_training_data
from a2f_jax.train.encoder_setup import encoder_config, replace_encoder_params
from a2f_jax.train.sampler_diffusion import DiffusionSampler, DiffusionSamplerSettings, bucket_for, sampling_buckets

log = logging.getLogger(__name__)

NAME = "diffusion"
TARGET_CHANNELS = ("skin_pose", "tongue_pose", "jaw", "eye")  # the network's output order


# --------------------------------------------------------------------------------------------- network


@dataclasses.dataclass
class Network:
    """DiffusionRNN and the model_def that rebuilds it (with the noise schedule it was trained with)."""

    net: dnet.DiffusionRNN
    model_def: dict

    @property
    def cfg(self) -> dnet.DiffusionNetConfig:
        return self.net.cfg

    @property
    def noise_schedule(self) -> str:
        return runs.noise_schedule(self.model_def)


def from_model_def(model_def: Mapping[str, Any]) -> Network:
    """Rebuild (float32) the network saved in a run's `model_def.json`."""
    return Network(dnet.net_from_model_def(model_def), dict(model_def))


def load_run(run_dir: str | pathlib.Path) -> tuple[Network, Any, dict]:
    """(network, params as jax arrays, model_def) of a finished diffusion run."""
    run = runs.TrainingRun(run_dir)
    model_def = run.model_def()
    params = jax.tree_util.tree_map(jnp.asarray, run.params())
    return from_model_def(model_def), params, model_def


# ------------------------------------------------------------------------------------------ training setup


@dataclasses.dataclass
class Setup:
    configs: Any
    data: TrainingData
    train_clips: list
    val_clips: list
    network: Network  # computes in COMPUTE_DTYPE; the model_def does not record it (inference runs float32)
    diffusion: Any  # gd.Diffusion (training: all steps)
    consts: Any  # dl.DiffusionLossConstants
    lip_vertices: list[int]
    encoder_params: Any | None
    # Jitted offline samplers by timestep map, kept with the setup (one compiled program per shape).
    samplers: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def net(self) -> dnet.DiffusionRNN:
        return self.network.net

    @property
    def net_cfg(self) -> dnet.DiffusionNetConfig:
        return self.network.net.cfg

    @property
    def model_def(self) -> dict:
        return self.network.model_def


def _actor_constants(data: TrainingData) -> dnet.ActorConstants:
    mean, scales = [], {k: [] for k in ("skin", "tongue", "jaw", "eye")}
    for a in data.actors:
        art = data.artifacts[a]
        mean.append(np.asarray(art.mean_geometry, np.float32))
        for k in scales:
            scales[k].append(float(art.data_info.get(f"scale_{k}", 1.0)))
    return dnet.ActorConstants(np.stack(mean), *(np.asarray(scales[k], np.float32) for k in ("skin", "tongue", "jaw", "eye")))


def model_def(tcfg: Any, net_cfg: dnet.DiffusionNetConfig, consts: dnet.ActorConstants, data: TrainingData) -> dict:
    """What rebuilds the network for inference and export, the noise schedule included (`a2f_jax.runs`)."""
    return {
        "network": runs.DIFFUSION_NETWORK,
        # sampling from the run (inference, export) must use the schedule the network was trained with
        runs.NOISE_SCHEDULE_KEY: str(tcfg.DIFFUSION_NOISE_SCHEDULE),
        "net_cfg": {k: v for k, v in dataclasses.asdict(net_cfg).items() if k != "encoder"},
        "encoder": net_cfg.encoder.to_dict(),
        "actors": list(data.actors),
        "explicit_emotions": list(data.explicit_emotions),
        "mean_geometry": consts.mean_geometry.tolist(),
        "scales": {k: getattr(consts, f"scale_{k}").tolist() for k in ("skin", "tongue", "jaw", "eye")},
        "translates": {k: [list(np.ravel(data.artifacts[a].data_info.get(f"translate_{k}", 0.0)).astype(float)) for a in data.actors]
                       for k in ("skin", "tongue")},
    }


def build(configs: Any) -> Setup:
    """Read the data and artifacts, build the network, the Gaussian diffusion and the loss constants."""
    tcfg, dcfg = configs.train, configs.dataset
    data = load_training_data(tcfg, dcfg)
    train_clips, val_clips = split_validation(data, tcfg, dcfg)
    sizes = data.channel_sizes
    if tuple(sizes) != TARGET_CHANNELS:
        raise ConfigError(describe("config_train", "TARGET_CHANNELS", f"{list(TARGET_CHANNELS)} for diffusion_rnn", repr(list(sizes))))
    enc_cfg, enc_params = encoder_config(tcfg, "hubert")
    net_cfg = dnet.DiffusionNetConfig.from_train_config(
        tcfg, skin_dim=sizes["skin_pose"], tongue_dim=sizes["tongue_pose"], jaw_dim=sizes["jaw"], eye_dim=sizes["eye"],
        num_actors=len(data.actors), num_emotions=len(data.explicit_emotions), encoder=enc_cfg)
    consts_actor = _actor_constants(data)
    # COMPUTE_DTYPE: bf16 mixed precision (params and optimizer state stay float32); not in model_def (inference: f32)
    net = dnet.DiffusionRNN(net_cfg, consts_actor, precision.compute_dtype(tcfg.COMPUTE_DTYPE))
    a0 = data.actors[0]
    if len(data.actors) > 1:
        log.warning("several actors: the lip list and upper-face mask of %s are used for all (as the original)", a0)
    actor_data = ActorData.load(ActorSettings.from_configs(dcfg, a0))
    arts = [data.artifacts[a] for a in data.actors]
    consts = dl.build_loss_constants(
        skin_dim=sizes["skin_pose"], tongue_dim=sizes["tongue_pose"], jaw_dim=sizes["jaw"], eye_dim=sizes["eye"],
        scale_skin=[float(a.data_info.get("scale_skin", 1.0)) for a in arts],
        translate_skin=[list(a.data_info.get("translate_skin", [0.0, 0.0, 0.0])) for a in arts],
        shapes_matrix=[a.skin_shapes for a in arts], shapes_mean=[a.skin_mean for a in arts],
        lip_dist_verts=actor_data.lip_dist_verts, eye_dist_verts=actor_data.eye_dist_verts,
    )
    diffusion = gd.create_diffusion(int(tcfg.DIFFUSION_STEPS), tcfg.DIFFUSION_NOISE_SCHEDULE, tcfg.TIMESTEP_RESPACING)
    network = Network(net, model_def(tcfg, net_cfg, consts_actor, data))
    return Setup(configs, data, train_clips, val_clips, network, diffusion, consts,
                 M.lip_vertices_from_lists(actor_data.lip_dist_verts, actor_data.lip_size_verts), enc_params)


def make_sampler(setup: Setup, batch_size: int, seed: int) -> DiffusionSampler:
    """The training sampler: clips (or random subsegments) padded to LENGTH_BUCKETS, built on the host."""
    sampler = DiffusionSampler(setup.data, DiffusionSamplerSettings.from_train_config(setup.configs.train), batch_size, seed,
                               clips=setup.train_clips)
    log.info("diffusion: %d clips, %d steps/epoch, batch %d", len(setup.train_clips), sampler.batches_per_epoch, batch_size)
    return sampler


@contextlib.contextmanager
def feed(setup: Setup, sampler: DiffusionSampler, mesh: Any, start: int, stop: int) -> Iterator[Feed]:
    """Batches `{audio, y, mask, audio_len, actor, emotion, "constants": the loss constants (placed once)}`: this
    process's rows of each step's batch, built two steps ahead and placed on the devices sharded; the worker stops
    at the end, on errors and on interruption. `stats()`: mean host ms per batch and ms the loop waited for it."""
    constants = sharding.replicate(setup.consts, mesh)
    with prefetch.sharded_feed(sampler.batch, mesh, sampler.batch_size, start, stop) as rows:
        yield Feed(lambda step: {**rows(step), "constants": constants}, rows.take_stats)


def init(setup: Setup, key: jax.Array) -> Any:
    """The network's params (pretrained encoder weights copied in)."""
    c = setup.net_cfg
    # Jitted: eager init runs every encoder/GRU op one by one (about 20 s of CPU for the tiny demo net).
    init_fn = jax.jit(lambda k: setup.net.init(
        {"params": k}, jnp.zeros((1, 30, c.output_dim)), jnp.zeros((1,), jnp.int32), jnp.zeros((1, 8000)),
        jnp.zeros((1, c.num_actors)), jnp.zeros((1, c.num_emotions)))["params"])
    params = init_fn(key)
    if setup.encoder_params is not None:
        params = replace_encoder_params(params, dnet.ENCODER_SCOPE, setup.encoder_params)
    return params


def make_optimizer(setup: Setup, params: Any, steps_per_epoch: int) -> optim.Optimizer:
    """Adam with the per-epoch warm-up + cosine schedule, frozen encoder front, GRADIENT_ACCUMULATION_STEPS."""
    tcfg = setup.configs.train
    accum = max(int(tcfg.GRADIENT_ACCUMULATION_STEPS), 1)
    updates_per_epoch = max(-(-steps_per_epoch // accum), 1)
    schedule = optim.diffusion_schedule(float(tcfg.LEARNING_RATE), int(tcfg.NUM_EPOCHS), updates_per_epoch)
    labels = freeze.param_labels(params, dnet.frozen_param_predicate())
    # Accumulation outermost: between optimizer updates a micro-step only adds its gradients.
    tx = optim.accumulate(freeze.with_frozen(optax.adam(schedule), labels), accum, tcfg.GRAD_ACCUM_REDUCTION)
    return optim.Optimizer(tx, lambda step: float(schedule(step // accum)))


def init_state(setup: Setup, params: Any, tx: Any) -> dict:
    return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}


def make_train_step(setup: Setup, tx: Any, steps_per_epoch: int | None = None, *, seed: int | None = None):
    """The pure step `(state, batch) -> (state, metrics)`; `batch` is what `feed` yields (its "constants" the loss
    constants). `seed` (timestep, noise and dropout keys) defaults to the train config's RNG_SEED_TORCH."""
    tcfg = setup.configs.train
    weights = dict(tongue_weight=float(tcfg.TONGUE_WEIGHT), jaw_weight=float(tcfg.JAW_WEIGHT),
                   lip_dist_alpha=tcfg.LOSS_LIP_DIST_ALPHA, lip_dist_exp=float(tcfg.LOSS_LIP_DIST_EXP),
                   velocity_alpha=tcfg.LOSS_VELOCITY_ALPHA, exp_smooth_alpha=tcfg.LOSS_EXP_SMOOTH_ALPHA)
    net, diffusion = setup.net, setup.diffusion
    base_key = jax.random.PRNGKey(int(tcfg.RNG_SEED_TORCH if seed is None else seed))
    padded = int(tcfg.BATCH_SIZE) > 1

    def step(state, batch):
        rng = jax.random.fold_in(base_key, state["step"])
        k_t, k_noise, k_drop, k_mask = jax.random.split(rng, 4)
        y = batch["y"]
        k = dl.sample_timesteps(k_t, y.shape[0], diffusion.num_timesteps)
        noise = ops_random.noise_normal(k_noise, y.shape).astype(y.dtype)  # = jax.random.normal, bit for bit
        mask = batch["mask"] if padded else None
        audio_len = batch["audio_len"] if padded else None

        def loss_fn(params):
            params = dnet.stop_frozen_gradients(params)  # no backward pass through the frozen HuBERT front

            def model_fn(x_t, t):
                return net.apply({"params": params}, x_t, t, batch["audio"], batch["actor"], batch["emotion"], mask,
                                 audio_len, train=True, rngs={"dropout": k_drop, "mask": k_mask})

            terms, _ = dl.training_losses(model_fn, diffusion, y, k, noise, batch["constants"], batch["actor"],
                                          mask=mask, **weights)
            total = jnp.mean(terms["total"])
            return total, {f"losses/{n}": jnp.mean(v) for n, v in terms.items() if n != "total"}

        (total, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        params, opt_state = optim.apply_gradients(tx, grads, state["opt_state"], state["params"])
        metrics = dict(terms)
        metrics["loss"] = total
        return {"step": state["step"] + 1, "params": params, "opt_state": opt_state}, metrics

    return step


# -------------------------------------------------------------------------------------- sample / validate


def sample(setup: Setup, params: Any, audio: np.ndarray, frames: int, actor: int, emotion: np.ndarray,
           respacing: Any = "2", seed: int = 0, bucket: list[int] | None = None) -> np.ndarray:
    """Offline sampling of one clip → rescaled predictions [frames, C]: padded to a bucket (one program for many
    clips), with the real lengths passed so the padding changes nothing (causal GRU, length-aware encoder)."""
    T = bucket_for(frames, bucket or sampling_buckets(setup.configs.train.LENGTH_BUCKETS))
    fps = setup.net_cfg.target_fps
    n = int(round(T / fps * 16000))
    a = np.zeros((1, n), np.float32)
    a[0, :min(len(audio), n)] = audio[:n]
    diff = gd.create_diffusion(setup.diffusion.original_num_steps, setup.network.noise_schedule, respacing)
    noise = np.random.default_rng(seed).standard_normal((1, diff.num_timesteps + 1, T, setup.net_cfg.output_dim)).astype(np.float32)
    actor_vec = np.eye(setup.net_cfg.num_actors, dtype=np.float32)[actor][None]
    key = tuple(diff.timestep_map.tolist())
    if key not in setup.samplers:
        setup.samplers[key] = sampling.offline_sampler(setup.net, diff, padded=True)
    lengths = (np.asarray([min(len(audio), n)], np.int32), np.asarray([frames], np.int32))
    out = setup.samplers[key](params, jnp.asarray(a), jnp.asarray(actor_vec), jnp.asarray(emotion[None]), jnp.asarray(noise), *lengths)
    return np.asarray(out)[0, :frames]


def unscale_skin(setup: Setup, x: np.ndarray, actor: int) -> np.ndarray:
    """Rescaled skin slice → vertices [T, V, 3] in mesh units."""
    s = float(setup.model_def["scales"]["skin"][actor])
    t = np.asarray(setup.model_def["translates"]["skin"][actor], np.float32)
    return x[:, : setup.net_cfg.skin_dim].reshape(len(x), -1, 3) * s + t


def validation_metrics(setup: Setup, params: Any) -> dict[str, float]:
    """Mean and lip vertex error of offline samples (2 respaced steps) of the held-out clips."""
    sampler = DiffusionSampler(setup.data, DiffusionSamplerSettings.from_train_config(setup.configs.train), 1, 0, clips=setup.val_clips, augment=False)
    lve, mve = [], []
    items = [sampler.clip_item(clip, None) for clip in setup.val_clips]
    # One padded length for all held-out clips: a single compiled sampling program per run.
    bucket = [bucket_for(max(len(y) for _, y in items), sampling_buckets(setup.configs.train.LENGTH_BUCKETS))]
    for clip, (audio, y) in zip(setup.val_clips, items):
        actor = setup.data.actors.index(clip.actor)
        pred = sample(setup, params, audio, len(y), actor, setup.data.emotion_vector(clip.shot_index), bucket=bucket)
        vp, vg = unscale_skin(setup, pred, actor), unscale_skin(setup, y, actor)
        if setup.lip_vertices:
            lve.append(M.lip_vertex_error(vp, vg, setup.lip_vertices))
        mve.append(M.mean_vertex_error(vp, vg))
    out = {"val/mean_vertex_error": float(np.mean(mve))}
    if lve:
        out["val/lip_vertex_error"] = float(np.mean(lve))
    return log_validation(out)


# ------------------------------------------------------------------------------------------- run folder


def write_run_metadata(setup: Setup, run_dir: pathlib.Path) -> None:
    """network_info (+ full), trt_info and model_def of the run (`a2f_jax.runs.TrainingRun`)."""
    tcfg, icfg, data, c = setup.configs.train, setup.configs.inference, setup.data, setup.net_cfg
    left, block, right = c.streaming
    default = emotion_vector(tcfg.DEFAULT_SHOT_EMOTION_NAME, data.explicit_emotions).tolist()
    params = {
        "emotions": list(data.explicit_emotions), "default_emotion": default, "identities": list(data.actors),
        "skin_size": c.skin_dim, "tongue_size": c.tongue_dim, "jaw_size": c.jaw_dim, "eyes_size": c.eye_dim,
        "num_diffusion_steps": int(icfg.NUM_DIFFUSION_STEPS or 2), "num_gru_layers": c.num_gru_layers,
        "gru_latent_dim": c.gru_feature_dim, "num_frames_left_truncate": left, "num_frames_right_truncate": right,
        "num_frames_center": block,
    }
    info = {"id": {"type": "diffusion", "actor": data.actors[0] if len(data.actors) == 1 else "multi",
                   "version": str(tcfg.NETWORK_VERSION), "output": "geometry"},
            "params": params,
            "audio_params": {"buffer_len": 16000, "padding_left": 16000, "padding_right": 16000, "samplerate": 16000}}
    full = {"id": info["id"], "name": tcfg.NETWORK_NAME,
            "params": {**tcfg.to_dict(), **params, "actor_names": list(data.actors)},
            "audio_params": info["audio_params"], "default_emotion": default}
    e, a, d = len(data.explicit_emotions), len(data.actors), c.output_dim
    steps = params["num_diffusion_steps"]
    trt = {"window": "b,16000", "identity": f"b,{a}", "emotion": f"b,30,{e}", "input_latents": f"{steps},{c.num_gru_layers},b,{c.gru_feature_dim}",
           "noise": f"b,{steps + 1},60,{d}", "estimated_trt_builder_time": 150, "MAX_BATCH_SIZE": 8, "OPT_BATCH_SIZE": 3}
    runs.TrainingRun(run_dir).write_metadata(info, full, trt, setup.model_def)


def save_results(setup: Setup, params: Any, run_dir: pathlib.Path) -> None:
    """The final save: params.msgpack."""
    runs.TrainingRun(run_dir).save_params(params)


# ------------------------------------------------------------------------------------------------ export


def export_onnx(model_def: Mapping[str, Any], params: Any, network_info: Mapping[str, Any], respacing: str,
                skip_steps: int = 0) -> Any:
    """`onnx.ModelProto` of the streaming sampler with `respacing` steps (the SDK contract,
    `docs/bundle_contract.md`), sampling with the run's own noise schedule."""
    network = from_model_def(model_def)
    diffusion = gd.create_diffusion(network.cfg.diffusion_steps, network.noise_schedule, str(respacing))
    params = params["net"] if isinstance(params, Mapping) and "net" in params else params
    return onnx_diffusion.export_diffusion(network.net, params, diffusion, network_info, skip_steps)
