"""Zero-size parameters end to end: a single-emotion dataset (SHOT_EMOTION_NAMES = ["neutral"], so no explicit
emotion) without tongue, jaw or eye data trains, checkpoints, resumes, deploys and infers with both networks.

The original builds `nn.Linear(0, 8)` (regression: a [8, 0] weight and a zero-initialised, trainable bias) and
`nn.Linear(0, 32, bias=False)` (diffusion: a constant zero embedding); the regression ONNX `emotion` input is
then [B, 1, 16] and the diffusion one [B, 30, 0]. Missing tongue/jaw/eye data become zero placeholders of the
original's default sizes (10 tongue components of 520 vertices, 15 jaw, 4 eye values), as in the original.
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2f_jax import config, rundir
from a2f_jax.data import synthetic
from a2f_jax.runs import TrainingRun
from synth_workspace import synthetic_workspace

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHOTS = ("s01_neutral", "s02_neutral", "s03_neutral")  # the first shots of the synthetic dataset are all neutral
ONE_EMOTION = ["dataset.SHOT_EMOTION_NAMES=['neutral']"]


def _clips() -> str:
    frames = synthetic.shot_frames(0)
    return repr([("synth", s, (0, frames[s] - 1), "synth", "en", f"{s}.wav", 0) for s in SHOTS])


def _configs(kind: str, *overrides: str):
    base = ONE_EMOTION + [
        f"train.CLIPS={_clips()}", "train.VALIDATION_CLIPS=[]",
        "train.AUG_MUTED_SHOTS=[('synth', ('s01_neutral', 100), 30, 'neutral')]",
        "train.LOG_PERIOD=1000", "train.VALIDATION_PERIOD=0", "train.CHECKPOINT_PERIOD=1",
    ]
    if kind == "diffusion":  # one compiled program: batch 2, subsegments of 30..60 frames, one 60-frame bucket
        base += ["train.BATCH_SIZE=2", "train.SUBSEGMENT_MIN_FRAME=30", "train.SUBSEGMENT_MAX_FRAME=60", "train.LENGTH_BUCKETS=[60]"]
    else:
        base += ["train.BATCH_SIZE=4"]
    return config.load(ROOT / "configs" / f"synthetic-{kind}-min", base + list(overrides))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Four neutral shots (audio + skin only) preprocessed with one emotion; shared by both networks."""
    base = tmp_path_factory.mktemp("one_emotion")
    with synthetic_workspace(base, lambda: _configs("regression"), minimal=True, num_shots=4):
        yield base


def _train_resume(kind: str) -> pathlib.Path:
    """Two steps with a checkpoint at each, then a resume to three; returns the run folder."""
    from a2f_jax.train.entry import train

    cf = _configs(kind)
    run = train(cf, max_steps=2, show_progress=False)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["1", "2"]
    resumed = train(cf, resume=str(run), max_steps=3, show_progress=False)
    assert resumed == run and (run / "checkpoints" / "3").is_dir()
    assert rundir.read_status(run)["status"] == "complete"  # deploy requires a finished run
    return run


def _check_bundle(bundle: pathlib.Path) -> None:
    """The rules of scripts/check_bundle.py, warnings included (onnxruntime runs the graph)."""
    from a2f_jax.deploy.check import check_bundle, format_report

    violations = check_bundle(bundle, run_onnx=True)
    assert not violations, format_report(violations)


def _onnx_graph(bundle: pathlib.Path):
    import onnx

    return onnx.load(str(bundle / "network.onnx")).graph


def _input_shape(graph, name: str) -> list:
    tensor = next(i for i in graph.input if i.name == name)
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tensor.type.tensor_type.shape.dim]


def _zero_size_initializers(graph) -> list[str]:
    return [i.name for i in graph.initializer if 0 in i.dims]


