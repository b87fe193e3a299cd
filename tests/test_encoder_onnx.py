"""jax2onnx export of the tiny encoder (eval mode) and of the autocorrelation; onnxruntime vs JAX.

Exported at opset 14, the original's deploy opset. The one workaround: means are written as sum * (1/n),
because jax2onnx 0.17.1 lowers jnp.mean to ReduceMean with axes as an input, which is valid only from opset 18.
GELU exports as Erf, the grouped positional conv as a grouped Conv, the norms as ReduceSum arithmetic.
"""

from __future__ import annotations

import pathlib

import jax
import numpy as np
import pytest
from jax2onnx import to_onnx

from a2f_jax.deploy.onnx_utils import ort_session
from a2f_jax.models.audio_encoder import AudioEncoder
from a2f_jax.models.autocorr import autocorrelation
from a2f_jax.models.encoder_weights import load_pretrained

FIX = pathlib.Path(__file__).parent / "fixtures" / "encoder"


def _session(model):
    return ort_session(model)


def test_encoder_onnx_matches_jax_and_transformers() -> None:
    cfg, params = load_pretrained(FIX / "wav2vec2_group")
    model = AudioEncoder(cfg)

    def fn(audio):
        return model.apply({"params": params}, audio, train=False).hidden_states

    onnx_model = to_onnx(fn, [("B", 1200)], opset=14, input_names=["audio"])
    sess = _session(onnx_model)
    io = np.load(FIX / "wav2vec2_group" / "io.npz")
    audio = np.concatenate([io["audio"], io["audio"][:1] * 0.5])  # batch 3: the batch axis is dynamic
    got = sess.run(None, {"audio": audio})
    ref = jax.jit(fn)(audio)
    assert len(got) == cfg.num_hidden_layers + 1
    for i, (o, r) in enumerate(zip(got, ref)):
        assert o.shape == r.shape == (3, 119, 32)
        np.testing.assert_allclose(o, np.asarray(r), atol=1e-4, rtol=0, err_msg=f"hidden {i}")
        np.testing.assert_allclose(o[:2], io[f"hidden_{i}"], atol=1e-4, rtol=0, err_msg=f"hidden {i} vs torch")


@pytest.mark.parametrize("opset", [14, 18])
def test_autocorrelation_onnx_matches_jax(opset: int) -> None:
    onnx_model = to_onnx(lambda a: autocorrelation(a), [("B", 8320)], opset=opset, input_names=["audio"])
    assert "DFT" not in {n.op_type for n in onnx_model.graph.node}
    sess = _session(onnx_model)
    audio = (np.random.default_rng(0).standard_normal((3, 8320)) * 0.3).astype(np.float32)
    got = sess.run(None, {"audio": audio})[0]
    ref = np.asarray(autocorrelation(audio))
    assert got.shape == (3, 25, 32)
    np.testing.assert_allclose(got, ref, atol=1e-4 * max(1.0, np.abs(ref).max()), rtol=0)
