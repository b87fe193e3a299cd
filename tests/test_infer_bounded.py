"""Inference in bounded memory: chunked prediction equals one pass over the clip, and memory does not grow with it.

Regression windows are cut per batch, diffusion streams are pushed in chunks, outputs are written chunk by chunk
(`a2f_jax.infer.outputs`). Memory is measured with tracemalloc (NumPy buffers; onnxruntime's own arena is not
counted) against what one pass over the clip would hold.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

import bundle_fixtures as BF
import diffusion_infer_fixtures as DF
from a2f_jax.data.audio import frame_windows, load_audio
from a2f_jax.data.caches import read_maya_cache, write_maya_cache
from a2f_jax.deploy import bundle as B
from a2f_jax.deploy import contract as C
from a2f_jax.infer import diffusion as D
from a2f_jax.infer import regression as R

ROOT = pathlib.Path(__file__).resolve().parents[1]
MB = 2**20


def _audio(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * 3 * t) * rng.standard_normal(len(t))).astype(np.float32)


def _wav(path: pathlib.Path, audio: np.ndarray) -> pathlib.Path:
    sf.write(path, audio, 16000, subtype="FLOAT")
    return path


def _one_pass_rows(run_fn, pred: R.RegressionPredictor, audio: np.ndarray, fps: float, emotion=None) -> np.ndarray:
    """What inference did before chunking: every window of the clip at once, one network call."""
    n = int(len(audio) / 16000 * fps)
    windows = frame_windows(audio, n, fps, size=R.WINDOW)
    emo = np.concatenate([pred.implicit(None), pred.explicit(emotion)])[None, None].astype(np.float32)
    return np.asarray(run_fn(windows[:, None], np.repeat(emo, n, 0)))[:, 0]


def _big_mesh_bundle(tmp: pathlib.Path, vs: int) -> pathlib.Path:
    """The fixture regression bundle with a `vs`-vertex skin (the network's result size does not depend on it)."""
    info = C.regression_network_info("claire", BF.EMOTIONS, [0.0, 0.0, 0.0], BF.KS, vs, BF.KT, BF.VT)
    np.savez(tmp / "data.npz", **BF.model_data(vs=vs))
    return B.write_bundle(tmp / "bundle", network_info=info, onnx_model=BF._onnx_bytes("regression", ("claire",)),
                          model_data={"claire": tmp / "data.npz"}, inference_config={"input_strength": 1.0}, emo_db=BF.emo_db())


@pytest.fixture(scope="module")
def reg_bundle(tmp_path_factory):
    return B.write_bundle(tmp_path_factory.mktemp("rb") / "bundle", **BF.bundle_kwargs(tmp_path_factory.mktemp("rk"), "regression"))


# ------------------------------------------------------------------------------------------------ regression


def test_regression_onnx_chunks_equal_one_pass_and_cut_windows_per_batch(reg_bundle, monkeypatch):
    pred = R.from_bundle(reg_bundle)
    audio = _audio(2.5)
    want = _one_pass_rows(pred.run_fn, pred, audio, 30.0, "happy")  # [75, D], one ORT call with batch 75
    sizes = []
    real = frame_windows

    def counting(audio, num_frames, *a, **kw):
        sizes.append(num_frames)
        return real(audio, num_frames, *a, **kw)

    monkeypatch.setattr("a2f_jax.infer.regression.frame_windows", counting)  # the name inference calls
    got = pred.predict(audio, fps=30.0, emotion="happy", batch=4)
    assert got.raw.shape == want.shape == (75, pred.output_size)
    np.testing.assert_allclose(got.raw, want, rtol=0, atol=1e-5)  # float32 rounding of different ORT batch shapes
    assert max(sizes) <= 4 and sum(sizes) == 75  # never all windows of the clip at once
    chunks = list(pred.iter_geometry(audio, fps=30.0, emotion="happy", batch=4))
    assert [len(g.skin) for g in chunks] == [4] * 18 + [3]
    np.testing.assert_array_equal(np.concatenate([g.skin for g in chunks]), got.skin)


def test_regression_jax_chunks_equal_one_pass():
    """The same predictor with a jitted JAX network (the --run backend's run_fn)."""
    import jax

    info = BF.regression_info()
    fn = jax.jit(BF.regression_standin(info))
    data = BF.model_data()
    pred = R.RegressionPredictor(
        run_fn=lambda w, e: np.asarray(fn(w, e)), shapes_skin=data["shapes_matrix_skin"], mean_skin=data["shapes_mean_skin"],
        shapes_tongue=data["shapes_matrix_tongue"], mean_tongue=data["shapes_mean_tongue"], explicit_emotions=BF.EMOTIONS,
        emo_db=None, default_source=None)
    pred.implicit = lambda source: np.zeros(16, np.float32)  # no emotion database needed here
    audio = _audio(2.0, seed=4)
    want = _one_pass_rows(pred.run_fn, pred, audio, 30.0, {"sad": 0.5})
    got = pred.predict_rows(audio, fps=30.0, emotion={"sad": 0.5}, batch=7)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_regression_cli_memory_does_not_grow_with_the_clip(tmp_path):
    """60 s at 30 fps on a 2,000-vertex skin: one pass would hold 60 MB of windows and 43 MB of skin (twice for the
    Maya cache); chunked inference holds a few MB beyond the audio itself."""
    from a2f_jax import config
    from a2f_jax.infer import run_cli

    bundle = _big_mesh_bundle(tmp_path, vs=2000)
    audio = _audio(60.0, seed=1)
    wav = _wav(tmp_path / "long.wav", audio)
    args = argparse.Namespace(bundle=str(bundle), run=None, audio=[str(wav)], out=str(tmp_path / "out"), emotion="happy",
                              emotion_weights=None, backend=None, mode=None, seed=None, fps=None, actor=None, delta=False,
                              npy=True, no_maya_cache=False, blendshapes=False, postprocess=False)
    cfg = config.load(ROOT / "configs" / "synthetic-regression-min")
    tracemalloc.start()
    try:
        run_cli.run(cfg, args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * audio.nbytes + 8 * MB, f"peak {peak / MB:.1f} MiB"  # audio (and its decoding) + one batch
    skin = np.load(tmp_path / "out" / "long_skin.npy")
    assert skin.shape == (1800, 2000, 3)
    ref = R.from_bundle(bundle).predict(load_audio(wav), fps=30.0, emotion="happy")
    np.testing.assert_allclose(skin, ref.skin, atol=1e-5)
    np.testing.assert_array_equal(read_maya_cache(tmp_path / "out" / "long_skin.xml"), skin)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "long_eye.npy"), ref.eye)


