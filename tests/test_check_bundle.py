"""a2f_jax.deploy.check: a valid synthetic bundle passes; each mutation of a consumer rule fails with its rule."""

from __future__ import annotations

import json
import pathlib
import shutil
import zipfile

import numpy as np
import onnx
import pytest

import bundle_fixtures as F
from a2f_jax.deploy import bundle, check
from a2f_jax.deploy import runtime_feed as rf
from a2f_jax.deploy.onnx_utils import export_onnx


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> dict[str, pathlib.Path]:
    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for kind, ids in (("regression", ("claire",)), ("diffusion", ("claire", "mark"))):
        out[kind] = bundle.write_bundle(root / kind, **F.bundle_kwargs(root, kind, ids))
    return out


def _copy(valid, kind, tmp_path) -> pathlib.Path:
    dst = tmp_path / kind
    shutil.copytree(valid[kind], dst)
    return dst


def _rules(violations, severity="error") -> set[str]:
    return {v.rule for v in violations if v.severity == severity}


def _edit_json(path: pathlib.Path, fn) -> None:
    obj = json.loads(path.read_text())
    fn(obj)
    path.write_text(json.dumps(obj))


def _resave(path: pathlib.Path, **changes) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    np.savez(path, **arrays)


@pytest.mark.parametrize("kind", ["regression", "diffusion"])
def test_valid_bundle_has_no_violations(valid, kind):
    assert check.check_bundle(valid[kind]) == []


def test_missing_network_info_key(valid, tmp_path):
    b = _copy(valid, "regression", tmp_path)
    _edit_json(b / "network_info.json", lambda o: o["params"].pop("num_verts_skin"))
    v = check.check_bundle(b, run_onnx=False)
    assert any(x.rule == "json.missing_key" and "params.num_verts_skin" in x.expected and x.file == "network_info.json" for x in v)


def test_float_buffer_len_is_rejected(valid, tmp_path):
    b = _copy(valid, "regression", tmp_path)
    _edit_json(b / "network_info.json", lambda o: o["audio_params"].__setitem__("buffer_len", 8320.0))
    assert "json.type" in _rules(check.check_bundle(b, run_onnx=False))


def test_float64_model_data(valid, tmp_path):
    b = _copy(valid, "regression", tmp_path)
    with np.load(b / "model_data.npz") as z:
        arrays = {k: z[k].astype(np.float64) if k == "shapes_mean_skin" else z[k] for k in z.files}
    np.savez(b / "model_data.npz", **arrays)
    v = [x for x in check.check_bundle(b, run_onnx=False) if x.rule == "npz.dtype"]
    assert len(v) == 1 and "shapes_mean_skin" in v[0].expected and v[0].found == "<f8"


