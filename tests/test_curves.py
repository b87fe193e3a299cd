"""Training curves: TFRecord framing and scalar events written by tensorboardX read back exactly, resumed
runs, truncated and corrupt files, and the curve PNG."""

from __future__ import annotations

import io
import os

import imageio.v3 as iio
import numpy as np
import pytest
from tensorboardX import SummaryWriter
from tensorboardX.record_writer import RecordWriter

from a2f_jax.errors import DataError
from a2f_jax.infer import curves

LOSS = [2.0, 1.5, 1.25, 0.75, 0.5]
LR = [1e-4, 2e-4, 3e-4, 3e-4, 2.5e-4]


def _write_run(run_dir, walltime0: float = 1000.0) -> None:
    w = SummaryWriter(str(run_dir))
    for step, (loss, lr) in enumerate(zip(LOSS, LR)):
        w.add_scalar("loss", loss, step * 10, walltime=walltime0 + step)
        w.add_scalar("lr", lr, step * 10, walltime=walltime0 + step)
    w.add_scalar("val/lip_dist_mae", -0.125, 40, walltime=walltime0 + 10)  # negative: stays on a linear axis
    w.add_histogram("weights", np.arange(10.0), 40, walltime=walltime0 + 10)  # not a scalar: ignored
    w.add_text("note", "hello", 0)
    w.close()


def test_record_framing_matches_tensorboardx_writer(tmp_path):
    path = tmp_path / "records"
    payloads = [b"", b"a", os.urandom(1000), b"\x00" * 70000]
    writer = RecordWriter(str(path))
    for p in payloads:
        writer.write(p)
    writer.close()
    with open(path, "rb") as f:
        assert list(curves.iter_records(f, str(path), verify_payload=True)) == payloads


def test_scalars_read_back_exactly(tmp_path):
    _write_run(tmp_path)
    scalars = curves.read_scalars(tmp_path)
    assert list(scalars) == ["loss", "lr", "val/lip_dist_mae"]
    steps, values = scalars["loss"]
    np.testing.assert_array_equal(steps, [0, 10, 20, 30, 40])
    assert steps.dtype == np.int64 and values.dtype == np.float64
    np.testing.assert_array_equal(values, np.float32(LOSS))  # simple_value is a float32
    np.testing.assert_array_equal(scalars["lr"][1], np.float32(LR))
    np.testing.assert_array_equal(scalars["val/lip_dist_mae"][0], [40])
    np.testing.assert_array_equal(scalars["val/lip_dist_mae"][1], [-0.125])


def test_resumed_run_later_write_wins_and_subfolders(tmp_path):
    _write_run(tmp_path, walltime0=1000.0)
    # Resumed from the step-20 checkpoint: steps 20..50 again, into a second file (a later start time
    # names it differently; within one second tensorboardX would reuse the name, hence the suffix).
    w = SummaryWriter(str(tmp_path), filename_suffix=".resumed")
    for step, value in [(20, 9.0), (30, 8.0), (50, 7.0)]:
        w.add_scalar("loss", value, step, walltime=2000.0 + step)
    w.add_scalars("grad", {"skin": 0.5, "tongue": 0.25}, 5, walltime=2100.0)
    w.close()
    w = SummaryWriter(str(tmp_path / "eval"))  # another writer's subfolder
    w.add_scalar("loss", 0.375, 40)
    w.close()
    scalars = curves.read_scalars(tmp_path)
    steps, values = scalars["loss"]
    np.testing.assert_array_equal(steps, [0, 10, 20, 30, 40, 50])
    np.testing.assert_array_equal(values, np.float32([2.0, 1.5, 9.0, 8.0, 0.5, 7.0]))
    assert scalars["grad/skin"][1].tolist() == [0.5]
    assert scalars["grad/tongue"][1].tolist() == [0.25]
    assert scalars["loss [eval]"][1].tolist() == [0.375]


def _event_file(run_dir):
    (path,) = curves.event_files(run_dir)
    return path


