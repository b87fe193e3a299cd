"""Diffusion training end to end on the synthetic dataset: multi-device equality, resume, accumulation, learning."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2f_jax import config
from a2f_jax.networks import diffusion as T
from a2f_jax.runs import TrainingRun
from a2f_jax.train.entry import train
from synth_workspace import synthetic_workspace

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "synthetic-diffusion"
# One compiled program for every step: batch 2, subsegments of 30..60 frames, a single 60-frame bucket.
SMALL = ["train.BATCH_SIZE=2", "train.SUBSEGMENT_MIN_FRAME=30", "train.SUBSEGMENT_MAX_FRAME=60", "train.LENGTH_BUCKETS=[60]"]


@pytest.fixture(scope="module")
def synth_env(tmp_path_factory):
    """A synthetic dataset and its preprocessing run, shared by the tests of this module."""
    with synthetic_workspace(tmp_path_factory.mktemp("synth"), CONFIG) as env:
        yield env


def _configs(*overrides):
    base = ["train.LOG_PERIOD=1000", "train.VALIDATION_PERIOD=0", "train.CHECKPOINT_PERIOD=1000"]
    return config.load(CONFIG, base + SMALL + list(overrides))


def _max_diff(a, b) -> float:
    diffs = jax.tree_util.tree_map(lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y)))), a, b)
    return max(jax.tree_util.tree_leaves(diffs))


def test_resume_equals_uninterrupted_and_run_folder(synth_env):
    full = train(_configs("train.RUN_NAME='full'"), max_steps=4, show_progress=False)
    part = train(_configs("train.RUN_NAME='part'"), max_steps=2, show_progress=False)
    assert (part / "checkpoints" / "2").is_dir()
    resumed = train(_configs("train.RUN_NAME='part'"), resume=str(part), max_steps=4, show_progress=False)
    assert resumed == part
    a, b = TrainingRun(full).params(), TrainingRun(part).params()
    assert _max_diff(a, b) <= 1e-6
    # Training moved the trainable params and left the frozen encoder front untouched.
    init = T.init(T.build(_configs()), jax.random.PRNGKey(42))
    front = ("audio_model", "feature_extractor")
    flat_a, flat_i = (dict(jax.tree_util.tree_flatten_with_path(p)[0]) for p in (a, init))
    moved = {tuple(str(getattr(k, "key", k)) for k in path): float(np.max(np.abs(np.asarray(flat_a[path]) - np.asarray(v))))
             for path, v in flat_i.items()}
    assert max(v for k, v in moved.items() if k[0] == "gru") > 0
    frozen = [v for k, v in moved.items() if k[:2] == front]
    assert frozen and max(frozen) == 0.0
    # The run folder of docs/DEVELOPING.md (orbax checkpoints instead of weights.pth); load_run reads it back.
    for name in ("deploy/network_info.json", "deploy/trt_info.json", "network_info_full.json", "model_def.json",
                 "configs/config_train_full.json", "log.log", "history.json"):
        assert (full / name).is_file(), name
    info = json.loads((full / "deploy/network_info.json").read_text())
    assert info["id"]["type"] == "diffusion" and info["params"]["emotions"] == ["joy", "anger", "sadness"]
    assert info["params"]["num_frames_center"] == 30 and info["params"]["gru_latent_dim"] == 64
    network, params, model_def = T.load_run(full)
    assert model_def["network"] == "diffusion_rnn" and _max_diff(params, a) == 0.0
    assert network.cfg.output_dim == info["params"]["skin_size"] + info["params"]["tongue_size"] + 15 + 4
    assert list(full.glob("events.out.tfevents.*"))


MULTI_DEVICE = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from a2f_jax import config
    from a2f_jax.networks import diffusion as T
    from a2f_jax.train import sharding
    cf = config.load(sys.argv[1], json.loads(sys.argv[2]) + ["train.BATCH_SIZE=8"])
    setup = T.build(cf)
    sampler = T.make_sampler(setup, 8, 43)
    params = T.init(setup, jax.random.PRNGKey(42))
    opt = T.make_optimizer(setup, params, sampler.batches_per_epoch).tx
    out = {}
    for n in (1, 8):
        mesh = sharding.make_mesh(jax.devices()[:n])
        state = sharding.replicate(T.init_state(setup, params, opt), mesh)
        consts = sharding.replicate(setup.consts, mesh)
        step = jax.jit(T.make_train_step(setup, opt, seed=42))
        for k in range(2):
            state, m = step(state, {**sharding.shard_batch(sampler.batch(k), mesh), "constants": consts})
        out[n] = jax.device_get(state["params"])
        out[f"loss{n}"] = float(m["loss"])
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree_util.tree_leaves(out[1]), jax.tree_util.tree_leaves(out[8])))
    print(json.dumps({"devices": jax.device_count(), "diff": diff, "loss1": out["loss1"], "loss8": out["loss8"]}))
""")