def _audio(cf) -> np.ndarray:
    from a2f_jax.data.audio import load_audio

    return load_audio(pathlib.Path(cf.dataset.AUDIO_ROOT["synth"]) / "s04_neutral.wav")[: 16000 * 2]


def test_regression_single_emotion_end_to_end(workspace):
    from a2f_jax.deploy import bundle
    from a2f_jax.infer import regression

    run = _train_resume("regression")
    info = json.loads((run / "deploy" / "network_info.json").read_text())["params"]
    assert info["explicit_emotions"] == [] and info["default_emotion"] == []
    assert (info["num_shapes_tongue"], info["result_jaw_size"], info["result_eyes_size"]) == (10, 15, 4)  # placeholders
    emo = TrainingRun(run).params()["net"]["linear_explicit_emo"]
    # torch's Linear(0, 8): no weights, a bias that starts at zero and trains (the explicit embedding is the bias).
    assert emo["kernel"].shape == (0, 8) and np.all(np.isfinite(emo["bias"])) and np.any(emo["bias"] != 0)

    cf = _configs("regression")
    out = bundle.deploy_run(cf, run, out_root=workspace / "deploy")
    _check_bundle(out)
    graph = _onnx_graph(out)
    assert _input_shape(graph, "emotion")[1:] == [1, 16]
    assert _zero_size_initializers(graph) == []  # the explicit embedding is its bias: no empty matmul in the graph
    audio = _audio(cf)
    a = regression.from_run(run).predict(audio, fps=30.0, emotion="neutral", source=("s01_neutral", 10))
    b = regression.from_bundle(out).predict(audio, fps=30.0, emotion="neutral", source=("s01_neutral", 10))
    assert a.raw.shape == b.raw.shape == (60, 16 + 10 + 15 + 4)
    assert np.all(np.isfinite(a.raw))
    np.testing.assert_allclose(a.raw, b.raw, atol=1e-4)
    np.testing.assert_allclose(a.skin, b.skin, atol=1e-4)


def test_diffusion_single_emotion_end_to_end(workspace):
    from a2f_jax.deploy import bundle
    from a2f_jax.infer import diffusion
    from a2f_jax.networks import diffusion as T

    run = _train_resume("diffusion")
    info = json.loads((run / "deploy" / "network_info.json").read_text())["params"]
    assert info["emotions"] == [] and info["default_emotion"] == []
    assert (info["tongue_size"], info["jaw_size"], info["eyes_size"]) == (3 * 520, 15, 4)  # placeholders
    _, params, _ = T.load_run(run)
    assert params["embed_emo_vector"]["kernel"].shape == (0, 32)

    cf = _configs("diffusion")
    out = bundle.deploy_run(cf, run, out_root=workspace / "deploy")
    _check_bundle(out)
    assert _input_shape(_onnx_graph(out), "emotion")[1:] == [30, 0]  # as the original's export: a zero-width input
    audio = _audio(cf)
    a = diffusion.from_run(run, cf.inference).predict(audio, seed=5, emotion="neutral", mode="streaming", delta=True)
    b = diffusion.from_bundle(out, cf.inference).predict(audio, seed=5, emotion="neutral", delta=True)
    assert a.skin.shape == b.skin.shape and len(a.skin) > 0
    for ch in ("skin", "tongue", "jaw", "eye"):
        assert np.all(np.isfinite(getattr(a, ch))), ch
        np.testing.assert_allclose(getattr(b, ch), getattr(a, ch), atol=1e-4, err_msg=ch)


# ---------------------------------------------------------------------------------------------- layers


def test_zero_fan_in_linear_is_torchs():
    """diffusion_rnn.Linear(0 -> 5): torch's bound 1/sqrt(fan_in) is 0 at fan_in 0, so the bias is zero."""
    from a2f_jax.models.diffusion_rnn import Linear

    layer = Linear(5)
    x = jnp.zeros((2, 3, 0))
    params = layer.init(jax.random.PRNGKey(0), x)["params"]
    assert params["kernel"].shape == (0, 5)
    np.testing.assert_array_equal(np.asarray(params["bias"]), np.zeros(5))
    np.testing.assert_array_equal(np.asarray(layer.apply({"params": params}, x)), np.zeros((2, 3, 5)))