def test_truncated_tail_is_ignored_corruption_is_reported(tmp_path):
    _write_run(tmp_path)
    path = _event_file(tmp_path)
    data = path.read_bytes()
    n_full = sum(1 for _ in curves.iter_records(io.BytesIO(data)))
    # A writer that is still running leaves a partial record: every complete one is still read.
    for cut in (3, 13, len(data) - 2):
        assert sum(1 for _ in curves.iter_records(io.BytesIO(data[:cut]))) < n_full
    assert sum(1 for _ in curves.iter_records(io.BytesIO(data[:-2]))) == n_full - 1
    path.write_bytes(data[:-2])
    assert len(curves.read_scalars(tmp_path)["loss"][0]) == len(LOSS)

    bad_header = bytearray(data)
    bad_header[2] ^= 0xFF  # the first record's length
    with pytest.raises(DataError, match="corrupt header"):
        list(curves.iter_records(io.BytesIO(bytes(bad_header)), "f"))
    bad_payload = bytearray(data)
    bad_payload[20] ^= 0xFF  # inside the first payload
    with pytest.raises(DataError, match="corrupt payload"):
        list(curves.iter_records(io.BytesIO(bytes(bad_payload)), "f", verify_payload=True))


def test_missing_or_empty_runs(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        curves.read_scalars(tmp_path / "nope")
    with pytest.raises(DataError, match="event files"):
        curves.plot_training_curves(tmp_path, tmp_path / "c.png")
    w = SummaryWriter(str(tmp_path / "texts"))
    w.add_text("note", "only text", 0)
    w.close()
    with pytest.raises(DataError, match="scalar summaries"):
        curves.plot_training_curves(tmp_path / "texts", tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_plot_training_curves_png(tmp_path):
    run = tmp_path / "run"
    w = SummaryWriter(str(run))
    rng = np.random.default_rng(0)
    for step in range(120):  # enough points for the smoothed curve
        w.add_scalar("loss", float(np.exp(-step / 40) + 0.05 * rng.random()), step)
        w.add_scalar("lr", 1e-4 * min(1.0, (step + 1) / 30), step)
    w.add_scalar("val/lip_dist_corr", -0.5, 0)
    w.add_scalar("val/lip_dist_corr", 0.5, 100)
    w.add_scalar("val/nan_metric", float("nan"), 100)
    w.close()
    out = curves.plot_training_curves(run, tmp_path / "curves.png", ncols=2, dpi=50)
    img = iio.imread(out)
    assert img.shape[:2] == (int(round((2.8 * 2 + 0.4) * 50)), int(round(4.2 * 2 * 50)))  # 4 tags: 2 x 2
    assert img[..., :3].astype(float).std() > 10


def test_noisy_curves_are_smoothed_schedules_are_not():
    steps = np.arange(200)
    assert curves._is_noisy(np.exp(-steps / 50) + 0.05 * np.random.default_rng(0).random(200))
    assert not curves._is_noisy(1e-4 * np.minimum(1.0, (steps + 1) / 30))
    assert not curves._is_noisy(0.5 * (1 + np.cos(np.pi * steps / 200)))
    ema = curves._ema(np.array([4.0, 4.0, 4.0]), 0.9)
    np.testing.assert_allclose(ema, 4.0)  # debiased: a constant stays constant from the first point


def test_tensor_style_scalars(tmp_path):
    """TensorFlow and newer writers log scalars as 0-d tensors (float_val, double_val or raw content)."""
    from tensorboardX.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2

    def value(tag, **tensor):
        return summary_pb2.Summary.Value(tag=tag, tensor=tensor_pb2.TensorProto(**tensor))

    vector = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=2)])
    values = [
        value("f32", dtype=1, float_val=[0.1]),
        value("f64", dtype=2, double_val=[0.1]),
        value("raw64", dtype=2, tensor_content=np.float64(0.3).tobytes()),
        value("vector", dtype=1, float_val=[1.0, 2.0], tensor_shape=vector),  # not a scalar: ignored
    ]
    writer = RecordWriter(str(tmp_path / "events.out.tfevents.1.host"))
    writer.write(event_pb2.Event(wall_time=1.0, step=7, summary=summary_pb2.Summary(value=values)).SerializeToString())
    writer.close()
    scalars = curves.read_scalars(tmp_path)
    assert sorted(scalars) == ["f32", "f64", "raw64"]
    assert scalars["f32"][1].tolist() == [float(np.float32(0.1))]
    assert scalars["f64"][1].tolist() == [0.1]  # exact in float64
    assert scalars["raw64"][1].tolist() == [0.3] and scalars["raw64"][0].tolist() == [7]