def test_eight_devices_match_one_device(synth_env):
    env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", MULTI_DEVICE, str(CONFIG), json.dumps(SMALL[1:])],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["devices"] == 8
    assert res["diff"] <= 1e-5, res
    assert abs(res["loss1"] - res["loss8"]) <= 1e-5 * max(1.0, abs(res["loss1"]))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_accumulation_sum_and_mean(synth_env, reduction):
    """GRAD_ACCUM_REDUCTION: "sum" feeds Adam the sum of K micro-gradients (the original), "mean" their mean.

    Adam's first update is -lr·ĝ/(|ĝ| + eps); with gradients far below eps the two reductions differ by ~K.
    """
    k, g = 4, 1e-9
    cf = _configs(f"train.GRADIENT_ACCUMULATION_STEPS={k}", f"train.GRAD_ACCUM_REDUCTION='{reduction}'")
    setup = T.build(cf)
    params = jax.eval_shape(lambda: T.init(setup, jax.random.PRNGKey(0)))
    params = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), params)
    optimizer = T.make_optimizer(setup, params, 8)
    opt = optimizer.tx
    state = opt.init(params)
    grads = jax.tree_util.tree_map(lambda p: jnp.full_like(p, g), params)
    update = jax.jit(opt.update)
    for i in range(k):
        updates, state = update(grads, state, params)
        leaves = jax.tree_util.tree_leaves_with_path(updates)
        gru = next(np.asarray(u) for path, u in leaves if "gru" in str(path))
        if i < k - 1:
            assert np.all(gru == 0)  # nothing applied before the K-th micro-step
    seen = k * g if reduction == "sum" else g
    expected = -optimizer.learning_rate(0) * seen / (seen + 1e-8)
    np.testing.assert_allclose(gru, expected, rtol=1e-4)
    frozen = [np.asarray(u) for path, u in leaves if "feature_extractor" in str(path)]
    assert frozen and all(np.all(f == 0) for f in frozen)


def test_bad_accumulation_reduction_is_rejected(synth_env):
    setup = T.build(_configs("train.GRADIENT_ACCUMULATION_STEPS=2", "train.GRAD_ACCUM_REDUCTION='max'"))
    params = {"gru": {"w": jnp.zeros(3)}}
    with pytest.raises(ValueError, match="GRAD_ACCUM_REDUCTION"):
        T.make_optimizer(setup, params, 8)


def test_learning_beats_mean_pose_baseline(synth_env):
    """Held-out lip vertex error of offline sampling (2 respaced steps) vs the mean pose, after a short training."""
    from a2f_jax.infer import metrics as M
    from a2f_jax.train.sampler_diffusion import DiffusionSampler, DiffusionSamplerSettings

    cf = _configs("train.RUN_NAME='learn'", "train.BATCH_SIZE=4", "train.VALIDATION_PERIOD=150")
    run = train(cf, max_steps=150, show_progress=False)
    _, params, _ = T.load_run(run)
    setup = T.build(cf)
    sampler = DiffusionSampler(setup.data, DiffusionSamplerSettings.from_train_config(cf.train), 1, 0, clips=setup.val_clips, augment=False)
    assert len(setup.val_clips) == 3 and setup.lip_vertices
    model, base = [], []
    for clip in setup.val_clips:
        audio, y = sampler.clip_item(clip, None)
        a = setup.data.actors.index(clip.actor)
        emotion = setup.data.emotion_vector(clip.shot_index)
        pred = T.sample(setup, params, audio, len(y), a, emotion, bucket=[600])
        assert pred.shape == y.shape
        truth = T.unscale_skin(setup, y, a)
        mean_pose = np.repeat(np.asarray(setup.model_def["mean_geometry"], np.float32)[a][None], len(y), 0)
        model.append(M.lip_vertex_error(T.unscale_skin(setup, pred, a), truth, setup.lip_vertices))
        base.append(M.lip_vertex_error(T.unscale_skin(setup, mean_pose, a), truth, setup.lip_vertices))
    print(f"held-out lip vertex error: model {np.mean(model):.4f}, mean pose {np.mean(base):.4f}")
    assert np.mean(model) < 0.8 * np.mean(base), (model, base)
    # The trainer's own validation at the last step saw the same params, clips and sampling noise.
    val = [h for h in json.loads((run / "history.json").read_text()) if "val/lip_vertex_error" in h]
    assert val and abs(val[-1]["val/lip_vertex_error"] - np.mean(model)) <= 1e-4, val
