"""Training curves from a run's TensorBoard event files, without TensorFlow or TensorBoard.

    plot_training_curves("workspace/output_train_reg/<run>", "curves.png")

Event files (`events.out.tfevents.*`, written by tensorboardX) are TFRecord streams: per record a
little-endian u64 payload length, the masked CRC-32C of those 8 bytes, the payload (a serialized
`Event` protobuf) and the masked CRC-32C of the payload. tensorboardX ships the `Event` message
classes, so only the framing is parsed here. A run that was resumed has several files and may log a
step twice: the later write wins. Files in subfolders (tensorboardX `add_scalars`) are named after the
subfolder.
"""

from __future__ import annotations

import math
import os
import pathlib
import struct
from typing import BinaryIO, Iterator

import matplotlib

matplotlib.use("Agg")  # headless; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tensorboardX.proto import event_pb2, summary_pb2  # noqa: E402
from tensorboardX.record_writer import masked_crc32c  # noqa: E402

from a2f_jax.errors import DataError, describe  # noqa: E402
from a2f_jax.io_utils import atomic_path  # noqa: E402

EVENT_GLOB = "events.out.tfevents.*"
_HEADER = struct.Struct("<QI")  # payload length, masked CRC of the length
_CRC = struct.Struct("<I")


def iter_records(f: BinaryIO, name: str = "<stream>", verify_payload: bool = False) -> Iterator[bytes]:
    """Payloads of a TFRecord stream. A record cut short at the end (a writer still running) ends the
    stream quietly; a bad length CRC (or payload CRC with `verify_payload`; the CRC is pure Python here,
    ~3 MB/s) raises DataError."""
    offset = 0
    while True:
        header = f.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        length, length_crc = _HEADER.unpack(header)
        if masked_crc32c(header[:8]) != length_crc:
            raise DataError(describe(name, f"record at byte {offset}", "a TFRecord length with a valid CRC", "a corrupt header"))
        payload = f.read(length)
        footer = f.read(_CRC.size)
        if len(payload) < length or len(footer) < _CRC.size:
            return
        if verify_payload and masked_crc32c(payload) != _CRC.unpack(footer)[0]:
            raise DataError(describe(name, f"record at byte {offset}", "a payload matching its CRC", "a corrupt payload"))
        offset += _HEADER.size + length + _CRC.size
        yield payload


def _scalar_value(value: summary_pb2.Summary.Value) -> float | None:
    """The float of a scalar summary value (simple_value, or a one-element float tensor), else None."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    if kind == "tensor":
        t = value.tensor
        if len(t.tensor_shape.dim) != 0:
            return None
        for field in (t.float_val, t.double_val, t.int_val, t.int64_val):
            if len(field) == 1:
                return float(field[0])
        if t.tensor_content:
            dtype = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64}.get(t.dtype)
            if dtype is not None and len(t.tensor_content) == np.dtype(dtype).itemsize:
                return float(np.frombuffer(t.tensor_content, dtype)[0])
    return None


def _series_name(tag: str, rel_dir: str) -> str:
    """Tag of a file in the run folder as is; `add_scalars("grad", {"skin": ..})` files sit in grad/skin/
    with tag "grad" and become "grad/skin"; any other subfolder is appended in brackets."""
    if rel_dir == ".":
        return tag
    if rel_dir.startswith(tag + "/"):
        return rel_dir
    return f"{tag} [{rel_dir}]"


def event_files(run_dir: str | os.PathLike) -> list[pathlib.Path]:
    """Event files under `run_dir` (recursively), in name order (tensorboardX names start with the time)."""
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(describe(run_dir, None, "a training run folder", "no such folder"))
    return sorted(run_dir.rglob(EVENT_GLOB), key=lambda p: (str(p.parent), p.name))


def read_scalars(run_dir: str | os.PathLike, verify_payload: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{tag: (steps int64 [n], values float64 [n])} of every scalar summary in the run, sorted by step.

    For a step logged twice (a resumed run) the record with the later wall time wins.
    """
    run_dir = pathlib.Path(run_dir)
    files = event_files(run_dir)
    if not files:
        raise DataError(describe(run_dir, None, f"TensorBoard event files ({EVENT_GLOB})", "none"))
    rows: dict[str, list[tuple[float, int, int, float]]] = {}  # tag -> (wall_time, order, step, value)
    order = 0
    for path in files:
        rel = path.parent.relative_to(run_dir).as_posix()
        with open(path, "rb") as f:
            for payload in iter_records(f, str(path), verify_payload):
                event = event_pb2.Event()
                try:
                    event.ParseFromString(payload)
                except Exception as e:  # protobuf's DecodeError has no stable import path
                    raise DataError(describe(path, "event", "a serialized Event protobuf", f"{type(e).__name__}: {e}")) from e
                if event.WhichOneof("what") != "summary":
                    continue
                for value in event.summary.value:
                    x = _scalar_value(value)
                    if x is not None:
                        rows.setdefault(_series_name(value.tag, rel), []).append((event.wall_time, order, int(event.step), x))
                        order += 1
    out = {}
    for tag, items in rows.items():
        latest: dict[int, float] = {}
        for _, _, step, x in sorted(items):  # by wall time, then write order: later writes overwrite
            latest[step] = x
        steps = np.array(sorted(latest), dtype=np.int64)
        out[tag] = (steps, np.array([latest[s] for s in steps], dtype=np.float64))
    return dict(sorted(out.items()))


