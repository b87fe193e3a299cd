"""Regression trainer (`conv_w2v_autocorr`): data, network, optimizer, jitted step, run folder.

The loop itself is `a2f_jax.train.loop.run_loop`; this module builds what it needs and writes the
run folder of spec §5.3 (orbax checkpoints in place of `weights.pth`).
"""

from __future__ import annotations

import dataclasses
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
from a2f_jax.models import emotion_db as emo_db_lib
from a2f_jax.train import lifecycle, losses, optim, regression_model, sharding
from a2f_jax.train.dataset import TrainingData, build_clips, emotion_vector, load_training_data
from a2f_jax.train.loop import LoopSettings
from a2f_jax.train.sampler_regression import RegressionSampler, gather_batch

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RegressionSetup:
    """Everything built from the configs before the first step (also used by inference and tests)."""

    configs: Any
    data: TrainingData
    train_clips: list
    val_clips: list
    model: Any  # a2f_jax.models.regression network definition
    model_def: dict  # JSON-able description that rebuilds `model` (saved in the run dir)
    loss_cfg: losses.RegressionLossConfig
    geometry: dict
    lip_dist_weights: np.ndarray | None  # per shot, [num_shots]
    encoder_params: Any | None  # pretrained encoder params (None: random init)
    lip_vertices: list[int]  # lip vertices of the dataset's lists (validation lip vertex error)
    phonemes: Any = None  # phonemes.PhonemeSetup when phoneme supervision is on (spec §7), else None


def _split_validation(data: TrainingData, tcfg: Any, dcfg: Any) -> tuple[list, list]:
    val = build_clips(tcfg.get("VALIDATION_CLIPS", None) or [], data, dcfg, key="VALIDATION_CLIPS")
    held = {(c.actor, c.shot) for c in val}
    return [c for c in data.clips if (c.actor, c.shot) not in held], val


def build_setup(configs: Any) -> RegressionSetup:
    """Read data and artifacts, build the network definition and the loss inputs."""
    from a2f_jax.data.actor import ActorData

    tcfg, dcfg = configs.train, configs.dataset
    actors = list(dcfg.ACTOR_NAMES)
    if len(actors) != 1:
        raise ConfigError(describe("config_dataset", "ACTOR_NAMES", "exactly one actor for the regression network", repr(actors)))
    data = load_training_data(tcfg, dcfg)
    train_clips, val_clips = _split_validation(data, tcfg, dcfg)
    art = data.artifacts[actors[0]]
    from a2f_jax.train.phonemes import build_phoneme_setup

    ph = build_phoneme_setup(tcfg, train_clips)
    model, model_def, encoder_params = regression_model.from_configs(
        tcfg, data.channel_sizes, data.explicit_emotions, None if ph is None else ph.num_phonemes)
    if ph is not None and not model.net.cfg.use_phoneme_forcing:
        log.warning("phoneme supervision is off: the network has no wav2vec features for the phoneme head")
        ph = None
        model, model_def, encoder_params = regression_model.from_configs(tcfg, data.channel_sizes, data.explicit_emotions)
    actor_data = ActorData.load(dcfg, actors[0])
    geometry = losses.prepare_loss_geometry(
        art.skin_shapes, art.skin_mean,
        lip_dist_verts=actor_data.lip_dist_verts, lip_size_verts=actor_data.lip_size_verts,
        eye_dist_verts=actor_data.eye_dist_verts, source=f"vertex lists of {actors[0]}",
    )
    weights = losses.emotion_sample_weights([s.emotion for s in data.shots], tcfg.get("LOSS_LIP_DIST_EMO_WEIGHTS", None))
    from a2f_jax.infer.metrics import lip_vertices_from_lists

    return RegressionSetup(configs, data, train_clips, val_clips, model, model_def,
                           losses.RegressionLossConfig.from_train_config(tcfg), geometry, weights, encoder_params,
                           lip_vertices_from_lists(actor_data.lip_dist_verts, actor_data.lip_size_verts), ph)


def param_labels(params: Any, freeze_encoder: bool) -> Any:
    """"emo" for the implicit database, "frozen" for the encoder when frozen, "net" otherwise."""
    def label(path, _leaf):
        keys = [getattr(k, "key", getattr(k, "name", str(k))) for k in path]
        if keys[0] == "emo_db":
            return "emo"
        if freeze_encoder and regression_model.ENCODER_SCOPE in keys:
            return "frozen"
        return "net"

    return jax.tree_util.tree_map_with_path(label, params)


