"""The regression network `conv_w2v_autocorr` behind the networks interface (`docs/networks.md`).

`Network` is the Flax module (`a2f_jax.models.regression.ConvW2VAutocorr`) with its model_def and the pure apply
functions the train step, validation and inference call. `Setup` is what training builds from the configs before
the first step: the data, the network, the loss inputs. The run folder is described in `a2f_jax.runs`
(orbax checkpoints in place of the original's `weights.pth`).
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

from a2f_jax import runs
from a2f_jax.data.actor import ActorData, ActorSettings
from a2f_jax.deploy import onnx_regression
from a2f_jax.errors import ConfigError, describe
from a2f_jax.infer import metrics as M
from a2f_jax.models import emotion_db as emo_db_lib
from a2f_jax.models import freeze
from a2f_jax.models import regression as reg
from a2f_jax.models.precision import compute_dtype as resolve_dtype
from a2f_jax.networks.common import Feed, log_validation, split_validation
from a2f_jax.train import losses, optim, sharding
from a2f_jax.train.dataset import TrainingData, emotion_vector, load_training_data
from a2f_jax.train.encoder_setup import encoder_config, replace_encoder_params
from a2f_jax.train.phonemes import build_phoneme_setup
from a2f_jax.train.sampler_regression import RegressionSampler, RegressionSamplerSettings, gather_batch

log = logging.getLogger(__name__)

NAME = "regression"
ENCODER_SCOPE = "w2v"  # the encoder's Linen scope inside ConvW2VAutocorr
TARGET_CHANNELS = ("skin_coeffs", "tongue_coeffs", "jaw", "eye")  # the network's output order


# --------------------------------------------------------------------------------------------- network


@dataclasses.dataclass
class Network:
    """ConvW2VAutocorr, the model_def that rebuilds it, and the pure functions the step, validation and export call."""

    net: reg.ConvW2VAutocorr
    model_def: dict
    window: int = 8320  # audio samples per frame window (AUDIO_PARAMS buffer_len)

    def init_params(self, key: jax.Array) -> Any:
        return reg.init_params(self.net, key, buffer_len=self.window)

    def with_encoder_params(self, params: Any, encoder_params: Any) -> Any:
        """Replace the random encoder weights by pretrained ones (only the layers the network keeps)."""
        return replace_encoder_params(params, ENCODER_SCOPE, encoder_params)

    def apply_train(self, params: Any, audio: jax.Array, emotion: jax.Array, norm: jax.Array, rng: jax.Array) -> jax.Array:
        k_drop, k_mask = jax.random.split(rng)
        out, _ = self.net.apply({"params": params}, audio, emotion, norm, train=True, with_phonemes=False,
                                rngs={"dropout": k_drop, "mask": k_mask})
        return out

    def apply_train_phonemes(self, params: Any, audio: jax.Array, emotion: jax.Array, norm: jax.Array,
                             rng: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
        """Train-mode forward with the phoneme head: (out, per-language logits [B, S, 25, P_lang]).
        Same dropout/mask keys as `apply_train`."""
        k_drop, k_mask = jax.random.split(rng)
        out, aux = self.net.apply({"params": params}, audio, emotion, norm, train=True, with_phonemes=True,
                                  rngs={"dropout": k_drop, "mask": k_mask})
        return out, list(aux.get("phonemes", []))

    def apply_eval(self, params: Any, audio: jax.Array, emotion: jax.Array, norm: jax.Array | None) -> jax.Array:
        out, _ = self.net.apply({"params": params}, audio, emotion, norm, train=False, with_phonemes=False)
        return out


def network_params(tcfg: Any, channel_sizes: Mapping[str, int], explicit_emotions: list[str],
                   num_phonemes: Mapping[str, int] | None = None) -> dict:
    """The original's network params: NETWORK_HYPER_PARAMS ∪ sizes (network_info_full.json "params"), plus
    `num_phonemes` ({lang: vocab size}) only when phoneme supervision is on.

    TARGET_CHANNELS must be all four channels in the network's output order: the original reads every one of
    them here, and a dataset without tongue, jaw or eye data gets zero placeholders of the default sizes from
    preprocessing instead of an empty head. A subset would train a network that the deploy bundle (whose
    network_info carries the preprocessed sizes) no longer matches, so it is refused before training.
    """
    if tuple(channel_sizes) != TARGET_CHANNELS:
        raise ConfigError(describe("config_train", "TARGET_CHANNELS", f"{list(TARGET_CHANNELS)} for conv_w2v_autocorr "
                                   "(its output order; missing tongue/jaw/eye data become zero placeholders)",
                                   repr(list(channel_sizes))))
    hp = tcfg.NETWORK_HYPER_PARAMS.to_dict() if hasattr(tcfg.NETWORK_HYPER_PARAMS, "to_dict") else dict(tcfg.NETWORK_HYPER_PARAMS)
    extra = {"num_phonemes": {str(k): int(v) for k, v in num_phonemes.items()}} if num_phonemes else {}
    return {
        **hp,
        "explicit_emotions": list(explicit_emotions),
        "num_shapes_skin": int(channel_sizes.get("skin_coeffs", 0)),
        "num_shapes_tongue": int(channel_sizes.get("tongue_coeffs", 0)),
        "result_jaw_size": int(channel_sizes.get("jaw", 0)),
        "result_eyes_size": int(channel_sizes.get("eye", 0)),
        **extra,
    }


def build_network(params: Mapping[str, Any], encoder_cfg: Any, window: int = 8320,
                  compute_dtype: str = "float32") -> Network:
    """The network of `params` (`network_params`). `compute_dtype`: "float32" or "bfloat16" (mixed precision,
    `models.precision`); parameters stay float32 and the model_def does not record it (inference runs float32)."""
    net = reg.ConvW2VAutocorr(reg.RegressionNetConfig.from_network_params(params, encoder_cfg), resolve_dtype(compute_dtype))
    model_def = {"network": reg.MODEL_DEF_NETWORK, "params": dict(params), "encoder": encoder_cfg.to_dict(),
                 "window": int(window)}
    return Network(net, model_def, int(window))


def network_from_configs(tcfg: Any, channel_sizes: Mapping[str, int], explicit_emotions: list[str],
                         num_phonemes: Mapping[str, int] | None = None) -> tuple[Network, Any]:
    """(network, pretrained encoder params or None) from the train config; the network computes in COMPUTE_DTYPE."""
    resolve_dtype(tcfg.COMPUTE_DTYPE)  # a bad value fails before the encoder snapshot is read
    enc_cfg, enc_params = encoder_config(tcfg, "regression", int(tcfg.NETWORK_HYPER_PARAMS.w2v_num_layers))
    params = network_params(tcfg, channel_sizes, explicit_emotions, num_phonemes)
    return build_network(params, enc_cfg, int(tcfg.AUDIO_PARAMS["buffer_len"]), tcfg.COMPUTE_DTYPE), enc_params


def from_model_def(model_def: Mapping[str, Any]) -> Network:
    """Rebuild (float32) the network saved in a run's `model_def.json`."""
    return Network(reg.net_from_model_def(model_def), dict(model_def), int(model_def["window"]))


