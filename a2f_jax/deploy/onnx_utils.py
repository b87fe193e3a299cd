"""Export a JAX function to ONNX with the deploy contract's tensor names, and compare it with JAX.

`export_onnx` traces `fn` with jax2onnx (`to_onnx`) at opset 14 with only the batch axis symbolic, names the
inputs/outputs, renames the batch symbol to "batch_size" (as torch.onnx's dynamic_axes did), and validates
names, ranks, dtypes and static dims against the expected shapes. `compare_with_jax` runs the ONNX model in
onnxruntime and reports the largest absolute difference per output against the JAX function.
"""

from __future__ import annotations

import logging
import os
import pathlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from a2f_jax.errors import DataError, describe
from a2f_jax.io_utils import atomic_path

BATCH = "B"  # batch-axis marker in shapes passed here
BATCH_DIM_NAME = "batch_size"

Shape = tuple[int | str, ...]


def export_onnx(
    fn: Callable[..., Any],
    inputs: Sequence[tuple[str, Shape]],
    outputs: Sequence[tuple[str, Shape]],
    *,
    opset: int = 14,
    model_name: str = "a2f_network",
) -> Any:
    """Trace `fn(*inputs)` (positional, float32) into an `onnx.ModelProto` with the given tensor names.

    inputs/outputs: (name, shape) with "B" at the batch axis (any position); every other dim static.
    The function must close over its parameters (weights become initializers). Raises DataError when
    the exported graph's I/O does not match the given contract.
    """
    from jax2onnx import to_onnx  # heavy optional dependency: only the exporters need it

    logging.getLogger("onnx_ir.serde").setLevel(logging.ERROR)  # per-constant "value type not known" chatter
    specs = [tuple(BATCH if d == BATCH else int(d) for d in shape) for _, shape in inputs]
    model = to_onnx(
        fn,
        specs,
        model_name=model_name,
        opset=opset,
        input_names=[n for n, _ in inputs],
        output_names=[n for n, _ in outputs],
        return_mode="proto",
    )
    for vi in list(model.graph.input) + list(model.graph.output):
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param") and d.dim_param == BATCH:
                d.dim_param = BATCH_DIM_NAME
    legalize_for_opset(model, opset)
    import onnx  # heavy optional dependency: only ONNX export / checks need it

    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise DataError(f"{model_name}: exported ONNX graph is not valid at opset {opset}: {exc}") from exc
    problems = validate_io(model, inputs, outputs)
    if problems:
        raise DataError(f"{model_name}: exported ONNX graph does not match the contract: " + "; ".join(problems))
    return model


# Reductions whose `axes` moved from attribute to input in opset 18 (ReduceSum moved in 13).
_AXES_INPUT_SINCE_18 = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                        "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")


def legalize_for_opset(model: Any, opset: int) -> None:
    """Rewrite newer-opset node forms that jax2onnx emits regardless of the requested opset."""
    if opset < 15:
        lower_shape_slices(model)
    if opset < 18:
        axes_inputs_to_attributes(model)


def _constant_values(model: Any) -> dict[str, np.ndarray]:
    from onnx import helper, numpy_helper  # heavy optional dependency: only ONNX export / checks need it

    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(helper.get_attribute_value(a))
    return values


def axes_inputs_to_attributes(model: Any) -> int:
    """Reduce* nodes with a constant `axes` input (opset 18 form) -> `axes` attribute (opset <= 17 form)."""
    from onnx import helper  # heavy optional dependency: only ONNX export / checks need it

    consts = _constant_values(model)
    count = 0
    for node in model.graph.node:
        if node.op_type in _AXES_INPUT_SINCE_18 and len(node.input) > 1 and node.input[1]:
            if node.input[1] not in consts:
                raise DataError(f"ONNX node {node.name} ({node.op_type}): expected constant axes to lower to "
                                "opset < 18, found a computed tensor")
            axes = [int(a) for a in np.asarray(consts[node.input[1]]).reshape(-1)]
            del node.input[1:]
            node.attribute.append(helper.make_attribute("axes", axes))
            count += 1
    return count


def lower_shape_slices(model: Any) -> int:
    """Rewrite `Shape(x, start, end)` (opset >= 15 attributes, which jax2onnx emits for batch-size
    expressions even at opset 14) into `Shape(x)` + `Slice`. Returns the number of nodes rewritten."""
    import onnx  # heavy optional dependency: only ONNX export / checks need it
    from onnx import helper, numpy_helper  # heavy optional dependency: only ONNX export / checks need it

    graph = model.graph
    new_nodes, count = [], 0
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type != "Shape" or not ({"start", "end"} & set(attrs)):
            new_nodes.append(node)
            continue
        count += 1
        full = f"{node.output[0]}__full_shape"
        names = [f"{node.output[0]}__{k}" for k in ("starts", "ends", "axes")]
        values = [attrs.get("start", 0), attrs.get("end", np.iinfo(np.int64).max), 0]
        for n, v in zip(names, values):
            graph.initializer.append(numpy_helper.from_array(np.array([v], np.int64), n))
        new_nodes.append(helper.make_node("Shape", [node.input[0]], [full], name=f"{node.name}__shape"))
        new_nodes.append(helper.make_node("Slice", [full] + names, list(node.output), name=f"{node.name}__slice"))
    if count:
        del graph.node[:]
        graph.node.extend(new_nodes)
    assert isinstance(model, onnx.ModelProto)
    return count


