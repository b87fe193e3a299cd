"""Diffusion trainer (`diffusion_rnn`): data, network, Gaussian diffusion, optimizer, jitted step, run folder.

Beyond the original: BATCH_SIZE > 1 (items padded to LENGTH_BUCKETS with frame masks), multi-device
data parallelism, resume, validation. The loop is `a2f_jax.train.loop.run_loop`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from a2f_jax.errors import ConfigError, describe
from a2f_jax.io_utils import atomic_write_json
from a2f_jax.models import backend_ops
from a2f_jax.models import diffusion_rnn as dnet
from a2f_jax.models import fast_random
from a2f_jax.models import gaussian_diffusion as gd
from a2f_jax.models import precision
from a2f_jax.train import losses_diffusion as dl
from a2f_jax.train import lifecycle, optim, prefetch, sharding
from a2f_jax.train.encoder_setup import encoder_config, encoder_from_dict, encoder_to_dict, replace_encoder_params
from a2f_jax.train.dataset import TrainingData, build_clips, load_training_data
from a2f_jax.train.loop import LoopSettings
from a2f_jax.train.sampler_diffusion import DiffusionSampler, bucket_for
from a2f_jax.train.trainer_regression import PARAMS_FILE, load_params, save_params

log = logging.getLogger(__name__)


@dataclasses.dataclass
class DiffusionSetup:
    configs: Any
    data: TrainingData
    train_clips: list
    val_clips: list
    net: Any  # dnet.DiffusionRNN
    net_cfg: Any
    model_def: dict
    diffusion: Any  # gd.Diffusion (training: all steps)
    consts: Any  # dl.DiffusionLossConstants
    lip_vertices: list[int]
    encoder_params: Any | None


def _constants(data: TrainingData) -> Any:
    mean, scales = [], {k: [] for k in ("skin", "tongue", "jaw", "eye")}
    for a in data.actors:
        art = data.artifacts[a]
        mean.append(np.asarray(art.mean_geometry, np.float32))
        for k in scales:
            scales[k].append(float(art.data_info.get(f"scale_{k}", 1.0)))
    return dnet.ActorConstants(np.stack(mean), *(np.asarray(scales[k], np.float32) for k in ("skin", "tongue", "jaw", "eye")))


def build_setup(configs: Any) -> DiffusionSetup:
    from a2f_jax.data.actor import ActorData
    from a2f_jax.infer.metrics import lip_vertices_from_lists

    tcfg, dcfg = configs.train, configs.dataset
    data = load_training_data(tcfg, dcfg)
    val = build_clips(tcfg.get("VALIDATION_CLIPS", None) or [], data, dcfg, key="VALIDATION_CLIPS")
    held = {(c.actor, c.shot) for c in val}
    train_clips = [c for c in data.clips if (c.actor, c.shot) not in held]
    sizes = data.channel_sizes
    if list(sizes) != ["skin_pose", "tongue_pose", "jaw", "eye"]:
        raise ConfigError(describe("config_train", "TARGET_CHANNELS", "['skin_pose', 'tongue_pose', 'jaw', 'eye'] for diffusion_rnn", repr(list(sizes))))
    enc_cfg, enc_params = encoder_config(tcfg, "hubert")
    net_cfg = dnet.DiffusionNetConfig.from_train_config(
        tcfg, skin_dim=sizes["skin_pose"], tongue_dim=sizes["tongue_pose"], jaw_dim=sizes["jaw"], eye_dim=sizes["eye"],
        num_actors=len(data.actors), num_emotions=len(data.explicit_emotions), encoder=enc_cfg)
    consts_actor = _constants(data)
    # COMPUTE_DTYPE: bf16 mixed precision (params and optimizer state stay float32); not in model_def (inference: f32)
    net = dnet.DiffusionRNN(net_cfg, consts_actor, precision.compute_dtype(tcfg.get("COMPUTE_DTYPE", "float32")))
    a0 = data.actors[0]
    if len(data.actors) > 1:
        log.warning("several actors: the lip list and upper-face mask of %s are used for all (as the original)", a0)
    actor_data = ActorData.load(dcfg, a0)
    arts = [data.artifacts[a] for a in data.actors]
    consts = dl.build_loss_constants(
        skin_dim=sizes["skin_pose"], tongue_dim=sizes["tongue_pose"], jaw_dim=sizes["jaw"], eye_dim=sizes["eye"],
        scale_skin=[float(a.data_info.get("scale_skin", 1.0)) for a in arts],
        translate_skin=[list(a.data_info.get("translate_skin", [0.0, 0.0, 0.0])) for a in arts],
        shapes_matrix=[a.skin_shapes for a in arts], shapes_mean=[a.skin_mean for a in arts],
        lip_dist_verts=actor_data.lip_dist_verts, eye_dist_verts=actor_data.eye_dist_verts,
    )
    diffusion = gd.create_diffusion(int(tcfg.DIFFUSION_STEPS), tcfg.DIFFUSION_NOISE_SCHEDULE, tcfg.get("TIMESTEP_RESPACING", ""))
    model_def = {
        "network": "diffusion_rnn",
        "net_cfg": {k: v for k, v in dataclasses.asdict(net_cfg).items() if k != "encoder"},
        "encoder": encoder_to_dict(enc_cfg),
        "actors": list(data.actors),
        "explicit_emotions": list(data.explicit_emotions),
        "mean_geometry": consts_actor.mean_geometry.tolist(),
        "scales": {k: getattr(consts_actor, f"scale_{k}").tolist() for k in ("skin", "tongue", "jaw", "eye")},
        "translates": {k: [list(np.ravel(data.artifacts[a].data_info.get(f"translate_{k}", 0.0)).astype(float)) for a in data.actors]
                       for k in ("skin", "tongue")},
    }
    return DiffusionSetup(configs, data, train_clips, val, net, net_cfg, model_def, diffusion, consts,
                          lip_vertices_from_lists(actor_data.lip_dist_verts, actor_data.lip_size_verts), enc_params)


def net_from_model_def(model_def: dict) -> Any:
    cfg_dict = dict(model_def["net_cfg"])
    cfg_dict["streaming"] = tuple(cfg_dict["streaming"])
    cfg = dnet.DiffusionNetConfig(**cfg_dict, encoder=encoder_from_dict(model_def["encoder"]))
    s = model_def["scales"]
    consts = dnet.ActorConstants(np.asarray(model_def["mean_geometry"], np.float32), *(np.asarray(s[k], np.float32) for k in ("skin", "tongue", "jaw", "eye")))
    return dnet.DiffusionRNN(cfg, consts)


def init_params(setup: DiffusionSetup, key: jax.Array) -> Any:
    c = setup.net_cfg
    # Jitted: eager init runs every encoder/GRU op one by one (about 20 s of CPU for the tiny demo net).
    init = jax.jit(lambda k: setup.net.init(
        {"params": k}, jnp.zeros((1, 30, c.output_dim)), jnp.zeros((1,), jnp.int32), jnp.zeros((1, 8000)),
        jnp.zeros((1, c.num_actors)), jnp.zeros((1, c.num_emotions)))["params"])
    params = init(key)
    if setup.encoder_params is not None:
        params = replace_encoder_params(params, dnet.ENCODER_SCOPE, setup.encoder_params)
    return params


def make_optimizer(setup: DiffusionSetup, params: Any, batches_per_epoch: int) -> optax.GradientTransformation:
    from a2f_jax.models import freeze

    tcfg = setup.configs.train
    accum = int(tcfg.get("GRADIENT_ACCUMULATION_STEPS", 1))
    updates_per_epoch = max(-(-batches_per_epoch // accum), 1)
    schedule = optim.diffusion_schedule(float(tcfg.LEARNING_RATE), int(tcfg.NUM_EPOCHS), updates_per_epoch)
    labels = freeze.param_labels(params, dnet.frozen_param_predicate())
    # Accumulation outermost: between optimizer updates a micro-step only adds its gradients.
    opt = optim.accumulate(freeze.with_frozen(optax.adam(schedule), labels), accum, tcfg.get("GRAD_ACCUM_REDUCTION", "sum"))
    return opt, schedule, updates_per_epoch


def make_train_step(setup: DiffusionSetup, opt: optax.GradientTransformation, seed: int):
    tcfg = setup.configs.train
    weights = dict(tongue_weight=float(tcfg.TONGUE_WEIGHT), jaw_weight=float(tcfg.JAW_WEIGHT),
                   lip_dist_alpha=tcfg.get("LOSS_LIP_DIST_ALPHA", None), lip_dist_exp=float(tcfg.LOSS_LIP_DIST_EXP),
                   velocity_alpha=tcfg.get("LOSS_VELOCITY_ALPHA", None), exp_smooth_alpha=tcfg.get("LOSS_EXP_SMOOTH_ALPHA", None))
    net, diffusion = setup.net, setup.diffusion
    base_key = jax.random.PRNGKey(seed)
    padded = int(tcfg.BATCH_SIZE) > 1

    def step(state, consts, batch):
        rng = jax.random.fold_in(base_key, state["step"])
        k_t, k_noise, k_drop, k_mask = jax.random.split(rng, 4)
        y = batch["y"]
        k = dl.sample_timesteps(k_t, y.shape[0], diffusion.num_timesteps)
        noise = fast_random.noise_normal(k_noise, y.shape).astype(y.dtype)  # = jax.random.normal, bit for bit
        mask = batch["mask"] if padded else None
        audio_len = batch["audio_len"] if padded else None

        def loss_fn(params):
            params = dnet.stop_frozen_gradients(params)  # no backward pass through the frozen HuBERT front

            def model_fn(x_t, t):
                return net.apply({"params": params}, x_t, t, batch["audio"], batch["actor"], batch["emotion"], mask,
                                 audio_len, train=True, rngs={"dropout": k_drop, "mask": k_mask})

            terms, _ = dl.training_losses(model_fn, diffusion, y, k, noise, consts, batch["actor"], mask=mask, **weights)
            total = jnp.mean(terms["total"])
            return total, {f"losses/{n}": jnp.mean(v) for n, v in terms.items() if n != "total"}

        (total, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        params, opt_state = optim.apply_gradients(opt, grads, state["opt_state"], state["params"])
        metrics = dict(terms)
        metrics["loss"] = total
        return {"step": state["step"] + 1, "params": params, "opt_state": opt_state}, metrics

    return step


def predict_clip(setup: DiffusionSetup, params: Any, audio: np.ndarray, frames: int, actor: int, emotion: np.ndarray,
                 respacing: Any = "2", seed: int = 0, bucket: list[int] | None = None) -> np.ndarray:
    """Offline sampling of one clip → rescaled predictions [frames, C]: padded to a bucket (one program for many
    clips), with the real lengths passed so the padding changes nothing (causal GRU, length-aware encoder)."""
    T = bucket_for(frames, bucket or [120, 240, 360, 600, 1200, 2400])
    fps = setup.net_cfg.target_fps
    n = int(round(T / fps * 16000))
    a = np.zeros((1, n), np.float32)
    a[0, :min(len(audio), n)] = audio[:n]
    diff = gd.create_diffusion(setup.diffusion.original_num_steps, setup.configs.train.DIFFUSION_NOISE_SCHEDULE, respacing)
    noise = np.random.default_rng(seed).standard_normal((1, diff.num_timesteps + 1, T, setup.net_cfg.output_dim)).astype(np.float32)
    actor_vec = np.eye(setup.net_cfg.num_actors, dtype=np.float32)[actor][None]
    fn = _offline_fn(setup.net, diff)
    lengths = (np.asarray([min(len(audio), n)], np.int32), np.asarray([frames], np.int32))
    out = fn(params, jnp.asarray(a), jnp.asarray(actor_vec), jnp.asarray(emotion[None]), jnp.asarray(noise), *lengths)
    return np.asarray(out)[0, :frames]


_OFFLINE_CACHE: dict = {}


def _offline_fn(net: Any, diff: Any):
    key = (id(net), tuple(diff.timestep_map.tolist()))
    if key not in _OFFLINE_CACHE:
        _OFFLINE_CACHE[key] = jax.jit(lambda p, a, ac, e, nz, al, fl: dnet.sample_offline(
            net, p, diff, a, ac, e, nz, audio_lengths=al, frame_lengths=fl))
    return _OFFLINE_CACHE[key]


def unscale_skin(setup: DiffusionSetup, x: np.ndarray, actor: int) -> np.ndarray:
    """Rescaled skin slice → vertices [T, V, 3] in mesh units."""
    s = float(setup.model_def["scales"]["skin"][actor])
    t = np.asarray(setup.model_def["translates"]["skin"][actor], np.float32)
    return x[:, : setup.net_cfg.skin_dim].reshape(len(x), -1, 3) * s + t


def validation_metrics(setup: DiffusionSetup, params: Any) -> dict[str, float]:
    from a2f_jax.infer import metrics as M
    from a2f_jax.train.sampler_diffusion import DiffusionSampler

    sampler = DiffusionSampler(setup.data, setup.configs.train, setup.configs.dataset, 1, 0, clips=setup.val_clips, augment=False)
    lve, mve = [], []
    items = [sampler.clip_item(clip, None) for clip in setup.val_clips]
    # One padded length for all held-out clips: a single compiled sampling program per run.
    bucket = [bucket_for(max(len(y) for _, y in items), [120, 240, 360, 600, 1200, 2400])]
    for clip, (audio, y) in zip(setup.val_clips, items):
        actor = setup.data.actors.index(clip.actor)
        pred = predict_clip(setup, params, audio, len(y), actor, setup.data.emotion_vector(clip.shot_index), bucket=bucket)
        vp, vg = unscale_skin(setup, pred, actor), unscale_skin(setup, y, actor)
        if setup.lip_vertices:
            lve.append(M.lip_vertex_error(vp, vg, setup.lip_vertices))
        mve.append(M.mean_vertex_error(vp, vg))
    out = {"val/mean_vertex_error": float(np.mean(mve))}
    if lve:
        out["val/lip_vertex_error"] = float(np.mean(lve))
    log.info("validation: %s", " ".join(f"{k}={v:.4g}" for k, v in out.items()))
    return out


def train(configs: Any, resume: str | None = None, max_steps: int | None = None, devices: list | None = None,
          show_progress: bool = True) -> pathlib.Path:
    """Train the diffusion network; returns the run directory (see `lifecycle` for its states).

    Raises ConfigError/RunError before any run folder is made for a bad budget, batch size or --resume folder,
    and TrainingStopped (exit code 3) after SIGTERM/Ctrl-C."""
    sharding.maybe_initialize_distributed()
    logging.getLogger("absl").setLevel(logging.WARNING)
    tcfg = configs.train
    lifecycle.check_step_budget(tcfg, max_steps)
    resume_dir = lifecycle.check_resume(resume)
    mesh = sharding.make_mesh(devices)
    batch_size = sharding.check_batch_size(tcfg.BATCH_SIZE, mesh)
    setup = build_setup(configs)
    seed_data, seed_model = int(tcfg.get("RNG_SEED_DATASET", 43)), int(tcfg.get("RNG_SEED_TORCH", 42))
    sampler = DiffusionSampler(setup.data, tcfg, configs.dataset, batch_size, seed_data, clips=setup.train_clips)
    steps_per_epoch = sampler.batches_per_epoch
    total = lifecycle.total_steps(tcfg, steps_per_epoch, max_steps)
    if lifecycle.already_complete(resume_dir, total):
        return resume_dir
    run_dir = lifecycle.open_run(configs, setup.data.artifacts, resume_dir, lambda d: write_run_metadata(setup, d), total)
    with lifecycle.recording_failure(run_dir):
        log.info("%s; compute dtype %s", backend_ops.describe_decision(), tcfg.get("COMPUTE_DTYPE", "float32"))
        params = init_params(setup, jax.random.PRNGKey(seed_model))
        opt, schedule, updates_per_epoch = make_optimizer(setup, params, steps_per_epoch)
        state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": opt.init(params)}
        ckpt, state, start = lifecycle.restore(run_dir, tcfg, state, resume_dir is not None)
        session = lifecycle.begin_session(run_dir, configs, max_steps, start, total, resume_dir is not None)
        log.info("diffusion: %d clips, %d steps/epoch, %d steps, batch %d", len(setup.train_clips), steps_per_epoch, total, batch_size)
        state = sharding.replicate(state, mesh)
        consts = sharding.replicate(setup.consts, mesh)
        jitted = jax.jit(make_train_step(setup, opt, seed_model), donate_argnums=(0,))
        accum = int(tcfg.get("GRADIENT_ACCUMULATION_STEPS", 1))

        def extra(step: int) -> dict:
            # With every log line: mean host ms per batch and ms the loop waited for it (the input pipeline).
            return {"learning_rate": float(schedule(step // max(accum, 1))), **feed.take_stats()}

        validate = (lambda st, _s: validation_metrics(setup, jax.device_get(st["params"]))) if setup.val_clips else None
        settings = LoopSettings(total, steps_per_epoch, int(tcfg.get("LOG_PERIOD", 10)), int(tcfg.get("CHECKPOINT_PERIOD", 1000)),
                                int(tcfg.get("VALIDATION_PERIOD", 0)) if validate else 0, show_progress)
        # This process's rows of each step's batch, built two steps ahead and placed on the devices sharded; the
        # worker stops at the end, on errors and on interruption.
        with prefetch.sharded_feed(sampler.batch, mesh, batch_size, start, total) as feed:
            lifecycle.run_and_close(session, ckpt, state, lambda s, b: jitted(s, consts, b), feed, settings,
                                    export=lambda st: save_params(run_dir / PARAMS_FILE, jax.device_get(st["params"])),
                                    validate=validate, extra_scalars=extra)
    return run_dir


def write_run_metadata(setup: DiffusionSetup, run_dir: pathlib.Path) -> None:
    """`deploy/network_info.json`, `network_info_full.json`, `deploy/trt_info.json`, `model_def.json` (spec §5.3)."""
    from a2f_jax.train.dataset import emotion_vector

    tcfg, icfg, data, c = setup.configs.train, setup.configs.inference, setup.data, setup.net_cfg
    left, block, right = c.streaming
    default = emotion_vector(tcfg.get("DEFAULT_SHOT_EMOTION_NAME", "neutral"), data.explicit_emotions).tolist()
    params = {
        "emotions": list(data.explicit_emotions), "default_emotion": default, "identities": list(data.actors),
        "skin_size": c.skin_dim, "tongue_size": c.tongue_dim, "jaw_size": c.jaw_dim, "eyes_size": c.eye_dim,
        "num_diffusion_steps": int(icfg.get("NUM_DIFFUSION_STEPS", 2) or 2), "num_gru_layers": c.num_gru_layers,
        "gru_latent_dim": c.gru_feature_dim, "num_frames_left_truncate": left, "num_frames_right_truncate": right,
        "num_frames_center": block,
    }
    info = {"id": {"type": "diffusion", "actor": data.actors[0] if len(data.actors) == 1 else "multi",
                   "version": str(tcfg.get("NETWORK_VERSION", "0.1")), "output": "geometry"},
            "params": params,
            "audio_params": {"buffer_len": 16000, "padding_left": 16000, "padding_right": 16000, "samplerate": 16000}}
    full = {"id": info["id"], "name": tcfg.get("NETWORK_NAME", "diffusion_rnn"),
            "params": {**tcfg.to_dict(), **params, "actor_names": list(data.actors)},
            "audio_params": info["audio_params"], "default_emotion": default}
    e, a, d = len(data.explicit_emotions), len(data.actors), c.output_dim
    steps = params["num_diffusion_steps"]
    trt = {"window": "b,16000", "identity": f"b,{a}", "emotion": f"b,30,{e}", "input_latents": f"{steps},{c.num_gru_layers},b,{c.gru_feature_dim}",
           "noise": f"b,{steps + 1},60,{d}", "estimated_trt_builder_time": 150, "MAX_BATCH_SIZE": 8, "OPT_BATCH_SIZE": 3}
    atomic_write_json(run_dir / "deploy" / "network_info.json", info)
    atomic_write_json(run_dir / "network_info_full.json", json.loads(json.dumps(full, default=str)))
    atomic_write_json(run_dir / "deploy" / "trt_info.json", trt)
    atomic_write_json(run_dir / "model_def.json", setup.model_def)


def load_run(run_dir: str | pathlib.Path) -> tuple[Any, Any, dict]:
    """(network, params, model_def) of a finished diffusion run."""
    run_dir = pathlib.Path(run_dir)
    model_def = json.loads((run_dir / "model_def.json").read_text())
    params = jax.tree_util.tree_map(jnp.asarray, load_params(run_dir / PARAMS_FILE))
    return net_from_model_def(model_def), params, model_def