# ------------------------------------------------------------------------------------------ training setup


@dataclasses.dataclass
class Setup:
    """Everything training builds from the configs before the first step (also used by validation and tests)."""

    configs: Any
    data: TrainingData
    train_clips: list
    val_clips: list
    network: Network
    loss_cfg: losses.RegressionLossConfig
    geometry: dict
    lip_dist_weights: np.ndarray | None  # per shot, [num_shots]
    encoder_params: Any | None  # pretrained encoder params (None: random init)
    lip_vertices: list[int]  # lip vertices of the dataset's lists (validation lip vertex error)
    phonemes: Any = None  # phonemes.PhonemeSetup when phoneme supervision is on, else None

    @property
    def model_def(self) -> dict:
        return self.network.model_def


def build(configs: Any) -> Setup:
    """Read the data and artifacts (one actor), build the network and the loss inputs."""
    tcfg, dcfg = configs.train, configs.dataset
    actors = list(dcfg.ACTOR_NAMES)
    if len(actors) != 1:
        raise ConfigError(describe("config_dataset", "ACTOR_NAMES", "exactly one actor for the regression network", repr(actors)))
    data = load_training_data(tcfg, dcfg)
    train_clips, val_clips = split_validation(data, tcfg, dcfg)
    art = data.artifacts[actors[0]]
    ph = build_phoneme_setup(tcfg, train_clips)
    network, encoder_params = network_from_configs(tcfg, data.channel_sizes, data.explicit_emotions,
                                                   None if ph is None else ph.num_phonemes)
    if ph is not None and not network.net.cfg.use_phoneme_forcing:
        log.warning("phoneme supervision is off: the network has no wav2vec features for the phoneme head")
        ph = None
        network, encoder_params = network_from_configs(tcfg, data.channel_sizes, data.explicit_emotions)
    actor_data = ActorData.load(ActorSettings.from_configs(dcfg, actors[0]))
    geometry = losses.prepare_loss_geometry(
        art.skin_shapes, art.skin_mean,
        lip_dist_verts=actor_data.lip_dist_verts, lip_size_verts=actor_data.lip_size_verts,
        eye_dist_verts=actor_data.eye_dist_verts, source=f"vertex lists of {actors[0]}",
    )
    weights = losses.emotion_sample_weights([s.emotion for s in data.shots], tcfg.LOSS_LIP_DIST_EMO_WEIGHTS)
    return Setup(configs, data, train_clips, val_clips, network, losses.RegressionLossConfig.from_train_config(tcfg),
                 geometry, weights, encoder_params,
                 M.lip_vertices_from_lists(actor_data.lip_dist_verts, actor_data.lip_size_verts), ph)