def test_postprocess_in_chunks_equals_the_whole_clip(reg_bundle, tmp_path):
    from a2f_jax.infer import postprocess as pp
    from a2f_jax.infer import run_cli

    pred = R.from_bundle(reg_bundle)
    audio = _audio(3.0, seed=2)
    chunks = list(run_cli.postprocess_chunks(reg_bundle, "regression", "claire", pred.iter_geometry(audio, batch=8), True, 30.0))
    assert len(chunks) == 12
    data = pp.ModelData.load(reg_bundle / "model_data.npz", "regression")
    cfg = json.loads((reg_bundle / "model_config.json").read_text())
    whole = pp.PostProcessor(data, cfg, 30.0).process(pp.deltas_from_regression(pred.predict(audio).raw, data))
    np.testing.assert_allclose(np.concatenate([g.skin for g in chunks]), whole["skin"], atol=1e-5)
    np.testing.assert_allclose(np.concatenate([g.eye for g in chunks]), whole["eyes"], atol=1e-5)


# ------------------------------------------------------------------------------------------------- outputs


def _geometry(t: int, vs: int, seed: int = 0) -> R.Geometry:
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return R.Geometry(f(t, vs, 3), f(t, 5, 3), f(t, 5, 3), f(t, 4), f(t, 7), 30.0)


def test_chunked_outputs_are_byte_identical_to_whole_clip_writers(tmp_path):
    from a2f_jax.infer import outputs

    geom = _geometry(23, 11)
    paths = outputs.write_chunks(outputs.split(geom, chunk=5), tmp_path / "a", "clip", 23, 30.0)
    assert [p.name for p in paths] == ["clip_skin.npy", "clip_tongue.npy", "clip_jaw.npy", "clip_eye.npy", "clip_skin.xml", "clip_tongue.xml"]
    for ch in ("skin", "tongue", "jaw", "eye"):
        np.save(tmp_path / f"ref_{ch}.npy", getattr(geom, ch))
        assert (tmp_path / "a" / f"clip_{ch}.npy").read_bytes() == (tmp_path / f"ref_{ch}.npy").read_bytes()
    for ch in ("skin", "tongue"):
        write_maya_cache(tmp_path / f"ref_{ch}.xml", getattr(geom, ch), 30.0)
        for ext in (".mc", ".xml"):
            assert (tmp_path / "a" / f"clip_{ch}{ext}").read_bytes() == (tmp_path / f"ref_{ch}{ext}").read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        [f"clip_{c}.npy" for c in ("skin", "tongue", "jaw", "eye")] + [f"clip_{c}{e}" for c in ("skin", "tongue") for e in (".xml", ".mc")])


