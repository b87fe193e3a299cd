"""A diffusion run trained with DIFFUSION_NOISE_SCHEDULE = "linear" samples with that schedule from the run too.

model_def.json records the schedule (`a2f_jax.runs.NOISE_SCHEDULE_KEY`), so `scripts/infer.py --run` (JAX) and
`scripts/infer.py --bundle` (the exported ONNX graph, which bakes the schedule in) give the same frames. Before the
schedule was recorded, inference from a run always sampled with "cosine" and disagreed with the bundle.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib

import numpy as np
import pytest
import soundfile as sf

from a2f_jax import config, runs
from a2f_jax.data import synthetic
from synth_workspace import synthetic_workspace

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs" / "synthetic-diffusion-min"
SHOTS = ("s01_neutral", "s02_neutral", "s03_neutral")
TOLERANCE = 1e-4  # run vs bundle, as tests/test_infer_diffusion.py (float32 JAX vs onnxruntime)
# Four respaced steps: with the usual two (t = 999 and 0) both schedules are nearly the same at the steps sampled
# (alpha-bar ~0 and ~1), so the schedule would hardly show; at t = 333 and 666 linear and cosine differ widely.
STEPS = ["inference.TIMESTEP_RESPACING='4'", "inference.NUM_DIFFUSION_STEPS=4"]


def _configs():
    frames = synthetic.shot_frames(0)
    clips = [("synth", s, (0, frames[s] - 1), "synth", "en", f"{s}.wav", 0) for s in SHOTS]
    return config.load(CONFIG_DIR, [
        "dataset.SHOT_EMOTION_NAMES=['neutral']", f"train.CLIPS={clips!r}", "train.VALIDATION_CLIPS=[]",
        "train.AUG_MUTED_SHOTS=[]", "train.DIFFUSION_NOISE_SCHEDULE='linear'",
        # one small compiled program: batch 2, subsegments of 30..60 frames in one 60-frame bucket
        "train.BATCH_SIZE=2", "train.SUBSEGMENT_MIN_FRAME=30", "train.SUBSEGMENT_MAX_FRAME=60", "train.LENGTH_BUCKETS=[60]",
        "train.LOG_PERIOD=1000", "train.VALIDATION_PERIOD=0", "train.CHECKPOINT_PERIOD=1000", *STEPS,
    ])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(configs, run, bundle, wav): two training steps with the linear schedule, deployed."""
    from a2f_jax.deploy import bundle
    from a2f_jax.train import entry

    base = tmp_path_factory.mktemp("linear_schedule")
    with synthetic_workspace(base, _configs, minimal=True, num_shots=4):
        cf = _configs()
        run = entry.train(cf, max_steps=2, show_progress=False)
        _perturb_heads(runs.TrainingRun(run))
        out = bundle.deploy_run(cf, run, out_root=base / "deploy")
        wav = base / "clip.wav"
        audio, _ = sf.read(pathlib.Path(cf.dataset.AUDIO_ROOT["synth"]) / "s04_neutral.wav", dtype="float32")
        sf.write(wav, audio[:16000], 16000, subtype="FLOAT")
        yield cf, run, out, wav


def _perturb_heads(run: runs.TrainingRun) -> None:
    """Two steps leave the output heads near their zero init, so the frames hardly depend on the diffusion
    state x_t, the only place the schedule enters: give the heads random weights (as a trained network has)."""
    params = run.params()
    net = params.get("net", params)
    rng = np.random.default_rng(0)
    for head in ("final_layer_skin", "final_layer_tongue", "final_layer_jaw", "final_layer_eye"):
        for leaf in ("kernel", "bias"):
            net[head]["2"][leaf] = (0.05 * rng.standard_normal(net[head]["2"][leaf].shape)).astype(np.float32)
    run.save_params(params)


def _script():
    spec = importlib.util.spec_from_file_location("infer_script", ROOT / "scripts" / "infer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _outputs(folder: pathlib.Path) -> dict[str, np.ndarray]:
    found = {}
    for part in ("skin", "tongue", "jaw", "eye"):
        (path,) = folder.glob(f"*_{part}.npy")
        found[part] = np.load(path)
    return found


def test_model_def_records_the_schedule(trained):
    _, run, _, _ = trained
    written = json.loads((run / runs.TrainingRun.MODEL_DEF).read_text())
    assert written[runs.NOISE_SCHEDULE_KEY] == "linear"
    assert runs.noise_schedule(runs.TrainingRun(run).model_def()) == "linear"


def test_infer_from_run_and_bundle_agree(trained, tmp_path):
    _, run, bundle_dir, wav = trained
    script = _script()
    common = ["--config", str(CONFIG_DIR), *(f"--config.{o}" for o in STEPS), "--audio", str(wav), "--seed", "5", "--delta",
              "--npy", "--no-maya-cache"]
    assert script.main(common + ["--run", str(run), "--out", str(tmp_path / "run"), "--mode", "streaming"]) == 0
    assert script.main(common + ["--bundle", str(bundle_dir), "--out", str(tmp_path / "bundle")]) == 0
    from_run, from_bundle = _outputs(tmp_path / "run"), _outputs(tmp_path / "bundle")
    for part in ("skin", "tongue", "jaw", "eye"):
        assert from_run[part].shape == from_bundle[part].shape and len(from_run[part]) == 60
        np.testing.assert_allclose(from_bundle[part], from_run[part], atol=TOLERANCE, err_msg=part)


def test_the_schedule_changes_the_samples(trained):
    """The agreement above means something: sampled with "cosine" (what inference from a run did before the schedule
    was recorded), the same run gives frames several times the tolerance away."""
    from a2f_jax.data.audio import load_audio
    from a2f_jax.infer import diffusion as D
    from a2f_jax.networks.diffusion import load_run

    cf, run, _, wav = trained
    network, params, model_def = load_run(run)
    params = params.get("net", params)
    audio = load_audio(wav)
    kw = dict(seed=5, mode="streaming", delta=True)
    linear = D.engine_from_network(network.net, params, model_def, cf.inference).predict(audio, **kw)
    cosine_def = {**model_def, runs.NOISE_SCHEDULE_KEY: "cosine"}
    cosine = D.engine_from_network(network.net, params, cosine_def, cf.inference).predict(audio, **kw)
    gap = max(float(np.abs(getattr(linear, part) - getattr(cosine, part)).max()) for part in ("skin", "tongue", "jaw", "eye"))
    assert gap > 3 * TOLERANCE
