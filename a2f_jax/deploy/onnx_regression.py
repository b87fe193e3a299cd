"""ONNX graph of the regression network (docs/bundle_contract.md): `input` [B, 1, 8320], `emotion`
[B, 1, 16+E] -> `result` [B, 1, K_s+K_t+15+4]; eval semantics, no audio normalisation, opset 14.

Everything else (windowing, input_strength, implicit emotion lookup, PCA, post-processing) stays outside.
A single-emotion network (E = 0, as the original's `emotion` [B, 1, 16]) exports its explicit embedding as
the Linear(0, 8) bias alone (`models.layers.Linear`), so the graph holds no zero-size tensor.
"""

from __future__ import annotations

import pathlib
from typing import Any, Callable, Mapping

from a2f_jax.deploy import contract as C
from a2f_jax.deploy.onnx_utils import export_onnx
from a2f_jax.errors import DataError, describe
from a2f_jax.models.regression import net_from_model_def
from a2f_jax.runs import Bundle, TrainingRun


def regression_fn(net: Any, params: Any) -> Callable[[Any, Any], Any]:
    """(input [B, 1, N], emotion [B, 1, 16+E]) -> result [B, 1, D] with `params` closed over (initializers)."""

    def fn(audio: Any, emotion: Any) -> Any:
        return net.apply({"params": params}, audio, emotion, method=type(net).infer)

    return fn


def export_regression(net: Any, params: Any, network_info: Mapping[str, Any]) -> Any:
    """`onnx.ModelProto` of a ConvW2VAutocorr with the contract shapes derived from network_info."""
    shapes = C.onnx_tensor_shapes(network_info)
    cfg = net.cfg
    if cfg.emotion_len != shapes["emotion"][2] or cfg.output_size != shapes["result"][2]:
        raise DataError(describe(Bundle.NETWORK_INFO, "params",
                                 f"emotion {cfg.emotion_len} / result {cfg.output_size} (the network's sizes)",
                                 f"emotion {shapes['emotion'][2]} / result {shapes['result'][2]}"))
    return export_onnx(
        regression_fn(net, params),
        [("input", shapes["input"]), ("emotion", shapes["emotion"])],
        [("result", shapes["result"])],
        opset=C.ONNX_OPSET,
        model_name="conv_w2v_autocorr",
    )


def export_from_run(configs: Any, run_dir: pathlib.Path, network_info: Mapping[str, Any]) -> Any:
    """Export a finished regression training run (`model_def.json` + final `params.msgpack`)."""
    run = TrainingRun(run_dir)
    for name in (TrainingRun.MODEL_DEF, TrainingRun.PARAMS):
        if not run.file(name).is_file():
            raise DataError(describe(run.file(name), None, "the file written at the end of training", "missing"))
    net = net_from_model_def(run.model_def())
    params = run.params()
    return export_regression(net, params["net"] if "net" in params else params, network_info)