def test_chunked_outputs_hold_one_chunk_and_leave_nothing_on_failure(tmp_path):
    from a2f_jax.infer import outputs

    t, vs = 1200, 2000  # 27 MiB of skin positions in all

    def chunks():
        for i in range(0, t, 100):
            yield _geometry(100, vs, seed=i)

    tracemalloc.start()
    try:
        outputs.write_chunks(chunks(), tmp_path / "ok", "long", t, 60.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * MB, f"peak {peak / MB:.1f} MiB"
    assert read_maya_cache(tmp_path / "ok" / "long_skin.xml").shape == (t, vs, 3)

    def failing():
        yield _geometry(100, 4)
        raise RuntimeError("network died")

    with pytest.raises(RuntimeError):
        outputs.write_chunks(failing(), tmp_path / "bad", "clip", 300, 30.0)
    assert list((tmp_path / "bad").iterdir()) == []  # no partial file, no temp file
    from a2f_jax.errors import DataError

    with pytest.raises(DataError, match="300 frames"):  # fewer frames than the header promised
        outputs.write_chunks(outputs.split(_geometry(50, 4)), tmp_path / "short", "clip", 300, 30.0)
    assert list((tmp_path / "short").iterdir()) == []


# ------------------------------------------------------------------------------------------------- diffusion


@pytest.fixture(scope="module")
def diffusion_sources(tmp_path_factory):
    net, params = DF.tiny_net()
    root = tmp_path_factory.mktemp("dbounded")
    return DF.write_run(root / "run", net, params), DF.write_bundle(root / "bundle", net, params)


def _one_push(engine: D.DiffusionEngine, audio: np.ndarray, **kw) -> np.ndarray:
    """What streaming did before chunking: the whole clip pushed at once, then flushed."""
    stream = engine.stream(**kw)
    rows = np.concatenate([stream.push_rows(audio), stream.flush_rows()], 0)
    return rows[: engine.num_frames(len(audio))]


@pytest.mark.parametrize("backend", ["run", "bundle"])
def test_diffusion_streaming_chunks_equal_one_push(diffusion_sources, backend):
    run, bundle = diffusion_sources
    cfg = {"TIMESTEP_RESPACING": "2", "CONDITION": "mark", "ACTOR_NAME": "mark", "INFERENCE_MODE": "streaming"}
    engine = D.from_run(run, cfg) if backend == "run" else D.from_bundle(bundle, cfg)
    audio = _audio(1.6, seed=3)
    want = _one_push(engine, audio, emotion={"happy": 0.5}, seed=2)
    chunks = list(engine.iter_geometry(audio, emotion={"happy": 0.5}, seed=2, chunk_seconds=0.3))
    assert len(chunks) > 3
    got = np.concatenate([g.raw for g in chunks])
    assert got.shape == (96, engine.output_dim)
    np.testing.assert_array_equal(got, want)  # the same windows, latents and noise: bit-identical
    np.testing.assert_array_equal(np.concatenate([g.skin for g in chunks]), engine.decode(want).skin)


def _stub_engine(vs: int) -> D.DiffusionEngine:
    """A DiffusionEngine whose window function is plain NumPy (the streaming bookkeeping alone)."""
    geom = D.StreamGeometry(15, 30, 15, steps=2, gru_layers=1, latent_dim=4)
    dim = 3 * vs + 3 * 2 + 15 + 4

    def window_fn(w, i, e, lat, nz):
        pred = np.broadcast_to(w[:, ::250][:, :60, None], (1, 60, dim)) + nz[:, 0, :, :dim]
        return np.ascontiguousarray(pred, np.float32), lat + 1

    data = {"a": {"neutral_skin": np.zeros((vs, 3), np.float32), "neutral_tongue": np.zeros((2, 3), np.float32)}}
    return D.DiffusionEngine(backend="onnx", actors=["a"], emotions=["x"], sizes=(3 * vs, 6, 15, 4), stream_geom=geom,
                             window_fn=window_fn, offline_fn=None, rows_are_delta=True, fps=60.0, actor_data=data,
                             mode="streaming")


def test_diffusion_streaming_memory_does_not_grow_with_the_clip():
    """60 s at 60 fps with 2,000 skin vertices: one push holds 3,600 rows of 24 KB (87 MB) and their geometry;
    the chunked stream holds one chunk's frames."""
    engine = _stub_engine(2000)
    audio = _audio(60.0, seed=5)
    tracemalloc.start()
    try:
        frames, total = 0, 0.0
        for g in engine.iter_geometry(audio, seed=0, chunk_seconds=1.0):
            frames += len(g.skin)
            total += float(g.skin[:, 0].sum())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert frames == 3600
    assert peak < 16 * MB, f"peak {peak / MB:.1f} MiB"
    short = audio[: 16000 * 3]
    np.testing.assert_array_equal(np.concatenate([g.raw for g in engine.iter_geometry(short, seed=0, chunk_seconds=0.7)]),
                                  _one_push(engine, short, seed=0))