def test_compressed_and_fortran_npz(valid, tmp_path):
    b = _copy(valid, "diffusion", tmp_path)
    with np.load(b / "model_data_claire.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["neutral_skin"] = np.asfortranarray(arrays["neutral_skin"])
    np.savez_compressed(b / "model_data_claire.npz", **arrays)
    rules = _rules(check.check_bundle(b, run_onnx=False))
    assert {"npz.compressed", "npz.order"} <= rules


def test_unicode_emo_names_and_int64_specs(valid, tmp_path):
    b = _copy(valid, "regression", tmp_path)
    with np.load(b / "implicit_emo_db.npz") as z:
        names = z["emo_spec_names"]
    _resave(b / "implicit_emo_db.npz", emo_spec_names=names.astype("U"), emo_spec_size=np.array([12, 18], np.int64))
    v = [x for x in check.check_bundle(b, run_onnx=False) if x.rule == "npz.dtype"]
    assert {("emo_spec_names" in x.expected) for x in v} == {True, False} and len(v) == 2


def test_renamed_onnx_input(valid, tmp_path):
    b = _copy(valid, "regression", tmp_path)
    model = onnx.load(str(b / "network.onnx"))
    for vi in model.graph.input:
        if vi.name == "input":
            vi.name = "audio"
    for node in model.graph.node:
        node.input[:] = ["audio" if n == "input" else n for n in node.input]
    onnx.save(model, str(b / "network.onnx"))
    v = [x for x in check.check_bundle(b) if x.rule == "onnx.names"]
    assert len(v) == 1 and "audio" in v[0].found


def test_dynamic_non_batch_dim(valid, tmp_path):
    b = _copy(valid, "diffusion", tmp_path)
    model = onnx.load(str(b / "network.onnx"))
    for vi in model.graph.input:
        if vi.name == "noise":
            vi.type.tensor_type.shape.dim[3].dim_param = "D"
    onnx.save(model, str(b / "network.onnx"))
    v = [x for x in check.check_bundle(b) if x.rule == "onnx.static"]
    assert len(v) == 1 and "noise dim 3" in v[0].expected


@pytest.mark.parametrize("key,value", [("face_mask_softness", 0.0), ("lip_open_offset", 0.3), ("eye_saccade_seed", 5000)])
def test_out_of_range_config(valid, tmp_path, key, value):
    b = _copy(valid, "diffusion", tmp_path)
    _edit_json(b / "model_config_mark.json", lambda o: o["config"].__setitem__(key, value))
    v = [x for x in check.check_bundle(b, run_onnx=False) if x.rule == "model_config.range"]
    assert len(v) == 1 and key in v[0].expected and v[0].file == "model_config_mark.json"


def test_float_saccade_seed_and_missing_source(valid, tmp_path):
    b = _copy(valid, "regression", tmp_path)
    def edit(o):
        o["config"]["eye_saccade_seed"] = 1.5
        o["config"]["source_shot"] = None
    _edit_json(b / "model_config.json", edit)
    v = check.check_bundle(b, run_onnx=False)
    assert any(x.rule == "json.type" and "eye_saccade_seed" in x.expected for x in v)
    assert any(x.rule == "model_config.source" and "source_shot" in x.expected for x in v)


def test_source_frame_outside_shot(valid, tmp_path):
    b = _copy(valid, "regression", tmp_path)
    _edit_json(b / "model_config.json", lambda o: o["config"].update(source_shot="shot_a", source_frame=12))
    v = [x for x in check.check_bundle(b, run_onnx=False) if x.rule == "model_config.source"]
    assert len(v) == 1 and "< 12" in v[0].expected


def test_wrong_emotion_length(valid, tmp_path):
    b = _copy(valid, "regression", tmp_path)
    _edit_json(b / "network_info.json", lambda o: o["params"]["default_emotion"].append(0.0))
    v = [x for x in check.check_bundle(b, run_onnx=False) if x.rule == "emotion.length"]
    assert len(v) == 1 and v[0].found == "4"


def test_extra_emotion_name_breaks_onnx_and_trt(valid, tmp_path):
    b = _copy(valid, "diffusion", tmp_path)
    def edit(o):
        o["params"]["emotions"].append("fear")
        o["params"]["default_emotion"].append(0.0)
    _edit_json(b / "network_info.json", edit)
    v = check.check_bundle(b, run_onnx=False)
    assert any(x.rule == "onnx.shape" and "emotion dim 2 = 4" in x.expected for x in v)
    assert any(x.rule == "trt_info.shape" for x in v)


def test_json_bom_nan_and_missing_model_json_key(valid, tmp_path):
    b = _copy(valid, "regression", tmp_path)
    (b / "network_info.json").write_bytes(b"\xef\xbb\xbf" + (b / "network_info.json").read_bytes())
    (b / "trt_info.json").write_text('{"trt_build_param": {"batch": NaN}}')
    _edit_json(b / "model.json", lambda o: o.pop("emotionDatabasePath"))
    rules = _rules(check.check_bundle(b, run_onnx=False))
    assert {"json.bom", "json.parse", "json.missing_key"} <= rules


def test_diffusion_model_json_lengths_and_missing_file(valid, tmp_path):
    b = _copy(valid, "diffusion", tmp_path)
    _edit_json(b / "model.json", lambda o: o["modelConfigPaths"].pop())
    (b / "model_data_mark.npz").unlink()
    v = check.check_bundle(b, run_onnx=False)
    assert any(x.rule == "model_json.lengths" and "modelConfigPaths" in x.expected for x in v)
    assert any(x.rule == "file.missing" and "model_data_mark.npz" in x.expected for x in v)


def test_neutral_jaw_size_must_match_network_info(valid, tmp_path):
    b = _copy(valid, "regression", tmp_path)
    _resave(b / "model_data.npz", neutral_jaw=np.zeros((4, 3), np.float32))
    v = [x for x in check.check_bundle(b, run_onnx=False) if x.rule == "npz.size"]
    assert len(v) == 1 and "neutral_jaw" in v[0].expected and v[0].found == "12"


def test_nan_output_fails_the_run(valid, tmp_path):
    b = _copy(valid, "regression", tmp_path)
    model = onnx.load(str(b / "network.onnx"))
    for t in model.graph.initializer:
        arr = onnx.numpy_helper.to_array(t)
        if arr.dtype == np.float32 and arr.size > 1:
            t.CopyFrom(onnx.numpy_helper.from_array(np.full_like(arr, np.nan), t.name))
    onnx.save(model, str(b / "network.onnx"))
    assert "onnx.run_finite" in _rules(check.check_bundle(b))


def test_batch_mixing_network_fails(valid, tmp_path):
    b = _copy(valid, "regression", tmp_path)
    info = json.loads((b / "network_info.json").read_text())
    base = F.regression_standin(info)
    shapes = check.C.onnx_tensor_shapes(info)
    mixing = lambda x, e: base(x, e) + x.mean(axis=(0, 2))[None, :, None]  # noqa: E731  rows see each other
    model = export_onnx(mixing, [("input", shapes["input"]), ("emotion", shapes["emotion"])], [("result", shapes["result"])])
    onnx.save(model, str(b / "network.onnx"))
    assert "onnx.batch_rows" in _rules(check.check_bundle(b))


def test_uncompressed_zip_detection_reads_headers_only(valid):
    entries = check.npz_entries(valid["regression"] / "model_data.npz")
    assert [e.name for e in entries] == list(check.C.MODEL_DATA_KEYS)
    assert all(e.dtype == np.float32 and not e.compressed and not e.fortran_order for e in entries)
    with zipfile.ZipFile(valid["regression"] / "model_data.npz") as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())