def validate_io(model: Any, inputs: Sequence[tuple[str, Shape]], outputs: Sequence[tuple[str, Shape]]) -> list[str]:
    """Problems with the graph I/O (names in order, float32, ranks, symbolic batch, static dims); [] if none."""
    import onnx  # heavy optional dependency: only ONNX export / checks need it

    problems = []
    init = {t.name for t in model.graph.initializer}
    graph_in = [vi for vi in model.graph.input if vi.name not in init]
    for role, found, expected in (("input", graph_in, inputs), ("output", list(model.graph.output), outputs)):
        if [vi.name for vi in found] != [n for n, _ in expected]:
            problems.append(f"{role} names: expected {[n for n, _ in expected]}, found {[vi.name for vi in found]}")
            continue
        for vi, (name, shape) in zip(found, expected):
            tt = vi.type.tensor_type
            if tt.elem_type != onnx.TensorProto.FLOAT:
                problems.append(f"{name}: expected float32, found {onnx.TensorProto.DataType.Name(tt.elem_type)}")
            dims = list(tt.shape.dim)
            if len(dims) != len(shape):
                problems.append(f"{name}: expected rank {len(shape)}, found {len(dims)}")
                continue
            for axis, (d, want) in enumerate(zip(dims, shape)):
                if want == BATCH:
                    if d.HasField("dim_value"):
                        problems.append(f"{name} dim {axis}: expected symbolic batch, found {d.dim_value}")
                elif not d.HasField("dim_value") or d.dim_value != want:
                    problems.append(f"{name} dim {axis}: expected {want}, found {d.dim_param or d.dim_value}")
    return problems


def save_onnx(model: Any, path: str | pathlib.Path) -> pathlib.Path:
    """Serialize as one self-contained file (weights inline; the deploy contract has no sidecars)."""
    path = pathlib.Path(path)
    data = model.SerializeToString()  # raises above the 2 GB protobuf limit rather than splitting
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def ort_session(model: Any, threads: int = 1) -> Any:
    """The onnxruntime session of every caller (bundle checker, inference, benchmarks, tests): CPU provider,
    `threads` intra-op threads (0: onnxruntime's default, all cores), one inter-op thread, warnings off.

    model: a file path, serialized bytes or an `onnx.ModelProto`. A missing, truncated or invalid model is a
    DataError naming the file (or the bytes' size), not onnxruntime's own exception."""
    import onnxruntime as ort  # heavy optional dependency: only ONNX checks, deploy and ONNX inference need it

    if isinstance(model, (str, os.PathLike)):
        path = pathlib.Path(model)
        if not path.is_file():
            raise DataError(describe(path, None, "an ONNX model file", "no such file"))
        src: Any = str(path)
        where, size = path, path.stat().st_size
    else:
        src = bytes(model) if isinstance(model, (bytes, bytearray)) else model.SerializeToString()
        where, size = "ONNX model", len(src)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types (InvalidProtobuf, Fail, InvalidGraph, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DataError(describe(where, None, f"an ONNX model onnxruntime can load ({size} bytes read)",
                                 f"{type(exc).__name__}: {first}")) from exc


def compare_with_jax(
    model: Any, fn: Callable[..., Any], feeds: Mapping[str, np.ndarray], input_order: Sequence[str] | None = None
) -> dict[str, float]:
    """Max |ORT − JAX| per output name. `feeds` are passed to `fn` positionally in `input_order`
    (default: the feeds' order)."""
    session = ort_session(model)
    names = [o.name for o in session.get_outputs()]
    ort_out = session.run(names, {k: np.asarray(v, np.float32) for k, v in feeds.items()})
    order = list(input_order or feeds)
    jax_out = fn(*[np.asarray(feeds[k], np.float32) for k in order])
    if not isinstance(jax_out, (tuple, list)):
        jax_out = (jax_out,)
    diffs = {}
    for name, a, b in zip(names, ort_out, jax_out):
        b = np.asarray(b)
        if a.shape != b.shape:
            raise DataError(f"{name}: expected ONNX output shape {b.shape} (JAX), found {a.shape}")
        diffs[name] = float(np.max(np.abs(a - b))) if a.size else 0.0
    return diffs
