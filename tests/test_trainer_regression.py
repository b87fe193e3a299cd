"""Regression training end to end on the synthetic dataset: multi-device equality, resume, learning."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from a2f_jax import config
from a2f_jax.runs import TrainingRun
from a2f_jax.train.entry import train
from synth_workspace import synthetic_workspace

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth_env(tmp_path_factory):
    """A synthetic dataset and its preprocessing run, shared by the tests of this module."""
    with synthetic_workspace(tmp_path_factory.mktemp("synth"), ROOT / "configs" / "synthetic-regression") as env:
        yield env


def _configs(*overrides):
    base = ["train.LOG_PERIOD=1000", "train.VALIDATION_PERIOD=0", "train.CHECKPOINT_PERIOD=1000"]
    return config.load(ROOT / "configs" / "synthetic-regression", base + list(overrides))


@pytest.fixture(scope="module")
def short_run(synth_env):
    return train(_configs("train.BATCH_SIZE=8", "train.RUN_NAME='full'"), max_steps=6, show_progress=False)


def test_resume_equals_uninterrupted(short_run):
    full = short_run
    part = train(_configs("train.BATCH_SIZE=8", "train.RUN_NAME='part'"), max_steps=3, show_progress=False)
    assert (part / "checkpoints" / "3").is_dir()
    resumed = train(_configs("train.BATCH_SIZE=8", "train.RUN_NAME='part'"), resume=str(part), max_steps=6, show_progress=False)
    assert resumed == part
    a, b = TrainingRun(full).params(), TrainingRun(part).params()
    diffs = jax.tree_util.tree_map(lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y)))), a, b)
    assert max(jax.tree_util.tree_leaves(diffs)) <= 1e-6
    # The run folder of docs/DEVELOPING.md (orbax checkpoints instead of weights.pth).
    for name in ("deploy/network_info.json", "deploy/trt_info.json", "deploy/implicit_emo_db.npz", "implicit_emo_db.pkl",
                 "network_info_full.json", "model_def.json", "configs/config_train_full.json", "log.log"):
        assert (full / name).is_file(), name
    info = json.loads((full / "deploy/network_info.json").read_text())
    assert info["id"]["type"] == "regression" and info["params"]["explicit_emotions"] == ["joy", "anger", "sadness"]
    assert list(full.glob("events.out.tfevents.*"))


MULTI_DEVICE = textwrap.dedent("""
    import json, sys
    import jax, numpy as np, optax
    from a2f_jax import config
    from a2f_jax.networks import regression as N
    from a2f_jax.train import sharding
    cf = config.load(sys.argv[1], ["train.BATCH_SIZE=8"])
    setup = N.build(cf)
    sampler = N.make_sampler(setup, 8, 43)
    # Plain SGD: the parameter change is the (cross-device reduced) gradient itself. Adam would turn
    # float-rounding noise on near-zero gradients into full-size sign flips of its first updates.
    opt = optax.sgd(0.1)
    out = {}
    for n in (1, 8):
        mesh = sharding.make_mesh(jax.devices()[:n])
        state = sharding.replicate(N.init_state(setup, N.init(setup, jax.random.PRNGKey(42)), opt), mesh)
        step = jax.jit(N.make_train_step(setup, opt, sampler.batches_per_epoch, num_epochs=20, seed=42))
        losses = []
        with N.feed(setup, sampler, mesh, 0, 2) as feed:
            for k in range(2):
                state, m = step(state, feed.batch(k))
                losses.append(float(m["loss"]))
        out[n] = jax.device_get(state["params"])
        out[f"loss{n}"] = losses
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree_util.tree_leaves(out[1]), jax.tree_util.tree_leaves(out[8])))
    print(json.dumps({"devices": jax.device_count(), "diff": diff, "loss1": out["loss1"], "loss8": out["loss8"]}))
""")


def test_eight_devices_match_one_device(synth_env):
    env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", MULTI_DEVICE, str(ROOT / "configs" / "synthetic-regression")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["devices"] == 8
    assert res["diff"] <= 1e-5, res
    for a, b in zip(res["loss1"], res["loss8"]):
        assert abs(a - b) <= 1e-5 * max(1.0, abs(a)), res


def test_learning_beats_mean_pose_baseline(synth_env):
    from a2f_jax.infer import evaluate, regression

    run = train(_configs("train.BATCH_SIZE=16", "train.RUN_NAME='learn'"), max_steps=300, show_progress=False)
    pred = regression.from_run(run)
    res = evaluate.evaluate(_configs(), lambda a, fps, emo, n: pred.predict(a, fps=fps, emotion=emo, num_frames=n).skin)
    m = res["metrics"]
    print(evaluate.M.format_table(m))
    assert evaluate.improvement(res) >= 0.30, m
    assert m["model"]["lip_dist_mae"] < m["mean_pose"]["lip_dist_mae"]


def test_bundle_inference_equals_run_inference(short_run, tmp_path):
    """Python inference from the deploy bundle (onnxruntime) equals inference from the run (JAX)."""
    from a2f_jax.data.audio import load_audio
    from a2f_jax.deploy import bundle
    from a2f_jax.infer import regression

    cf = _configs()
    out = bundle.deploy_run(cf, short_run, out_root=tmp_path / "deploy")
    audio = load_audio(pathlib.Path(cf.dataset.AUDIO_ROOT["synth"]) / "s04_neutral.wav")[: 16000 * 2]
    src = ("s01_neutral", 10)
    a = regression.from_run(short_run).predict(audio, fps=30.0, emotion="joy", source=src)
    b = regression.from_bundle(out).predict(audio, fps=30.0, emotion="joy", source=src)
    assert a.raw.shape == b.raw.shape == (60, a.raw.shape[1])
    np.testing.assert_allclose(a.raw, b.raw, atol=1e-4)
    np.testing.assert_allclose(a.skin, b.skin, atol=1e-4)
    written = regression.write_outputs(b, tmp_path / "infer", "s04")
    from a2f_jax.data.caches import read_cache

    np.testing.assert_array_equal(read_cache(tmp_path / "infer" / "s04_skin.xml"), b.skin)
    assert (tmp_path / "infer" / "s04_jaw.npy").is_file() and len(written) == 6