def test_cli_exit_codes(valid, tmp_path, capsys):
    import runpy
    import sys

    def run(path):
        old = sys.argv
        sys.argv = ["check_bundle.py", str(path), "--no-run"]
        try:
            with pytest.raises(SystemExit) as e:
                runpy.run_path(str(pathlib.Path(__file__).parents[1] / "scripts" / "check_bundle.py"), run_name="__main__")
        finally:
            sys.argv = old
        return e.value.code

    assert run(valid["diffusion"]) == 0
    b = _copy(valid, "diffusion", tmp_path)
    _edit_json(b / "model_config_claire.json", lambda o: o["config"].pop("skin_strength"))
    assert run(b) == 1
    assert "config.skin_strength" in capsys.readouterr().out


# ------------------------------------------------------------------------------ runtime feeding (SDK style)


def test_regression_windows_are_centred_on_frames():
    audio = np.arange(1, 16001, dtype=np.float32)
    w = rf.regression_windows(audio, fps=30.0)
    assert w.shape == (30, 8320)
    for k in (0, 7, 29):
        start = int(np.floor(k * 16000 / 30)) - 4160
        idx = np.arange(start, start + 8320)
        want = np.where((idx >= 0) & (idx < 16000), idx + 1, 0).astype(np.float32)
        np.testing.assert_array_equal(w[k], want)
        assert w[k][4160] == audio[int(np.floor(k * 16000 / 30))]  # centre sample = frame time


def test_diffusion_stream_windows_latents_and_emitted_frames():
    info = F.diffusion_info(("a",))
    stream = rf.DiffusionStream.from_network_info(info)
    assert (stream.fps, stream.stride, stream.frames) == (60.0, 8000, 60)
    calls = []
    audio = np.arange(1, 16001, dtype=np.float32)  # 1 s

    def runner(feeds):
        calls.append(feeds)
        k = len(calls) - 1
        pred = np.zeros((1, 60, stream.out_dim), np.float32)
        pred[0, :, 0] = k * 100 + np.arange(60)  # call index and frame index
        return {"prediction": pred, "output_latents": feeds["input_latents"] + 1}

    out = rf.run_diffusion(runner, audio, stream, np.ones(1), np.zeros(3), np.zeros((3, 60, stream.out_dim)))
    assert out.shape == (60, stream.out_dim)
    # first emitted frame (t = 0) is window 1 frame 15 (center frame 15 -> prediction row 15 + 15)
    assert out[0, 0] == 100 + 30 and out[14, 0] == 100 + 44 and out[15, 0] == 200 + 15
    for k, feeds in enumerate(calls):
        start = -16000 + 8000 * k
        idx = np.arange(start, start + 16000)
        np.testing.assert_array_equal(feeds["window"][0], np.where((idx >= 0) & (idx < 16000), idx + 1, 0))
        assert np.all(feeds["input_latents"] == k)  # latents carried between calls, zeros at start