def make_sampler(setup: Setup, batch_size: int, seed: int) -> RegressionSampler:
    """The training sampler: the whole dataset on the devices, a batch is a set of indices into it."""
    sampler = RegressionSampler(setup.data, RegressionSamplerSettings.from_train_config(setup.configs.train), batch_size, seed,
                                clips=setup.train_clips, phonemes=setup.phonemes)
    log.info("regression: %d samples, %d steps/epoch; device dataset %.1f MB", sampler.num_samples,
             sampler.batches_per_epoch, sampler.host_bytes / 2**20)
    return sampler


@contextlib.contextmanager
def feed(setup: Setup, sampler: RegressionSampler, mesh: Any, start: int, stop: int) -> Iterator[Feed]:
    """Batches `{"dataset": the device dataset (placed once), "index": the step's indices}`: per step only the
    small index arrays travel to the devices."""
    dataset = sharding.replicate(sampler.device, mesh)
    yield Feed(lambda step: {"dataset": dataset, "index": sharding.shard_batch(sampler.batch_index(step), mesh)})


def param_labels(params: Any, freeze_encoder: bool) -> Any:
    """`models.freeze` labels of {"net", "emo_db"}: "frozen" for the encoder when frozen (w2v_freeze), "emo" for
    the implicit database, "net" otherwise."""
    frozen = freeze.encoder_frozen("whole_encoder" if freeze_encoder else "none", ("net", ENCODER_SCOPE))
    return freeze.param_labels(params, frozen, lambda path: "emo" if path[0] == "emo_db" else "net")


def init(setup: Setup, key: jax.Array) -> dict:
    """{"net": network params (pretrained encoder weights copied in), "emo_db": the implicit emotion database}."""
    tcfg = setup.configs.train
    k_net, k_emo = jax.random.split(key)
    net_params = setup.network.init_params(k_net)
    if setup.encoder_params is not None:
        net_params = setup.network.with_encoder_params(net_params, setup.encoder_params)
    emo = emo_db_lib.init_emotion_db(k_emo, setup.data.num_frames_total,
                                     int(tcfg.NETWORK_HYPER_PARAMS.implicit_emotion_len), float(tcfg.EMO_INIT_SIGMA))
    return {"net": net_params, "emo_db": emo}


