"""scripts/infer.py end to end: a regression bundle in a subprocess (npy, Maya caches, blendshapes), and a
diffusion run / bundle in-process (names as the original, outputs equal to the library's)."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import bundle_fixtures as BF
import diffusion_infer_fixtures as DF
from a2f_jax.data.caches import read_maya_cache
from a2f_jax.deploy import bundle as B

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("infer_script", ROOT / "scripts" / "infer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _wav(path: pathlib.Path, seconds: float, seed: int = 0) -> pathlib.Path:
    rng = np.random.default_rng(seed)
    sf.write(path, (0.2 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000, subtype="FLOAT")
    return path


def _bs_files(tmp: pathlib.Path, verts: int) -> tuple[pathlib.Path, pathlib.Path]:
    rng = np.random.default_rng(0)
    npz, cfg = tmp / "bs.npz", tmp / "bs.json"
    np.savez(npz, poseNames=np.array([b"neutral", b"jawOpen", b"smile"]), neutral=BF.model_data()["neutral_skin"].reshape(-1),
             jawOpen=rng.standard_normal(3 * verts).astype(np.float32), smile=rng.standard_normal(3 * verts).astype(np.float32))
    cfg.write_text(json.dumps({"blendshape_params": {
        "strengthL1regularization": 0.0, "strengthL2regularization": 0.01, "strengthTemporalSmoothing": 0.0, "strengthSymmetry": 0.0,
        "numPoses": 2, "bsSolveActivePoses": [1, 1], "bsSolveCancelPoses": [-1, -1], "bsSolveSymmetryPoses": [-1, -1],
        "bsWeightMultipliers": [1.0, 1.0], "bsWeightOffsets": [0.0, 0.0]}}))
    return npz, cfg


def test_regression_bundle_subprocess(tmp_path):
    kw = BF.bundle_kwargs(tmp_path, "regression")
    kw["blendshapes"] = {"claire": {"skin": _bs_files(tmp_path, BF.VS)}}
    bundle = B.write_bundle(tmp_path / "bundle", **kw)
    wav = _wav(tmp_path / "clip.take1.wav", 0.5)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "infer.py"), "--config", str(ROOT / "configs" / "synthetic-regression-min"),
         "--bundle", str(bundle), "--audio", str(wav), "--out", str(out), "--emotion", "happy", "--npy", "--blendshapes"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = sorted(p.name for p in out.iterdir())
    for ch in ("skin", "tongue", "jaw", "eye"):
        assert f"clip_{ch}.npy" in names
    assert {"clip_skin.xml", "clip_skin.mc", "clip_tongue.xml", "clip_bs.csv", "clip_bs.json", "clip_bs.npz"} <= set(names)
    from a2f_jax.data.audio import load_audio
    from a2f_jax.infer import regression as R

    ref = R.from_bundle(bundle).predict(load_audio(wav), fps=30.0, emotion="happy")
    skin = np.load(out / "clip_skin.npy")
    assert skin.shape == (15, BF.VS, 3)
    np.testing.assert_allclose(skin, ref.skin, atol=1e-5)
    np.testing.assert_allclose(read_maya_cache(out / "clip_skin.xml"), ref.skin, atol=1e-5)
    with np.load(out / "clip_bs.npz") as z:
        assert any(np.asarray(z[k]).shape[0] == 15 for k in z.files)
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "infer.py"), "--config", str(ROOT / "configs" / "synthetic-regression-min"),
                          "--bundle", str(bundle), "--audio", str(wav), "--out", str(out), "--emotion", "bored"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert bad.returncode == 2 and "emotion" in bad.stderr


@pytest.fixture(scope="module")
def diffusion_sources(tmp_path_factory):
    net, params = DF.tiny_net()
    root = tmp_path_factory.mktemp("dcli")
    return DF.write_run(root / "run", net, params), DF.write_bundle(root / "bundle", net, params)


def test_diffusion_run_and_bundle_in_process(diffusion_sources, tmp_path):
    run, bundle = diffusion_sources
    script = _script()
    wav = _wav(tmp_path / "line.wav", 0.75, seed=3)
    cfg = str(ROOT / "configs" / "synthetic-diffusion-min")
    common = ["--config", cfg, "--audio", str(wav), "--actor", "mark", "--emotion-weights", "happy=0.5,sad=0.25", "--seed", "7", "--npy"]
    assert script.main(common + ["--run", str(run), "--out", str(tmp_path / "a"), "--mode", "streaming"]) == 0
    base = tmp_path / "a" / "line_mark_mark_mix_streaming"
    assert pathlib.Path(f"{base}_skin.xml").is_file() and pathlib.Path(f"{base}_tongue.mc").is_file()
    from a2f_jax.data.audio import load_audio
    from a2f_jax.infer import diffusion as D

    eng = D.from_run(run, {"TIMESTEP_RESPACING": "2", "CONDITION": "mark", "ACTOR_NAME": "mark"})
    ref = eng.predict(load_audio(wav), emotion={"happy": 0.5, "sad": 0.25}, seed=7, mode="streaming")
    skin = np.load(f"{base}_skin.npy")
    assert skin.shape == (45, DF.VS, 3)
    np.testing.assert_allclose(skin, ref.skin, atol=1e-5)
    np.testing.assert_allclose(read_maya_cache(f"{base}_skin.xml"), ref.skin, atol=1e-5)
    # the bundle (onnxruntime) agrees with the run's streaming deltas
    assert script.main(common + ["--bundle", str(bundle), "--out", str(tmp_path / "b"), "--delta"]) == 0
    got = np.load(tmp_path / "b" / "line_mark_mark_mix_streaming_skin.npy")
    want = eng.predict(load_audio(wav), emotion={"happy": 0.5, "sad": 0.25}, seed=7, mode="streaming", delta=True).skin
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert script.main(common + ["--bundle", str(bundle), "--out", str(tmp_path / "c"), "--backend", "jax"]) == 2
    assert script.main(common[:6] + ["--emotion-weights", "happy", "--run", str(run), "--out", str(tmp_path / "d")]) == 2


def test_regression_postprocess_matches_runtime_formulas(tmp_path):
    """--postprocess applies model_config exactly as a2f_jax.infer.postprocess does on the bundle's rows."""
    import argparse

    from a2f_jax import config
    from a2f_jax.data.audio import load_audio
    from a2f_jax.infer import postprocess as pp
    from a2f_jax.infer import regression as R
    from a2f_jax.infer import run_cli

    bundle = B.write_bundle(tmp_path / "bundle", **BF.bundle_kwargs(tmp_path, "regression"))
    wav = _wav(tmp_path / "clip.wav", 0.5)
    args = argparse.Namespace(bundle=str(bundle), run=None, audio=[str(wav)], out=str(tmp_path / "out"), emotion=None,
                              emotion_weights=None, backend=None, mode=None, seed=None, fps=None, actor=None, delta=False,
                              npy=True, no_maya_cache=True, blendshapes=False, postprocess=True)
    run_cli.run(config.load(ROOT / "configs" / "synthetic-regression-min"), args)
    got = np.load(tmp_path / "out" / "clip_skin.npy")
    raw = R.from_bundle(bundle).predict(load_audio(wav), fps=30.0)
    data = pp.ModelData.load(next(bundle.glob("model_data*.npz")), "regression")
    cfg = json.loads(next(bundle.glob("model_config*.json")).read_text())
    ref = pp.PostProcessor(data, cfg, 30.0).process(pp.deltas_from_regression(raw.raw, data))["skin"]
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert np.abs(got - raw.skin).max() > 1e-6  # smoothing and offsets changed something