def _ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard-style smoothing, debiased so the first points are not pulled towards zero."""
    out = np.empty_like(values)
    acc, norm = 0.0, 0.0
    for i, v in enumerate(values):
        acc = weight * acc + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out[i] = acc / norm
    return out


def _is_noisy(values: np.ndarray) -> bool:
    """True for curves that zig-zag (minibatch losses), false for schedules (learning rate): smoothing a
    schedule would only shift it."""
    d = np.diff(values)
    d = d[d != 0]
    return len(d) > 2 and float(np.mean(np.sign(d[1:]) != np.sign(d[:-1]))) > 0.2


def plot_training_curves(run_dir: str | os.PathLike, out_png: str | os.PathLike, smoothing: float = 0.9,
                         ncols: int = 3, dpi: float = 100.0) -> pathlib.Path:
    """One PNG with a subplot per scalar tag of the run (losses, learning rate, validation metrics).

    A tag whose values are all positive gets a log y axis. With more than 50 points the raw curve is
    drawn faintly under its EMA (`smoothing`, as TensorBoard's slider) unless it is a smooth schedule. Returns `out_png`.
    """
    scalars = read_scalars(run_dir)
    if not scalars:
        raise DataError(describe(run_dir, None, "scalar summaries in the event files", "none"))
    n = len(scalars)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 2.8 * nrows + 0.4), squeeze=False)
    try:
        for ax, (tag, (steps, values)) in zip(axes.flat, scalars.items()):
            ok = np.isfinite(values)
            steps, values = steps[ok], values[ok]
            if len(values) > 50 and 0.0 < smoothing < 1.0 and _is_noisy(values):
                ax.plot(steps, values, color="tab:blue", alpha=0.25, linewidth=0.8)
                ax.plot(steps, _ema(values, smoothing), color="tab:blue", linewidth=1.4)
            else:
                ax.plot(steps, values, color="tab:blue", linewidth=1.4, marker="o" if len(values) <= 20 else None, markersize=3)
            if len(values) and (values > 0).all():
                ax.set_yscale("log")
            title = tag if ok.all() else f"{tag} ({int((~ok).sum())} non-finite)"
            last = f"last {values[-1]:.4g} @ {steps[-1]}" if len(values) else "no finite values"
            ax.set_title(f"{title}\n{last}", fontsize="small")
            ax.grid(alpha=0.3, which="both")
            ax.tick_params(labelsize="x-small", which="both")
        for ax in axes.flat[n:]:
            ax.set_axis_off()
        for i, ax in enumerate(axes.flat[:n]):
            if i + ncols >= n:  # bottom of its column
                ax.set_xlabel("step", fontsize="small")
        fig.suptitle(pathlib.Path(run_dir).resolve().name, fontsize="medium")
        fig.tight_layout()
        out_png = pathlib.Path(out_png)
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return out_png