def make_optimizer(setup: Setup, params: Any, steps_per_epoch: int) -> optim.Optimizer:
    """Adam per group (network, emotion database × EMO_LR_MULT), decayed by LR_STEP_GAMMA per epoch."""
    tcfg = setup.configs.train
    labels = param_labels(params, bool(tcfg.NETWORK_HYPER_PARAMS.w2v_freeze))
    lr, gamma = float(tcfg.LEARNING_RATE), float(tcfg.LR_STEP_GAMMA)
    tx = optim.regression_optimizer(lr, float(tcfg.EMO_LR_MULT), gamma, steps_per_epoch, labels)
    schedule = optim.regression_schedule(lr, gamma, steps_per_epoch)
    return optim.Optimizer(tx, lambda step: float(schedule(step)))


def init_state(setup: Setup, params: Any, tx: Any) -> dict:
    return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params),
            "norm": losses.init_normalizer_state()}


def make_train_step(setup: Setup, tx: Any, steps_per_epoch: int, *, num_epochs: int | None = None,
                    seed: int | None = None):
    """The pure step `(state, batch) -> (state, metrics)`; `batch` is what `feed` yields. `num_epochs` (of the loss
    exponent schedule) and `seed` (dropout keys) default to the train config's NUM_EPOCHS and RNG_SEED_TORCH."""
    tcfg = setup.configs.train
    num_epochs = int(tcfg.NUM_EPOCHS if num_epochs is None else num_epochs)
    base_key = jax.random.PRNGKey(int(tcfg.RNG_SEED_TORCH if seed is None else seed))
    ks = setup.data.channel_sizes.get("skin_coeffs", 0)
    geometry = jax.tree_util.tree_map(jnp.asarray, setup.geometry)
    emo_w = None if setup.lip_dist_weights is None else jnp.asarray(setup.lip_dist_weights)
    network, loss_cfg, window = setup.network, setup.loss_cfg, setup.network.window
    ph = setup.phonemes
    ph_weights = None if ph is None else [jnp.asarray(w) for w in ph.class_weights()]
    ph_window = 25 if ph is None else ph.window
    freeze_encoder = network.net.cfg.w2v_freeze

    def step(state, batch):
        idx = batch["index"]
        data = gather_batch(batch["dataset"], idx, window, ph_window)
        rng = jax.random.fold_in(base_key, state["step"])
        exponent = losses.loss_exponent(state["step"], steps_per_epoch, num_epochs)

        def loss_fn(params):
            # no gradient into (or backward pass through) the frozen encoder
            params = freeze.stop_gradient_frozen(params, param_labels(params, freeze_encoder))
            implicit = emo_db_lib.lookup(params["emo_db"], idx["global_frame_idx"])
            emotion = jnp.concatenate([implicit, idx["explicit_emo"]], axis=-1)
            ph_kw = {}
            if ph is None:
                y_pred = network.apply_train(params["net"], data["x"], emotion, idx["x_norm_factor"], rng)
            else:
                y_pred, logits = network.apply_train_phonemes(params["net"], data["x"], emotion, idx["x_norm_factor"], rng)
                ph_kw = {"phoneme_logits": logits, "phoneme_targets": data["phonemes"],
                         "phoneme_masks": [idx["ph_lang"] == i for i in range(len(ph.langs))],
                         "phoneme_class_weights": ph_weights}
            return losses.regression_loss(
                y_pred, data["y"], implicit, data["x"], loss_cfg, ks, state["norm"], exponent, geometry,
                lip_dist_weights=None if emo_w is None else emo_w[idx["shot_index"]], **ph_kw,
            )

        (total, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        params, opt_state = optim.apply_gradients(tx, grads, state["opt_state"], state["params"])
        new_state = {"step": state["step"] + 1, "params": params, "opt_state": opt_state,
                     "norm": losses.next_normalizer_state(state["norm"], terms)}
        metrics = dict(terms)
        metrics["loss"] = total
        return new_state, metrics

    return step


# ------------------------------------------------------------------------------------- predict / validate


def predict(setup: Setup, params: Any, clips: list, batch_size: int = 64) -> list[np.ndarray]:
    """Eval-mode predictions [len, D] for whole clips (no timeshift), frame by frame."""
    settings = RegressionSamplerSettings.from_train_config(setup.configs.train)
    sampler = RegressionSampler(setup.data, settings, batch_size=batch_size, seed=0, clips=clips, shuffle=False,
                                noise_bank_size=1)
    window, network = sampler.window, setup.network

    @jax.jit
    def run(p, dev, idx):
        batch = gather_batch(dev, idx, window)
        implicit = emo_db_lib.lookup(p["emo_db"], idx["global_frame_idx"])
        emotion = jnp.concatenate([implicit, idx["explicit_emo"]], axis=-1)
        return network.apply_eval(p["net"], batch["x"], emotion, idx["x_norm_factor"])

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


def validation_metrics(setup: Setup, params: Any) -> dict[str, float]:
    """R² (coefficient space), lip vertex error and lip-distance MAE over the held-out clips."""
    art = setup.data.artifacts[setup.data.actors[0]]
    ks = setup.data.channel_sizes.get("skin_coeffs", 0)
    preds = predict(setup, params, setup.val_clips)
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
    return log_validation(out)


# ------------------------------------------------------------------------------------------- run folder


def _network_info(setup: Setup) -> dict:
    tcfg, data = setup.configs.train, setup.data
    art = data.artifacts[data.actors[0]]
    default = emotion_vector(tcfg.DEFAULT_SHOT_EMOTION_NAME, data.explicit_emotions)
    return {
        "id": {"type": "regression", "actor": data.actors[0] if len(data.actors) == 1 else "multi",
               "version": str(tcfg.NETWORK_VERSION), "output": "geometry"},
        "params": {
            "implicit_emotion_len": int(tcfg.NETWORK_HYPER_PARAMS.implicit_emotion_len),
            "explicit_emotions": list(data.explicit_emotions),
            "default_emotion": [float(v) for v in default],
            "identities": list(data.actors),
            "num_shapes_skin": art.num_skin_coeffs, "num_verts_skin": int(art.skin_mean.shape[0]),
            "num_shapes_tongue": art.num_tongue_coeffs, "num_verts_tongue": int(art.tongue_mean.shape[0]),
            "result_jaw_size": art.jaw_size, "result_eyes_size": art.eye_size,
        },
        "audio_params": dict(tcfg.AUDIO_PARAMS),
    }


def write_run_metadata(setup: Setup, run_dir: pathlib.Path) -> None:
    """network_info (+ full), trt_info and model_def of the run (`a2f_jax.runs.TrainingRun`)."""
    info = _network_info(setup)
    tcfg = setup.configs.train
    full = {"id": info["id"], "name": tcfg.NETWORK_NAME,
            "params": {**tcfg.NETWORK_HYPER_PARAMS.to_dict(), **{k: v for k, v in info["params"].items() if k != "default_emotion"}},
            "audio_params": info["audio_params"], "default_emotion": info["params"]["default_emotion"]}
    e = len(setup.data.explicit_emotions) + info["params"]["implicit_emotion_len"]
    trt = {"input": "b,1,8320", "emotion": f"b,1,{e}", "extra": "--memPoolSize=tacticSharedMem:0.046875"}
    runs.TrainingRun(run_dir).write_metadata(info, full, trt, setup.model_def)


def save_results(setup: Setup, params: Any, run_dir: pathlib.Path) -> None:
    """The final save: the implicit emotion database (npz in deploy/, pkl in the run root) and params.msgpack."""
    run = runs.TrainingRun(run_dir)
    shots = [(s.id, s.start_global, s.length) for s in setup.data.shots]
    db = emo_db_lib.from_shots(np.asarray(params["emo_db"]), shots)
    if setup.configs.train.COMPACTIFY_IMPLICIT_EMO_DB:
        db.compactify([(setup.data.shots[c.shot_index].id, c.first, c.last) for c in setup.data.clips])
    db.save_npz(run.file(run.EMO_DB_NPZ))
    db.save_pkl(run.file(run.EMO_DB_PKL))
    run.save_params(params)


# ------------------------------------------------------------------------------------------------ export


def export_onnx(model_def: Mapping[str, Any], params: Any, network_info: Mapping[str, Any]) -> Any:
    """`onnx.ModelProto` of the network with the SDK contract's shapes (`docs/bundle_contract.md`)."""
    net = from_model_def(model_def).net
    return onnx_regression.export_regression(net, params["net"] if "net" in params else params, network_info)