@pytest.fixture(scope="module")
def reg_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    return B.write_bundle(root / "bundle", **BF.bundle_kwargs(root, "regression"))


def _main(capsys, argv) -> tuple[int, str]:
    code = _script().main(["--config", str(ROOT / "configs" / "synthetic-regression-min")] + argv)
    return code, capsys.readouterr().err


def _broken_copy(bundle: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    import shutil

    shutil.copytree(bundle, dest)
    return dest


@pytest.mark.parametrize("samples", [1, 533])  # 533 samples: 0.9994 of a frame at 30 fps
def test_audio_shorter_than_one_frame_is_refused(reg_bundle, tmp_path, capsys, samples):
    wav = tmp_path / "tiny.wav"
    sf.write(wav, np.full(samples, 0.1, np.float32), 16000, subtype="FLOAT")
    code, err = _main(capsys, ["--bundle", str(reg_bundle), "--audio", str(wav), "--out", str(tmp_path / "out")])
    assert code == 2
    assert str(wav) in err and f"found {samples}" in err and "at least 534 samples" in err and "one frame at 30 fps" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_bundle_missing_a_model_data_key(reg_bundle, tmp_path, capsys):
    from a2f_jax.errors import DataError
    from a2f_jax.infer import regression as R

    broken = _broken_copy(reg_bundle, tmp_path / "bundle")
    path = next(broken.glob("model_data*.npz"))
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k != "shapes_matrix_tongue"}
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=r"model_data.*\[shapes_matrix_tongue\].*expected an array 'shapes_matrix_tongue'"):
        R.from_bundle(broken)
    wav = _wav(tmp_path / "a.wav", 0.2)
    code, err = _main(capsys, ["--bundle", str(broken), "--audio", str(wav), "--out", str(tmp_path / "out"), "--postprocess"])
    assert code == 2 and str(path) in err and "shapes_matrix_tongue" in err
    path.write_bytes(path.read_bytes()[:200])  # a truncated archive
    with pytest.raises(DataError, match=r"model_data.*readable \.npz"):
        R.from_bundle(broken)