@pytest.mark.parametrize("shape_in, features", [((2, 3, 0), 4), ((2, 3, 4), 0)])
def test_dense_gradients_with_a_zero_width_side(shape_in, features):
    """ops.dense's hand-written backward equals autodiff when the input or output width is zero."""
    from a2f_jax.ops.dense import dense, dense_nobias

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(shape_in), jnp.float32)
    w = jnp.asarray(rng.standard_normal((shape_in[-1], features)), jnp.float32)
    b = jnp.asarray(rng.standard_normal(features), jnp.float32)

    def loss(f):
        return lambda x, w, *rest: jnp.sum(jnp.sin(f(x, w, *rest)) + f(x, w, *rest))

    got = jax.grad(loss(dense), argnums=(0, 1, 2))(x, w, b)
    want = jax.grad(loss(lambda x, w, b: x @ w + b), argnums=(0, 1, 2))(x, w, b)
    got_nb = jax.grad(loss(dense_nobias), argnums=(0, 1))(x, w)
    for g, r in zip(got + got_nb, want + want[:2]):
        assert g.shape == r.shape
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), atol=1e-6)


def test_regression_refuses_a_channel_subset_before_training(workspace):
    """A subset of TARGET_CHANNELS (the original has no such network) is refused by the setup, before any
    training: the network would lack heads the deploy bundle's sizes still carry."""
    from a2f_jax.errors import ConfigError
    from a2f_jax.networks import regression as N

    with pytest.raises(ConfigError, match=r"TARGET_CHANNELS.*'skin_coeffs', 'jaw', 'eye'"):
        N.build(_configs("regression", "train.TARGET_CHANNELS=['skin_coeffs', 'jaw', 'eye']"))


def test_regression_net_with_every_head_empty_but_skin():
    """conv_w2v_autocorr with no explicit emotion, no tongue, jaw or eye outputs (a ported network may have
    them): init, forward and gradients, the explicit embedding being the Linear(0, 8) bias alone."""
    from a2f_jax.models.regression import ConvW2VAutocorr, RegressionNetConfig, init_params

    cfg = RegressionNetConfig.from_network_params({
        "use_autocorr_features": True, "explicit_emotions": [], "num_shapes_skin": 3, "num_shapes_tongue": 0,
        "result_jaw_size": 0, "result_eyes_size": 0})
    net = ConvW2VAutocorr(cfg)
    params = init_params(net, jax.random.PRNGKey(0), seq=1)
    assert params["linear_explicit_emo"]["kernel"].shape == (0, 8) and params["linear_tongue2"]["kernel"].shape == (0, 0)
    np.testing.assert_array_equal(np.asarray(params["linear_explicit_emo"]["bias"]), np.zeros(8))
    audio = 0.1 * jax.random.normal(jax.random.PRNGKey(1), (2, 1, 8320))
    emotion = jnp.zeros((2, 1, 16))

    def loss(p):
        return jnp.sum(net.apply({"params": p}, audio, emotion, method=ConvW2VAutocorr.infer) ** 2)

    out = net.apply({"params": params}, audio, emotion, method=ConvW2VAutocorr.infer)
    grads = jax.jit(jax.grad(loss))(params)
    assert out.shape == (2, 1, 3) and np.all(np.isfinite(out))
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
    assert float(np.abs(grads["linear_explicit_emo"]["bias"]).max()) > 0  # the bias trains, as torch's
    moved = jax.tree_util.tree_map(lambda x: x, params)
    moved["linear_explicit_emo"]["bias"] = jnp.ones(8)
    assert not np.allclose(net.apply({"params": moved}, audio, emotion, method=ConvW2VAutocorr.infer), out)