def init_state(setup: RegressionSetup, steps_per_epoch: int, seed: int) -> tuple[dict, optax.GradientTransformation]:
    tcfg = setup.configs.train
    key = jax.random.PRNGKey(seed)
    k_net, k_emo = jax.random.split(key)
    net_params = setup.model.init_params(k_net)
    if setup.encoder_params is not None:
        net_params = setup.model.with_encoder_params(net_params, setup.encoder_params)
    hp = tcfg.NETWORK_HYPER_PARAMS
    emo = emo_db_lib.init_emotion_db(k_emo, setup.data.num_frames_total, int(hp.get("implicit_emotion_len", 16)),
                                     float(tcfg.get("EMO_INIT_SIGMA", 0.01)))
    params = {"net": net_params, "emo_db": emo}
    labels = param_labels(params, bool(hp.get("w2v_freeze", True)))
    opt = optim.regression_optimizer(float(tcfg.LEARNING_RATE), float(tcfg.get("EMO_LR_MULT", 1.0)),
                                     float(tcfg.get("LR_STEP_GAMMA", 1.0)), steps_per_epoch, labels)
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": opt.init(params),
             "norm": losses.init_normalizer_state()}
    return state, opt


def make_train_step(setup: RegressionSetup, opt: optax.GradientTransformation, steps_per_epoch: int,
                    num_epochs: int, window: int, seed: int):
    """The pure step: (state, device dataset, batch index) -> (state, metrics)."""
    ks = setup.data.channel_sizes.get("skin_coeffs", 0)
    geometry = jax.tree_util.tree_map(jnp.asarray, setup.geometry)
    emo_w = None if setup.lip_dist_weights is None else jnp.asarray(setup.lip_dist_weights)
    base_key = jax.random.PRNGKey(seed)
    schedule = optim.regression_schedule(float(setup.configs.train.LEARNING_RATE),
                                         float(setup.configs.train.get("LR_STEP_GAMMA", 1.0)), steps_per_epoch)
    model, loss_cfg = setup.model, setup.loss_cfg
    ph = setup.phonemes
    ph_weights = None if ph is None else [jnp.asarray(w) for w in ph.class_weights()]
    ph_window = 25 if ph is None else ph.window

    def step(state, dev, idx):
        batch = gather_batch(dev, idx, window, ph_window)
        rng = jax.random.fold_in(base_key, state["step"])
        exponent = losses.loss_exponent(state["step"], steps_per_epoch, num_epochs)

        def loss_fn(params):
            implicit = emo_db_lib.lookup(params["emo_db"], idx["global_frame_idx"])
            emotion = jnp.concatenate([implicit, idx["explicit_emo"]], axis=-1)
            ph_kw = {}
            if ph is None:
                y_pred = model.apply_train(params["net"], batch["x"], emotion, idx["x_norm_factor"], rng)
            else:
                y_pred, logits = model.apply_train_phonemes(params["net"], batch["x"], emotion, idx["x_norm_factor"], rng)
                ph_kw = {"phoneme_logits": logits, "phoneme_targets": batch["phonemes"],
                         "phoneme_masks": [idx["ph_lang"] == i for i in range(len(ph.langs))],
                         "phoneme_class_weights": ph_weights}
            total, terms = losses.regression_loss(
                y_pred, batch["y"], implicit, batch["x"], loss_cfg, ks, state["norm"], exponent, geometry,
                lip_dist_weights=None if emo_w is None else emo_w[idx["shot_index"]], **ph_kw,
            )
            return total, terms

        (total, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        params, opt_state = optim.apply_gradients(opt, grads, state["opt_state"], state["params"])
        new_state = {"step": state["step"] + 1, "params": params, "opt_state": opt_state,
                     "norm": losses.next_normalizer_state(state["norm"], terms)}
        metrics = dict(terms)
        metrics["loss"] = total
        metrics["learning_rate"] = schedule(state["step"])
        return new_state, metrics

    return step


def predict_clips(setup: RegressionSetup, params: Any, clips: list, batch_size: int = 64) -> list[np.ndarray]:
    """Eval-mode predictions [len, D] for whole clips (no timeshift), frame by frame."""
    tcfg, dcfg = setup.configs.train, setup.configs.dataset
    sampler = RegressionSampler(setup.data, tcfg, dcfg, batch_size=batch_size, seed=0, clips=clips, shuffle=False,
                                noise_bank_size=1)
    window = sampler.window

    @jax.jit
    def run(p, dev, idx):
        batch = gather_batch(dev, idx, window)
        implicit = emo_db_lib.lookup(p["emo_db"], idx["global_frame_idx"])
        emotion = jnp.concatenate([implicit, idx["explicit_emo"]], axis=-1)
        return setup.model.apply_eval(p["net"], batch["x"], emotion, idx["x_norm_factor"])

    outs = []
    for k in range(sampler.batches_per_epoch):
        outs.append(np.asarray(run(params, sampler.device, sampler.batch_index(k))))
    pred = np.concatenate(outs)[: sampler.num_samples]  # [N, S, D]
    result, start = [], 0
    for clip in clips:
        n = clip.length - sampler.seq_len + 1
        seqs = pred[start:start + n]
        result.append(np.concatenate([seqs[:, 0], seqs[-1, 1:]], axis=0))  # frame f from the sample starting at f
        start += n
    return result


def validation_metrics(setup: RegressionSetup, params: Any) -> dict[str, float]:
    """R² (coefficient space), lip vertex error and lip-distance MAE over the held-out clips."""
    from a2f_jax.infer import metrics as M

    art = setup.data.artifacts[setup.data.actors[0]]
    ks = setup.data.channel_sizes.get("skin_coeffs", 0)
    preds = predict_clips(setup, params, setup.val_clips)
    gts = [setup.data.targets[c.shot_index][c.first:c.last + 1] for c in setup.val_clips]
    pred_all, gt_all = np.concatenate(preds), np.concatenate(gts)
    out = {"val/r2": float(M.r2(pred_all, gt_all))}
    lip = setup.geometry.get("lip_dist")
    if ks and lip is not None:
        basis = art.skin_shapes.reshape(ks, -1)
        verts = lambda c: (c[:, :ks] @ basis).reshape(len(c), -1, 3) + art.skin_mean  # noqa: E731
        lip_idx = setup.lip_vertices
        lve, mae = [], []
        for p, g in zip(preds, gts):
            vp, vg = verts(p), verts(g)
            if lip_idx:
                lve.append(M.lip_vertex_error(vp, vg, lip_idx))
            mae.append(float(np.mean(np.abs((p[:, :ks] @ lip["basis"] + lip["offset"]) - (g[:, :ks] @ lip["basis"] + lip["offset"])))))
        if lve:
            out["val/lip_vertex_error"] = float(np.mean(lve))
        out["val/lip_dist_mae"] = float(np.mean(mae))
    log.info("validation: %s", " ".join(f"{k}={v:.4g}" for k, v in out.items()))
    return out


def train(configs: Any, resume: str | None = None, max_steps: int | None = None, devices: list | None = None,
          show_progress: bool = True) -> pathlib.Path:
    """Train the regression network; returns the run directory (see `lifecycle` for its states).

    Raises ConfigError/RunError before any run folder is made for a bad budget, batch size or --resume folder,
    and TrainingStopped (exit code 3) after SIGTERM/Ctrl-C."""
    sharding.maybe_initialize_distributed()
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every file it writes at INFO
    tcfg = configs.train
    lifecycle.check_step_budget(tcfg, max_steps)
    resume_dir = lifecycle.check_resume(resume)
    mesh = sharding.make_mesh(devices)
    batch_size = sharding.check_batch_size(tcfg.BATCH_SIZE, mesh)
    setup = build_setup(configs)
    seed_data, seed_model = int(tcfg.get("RNG_SEED_DATASET", 43)), int(tcfg.get("RNG_SEED_TORCH", 42))
    sampler = RegressionSampler(setup.data, tcfg, configs.dataset, batch_size, seed_data, clips=setup.train_clips,
                                phonemes=setup.phonemes)
    steps_per_epoch, num_epochs = sampler.batches_per_epoch, int(tcfg.NUM_EPOCHS)
    total = lifecycle.total_steps(tcfg, steps_per_epoch, max_steps)
    log.info("regression: %d samples, %d steps/epoch, %d steps; device dataset %.1f MB", sampler.num_samples,
             steps_per_epoch, total, sampler.host_bytes / 2**20)
    if lifecycle.already_complete(resume_dir, total):
        return resume_dir
    run_dir = lifecycle.open_run(configs, setup.data.artifacts, resume_dir, lambda d: write_run_metadata(setup, d), total)
    with lifecycle.recording_failure(run_dir):
        log.info("%s; compute dtype %s", backend_ops.describe_decision(), tcfg.get("COMPUTE_DTYPE", "float32"))
        state, opt = init_state(setup, steps_per_epoch, seed_model)
        ckpt, state, start = lifecycle.restore(run_dir, tcfg, state, resume_dir is not None)
        session = lifecycle.begin_session(run_dir, configs, max_steps, start, total, resume_dir is not None)
        state = sharding.replicate(state, mesh)
        dev = sharding.replicate(sampler.device, mesh)
        step_fn = make_train_step(setup, opt, steps_per_epoch, num_epochs, sampler.window, seed_model)
        jitted = jax.jit(step_fn, donate_argnums=(0,))

        def make_batch(step: int):
            return sharding.shard_batch(sampler.batch_index(step), mesh)

        validate = (lambda st, _s: validation_metrics(setup, jax.device_get(st["params"]))) if setup.val_clips else None
        settings = LoopSettings(total, steps_per_epoch, int(tcfg.get("LOG_PERIOD", 50)), int(tcfg.get("CHECKPOINT_PERIOD", 1000)),
                                int(tcfg.get("VALIDATION_PERIOD", 0)) if validate else 0, show_progress)
        lifecycle.run_and_close(session, ckpt, state, lambda s, b: jitted(s, dev, b), make_batch, settings,
                                export=lambda st: export_results(setup, jax.device_get(st["params"]), run_dir),
                                validate=validate)
    return run_dir


def _network_info(setup: RegressionSetup) -> dict:
    tcfg, data = setup.configs.train, setup.data
    art = data.artifacts[data.actors[0]]
    default = emotion_vector(tcfg.get("DEFAULT_SHOT_EMOTION_NAME", "neutral"), data.explicit_emotions)
    return {
        "id": {"type": "regression", "actor": data.actors[0] if len(data.actors) == 1 else "multi",
               "version": str(tcfg.get("NETWORK_VERSION", "0.1")), "output": "geometry"},
        "params": {
            "implicit_emotion_len": int(tcfg.NETWORK_HYPER_PARAMS.get("implicit_emotion_len", 16)),
            "explicit_emotions": list(data.explicit_emotions),
            "default_emotion": [float(v) for v in default],
            "identities": list(data.actors),
            "num_shapes_skin": art.num_skin_coeffs, "num_verts_skin": int(art.skin_mean.shape[0]),
            "num_shapes_tongue": art.num_tongue_coeffs, "num_verts_tongue": int(art.tongue_mean.shape[0]),
            "result_jaw_size": art.jaw_size, "result_eyes_size": art.eye_size,
        },
        "audio_params": dict(tcfg.AUDIO_PARAMS),
    }


def write_run_metadata(setup: RegressionSetup, run_dir: pathlib.Path) -> None:
    """`deploy/network_info.json`, `network_info_full.json`, `deploy/trt_info.json`, `model_def.json`."""
    info = _network_info(setup)
    tcfg = setup.configs.train
    full = {"id": info["id"], "name": tcfg.get("NETWORK_NAME", "conv_w2v_autocorr"),
            "params": {**tcfg.NETWORK_HYPER_PARAMS.to_dict(), **{k: v for k, v in info["params"].items() if k != "default_emotion"}},
            "audio_params": info["audio_params"], "default_emotion": info["params"]["default_emotion"]}
    e = len(setup.data.explicit_emotions) + info["params"]["implicit_emotion_len"]
    trt = {"input": "b,1,8320", "emotion": f"b,1,{e}", "extra": "--memPoolSize=tacticSharedMem:0.046875"}
    atomic_write_json(run_dir / "deploy" / "network_info.json", info)
    atomic_write_json(run_dir / "network_info_full.json", full)
    atomic_write_json(run_dir / "deploy" / "trt_info.json", trt)
    atomic_write_json(run_dir / "model_def.json", setup.model_def)


def export_results(setup: RegressionSetup, params: Any, run_dir: pathlib.Path) -> None:
    """End-of-training exports: the implicit emotion database (npz in deploy/, pkl in the run root)."""
    shots = [(s.id, s.start_global, s.length) for s in setup.data.shots]
    db = emo_db_lib.from_shots(np.asarray(params["emo_db"]), shots)
    if setup.configs.train.get("COMPACTIFY_IMPLICIT_EMO_DB", False):
        db.compactify([(setup.data.shots[c.shot_index].id, c.first, c.last) for c in setup.data.clips])
    db.save_npz(run_dir / "deploy" / "implicit_emo_db.npz")
    db.save_pkl(run_dir / "implicit_emo_db.pkl")
    save_params(run_dir / PARAMS_FILE, params)


PARAMS_FILE = "params.msgpack"  # final parameters {"net", "emo_db"}, self-contained (no optimizer state)


def save_params(path: pathlib.Path, params: Any) -> None:
    from flax import serialization

    from a2f_jax.io_utils import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(serialization.msgpack_serialize(jax.tree_util.tree_map(np.asarray, params)))


def load_params(path: pathlib.Path) -> Any:
    """The parameter tree of a params.msgpack; RunError when the file is missing or not a decodable tree."""
    from flax import serialization

    from a2f_jax.errors import RunError

    path = pathlib.Path(path)
    if not path.is_file():
        raise RunError(describe(path, None, "the parameters written at the end of training", "no such file"))
    data = path.read_bytes()
    try:
        params = serialization.msgpack_restore(data)
    except (ValueError, TypeError) as exc:  # msgpack: truncated ("incomplete input") or trailing bytes
        raise RunError(describe(path, None, "a flax msgpack parameter tree", f"{len(data)} undecodable bytes ({exc})")) from exc
    if not isinstance(params, dict):
        raise RunError(describe(path, None, "a flax msgpack parameter tree", f"a {type(params).__name__}"))
    return params