def test_truncated_network_onnx(reg_bundle, tmp_path, capsys):
    from a2f_jax.errors import DataError
    from a2f_jax.infer import regression as R

    broken = _broken_copy(reg_bundle, tmp_path / "bundle")
    onnx = broken / "network.onnx"
    onnx.write_bytes(onnx.read_bytes()[: onnx.stat().st_size // 2])
    with pytest.raises(DataError, match=r"network\.onnx: expected an ONNX model onnxruntime can load"):
        R.from_bundle(broken)
    wav = _wav(tmp_path / "a.wav", 0.2)
    code, err = _main(capsys, ["--bundle", str(broken), "--audio", str(wav), "--out", str(tmp_path / "out")])
    assert code == 2 and str(onnx) in err


@pytest.mark.parametrize("weights, bad", [("happy=1.5", "1.5"), ("angry=0.5,sad=-0.25", "-0.25"), ("sad=nan", "nan")])
def test_emotion_weights_outside_0_1_are_refused(reg_bundle, tmp_path, capsys, weights, bad):
    from a2f_jax.errors import ConfigError
    from a2f_jax.infer import regression as R

    wav = _wav(tmp_path / "a.wav", 0.2)
    code, err = _main(capsys, ["--bundle", str(reg_bundle), "--audio", str(wav), "--out", str(tmp_path / "out"),
                               "--emotion-weights", weights])
    name = weights.split(",")[-1].split("=")[0]
    assert code == 2 and f"--emotion-weights [{name}]: expected a weight in [0, 1], found {bad}" in err
    pred = R.from_bundle(reg_bundle)
    with pytest.raises(ConfigError, match=rf"emotion \[{name}\]: expected a weight in \[0, 1\]"):
        pred.explicit({name: float(bad)})
    with pytest.raises(ConfigError, match=r"emotion \[happy\]"):
        pred.explicit([0.0, 1.01, 0.0])
    assert pred.explicit({"happy": 1.0, "sad": 0.0}).tolist() == [0.0, 1.0, 0.0]  # the bounds are allowed
