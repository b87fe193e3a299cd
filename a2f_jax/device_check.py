"""One prepared check of an accelerator (or, with `quick`, of the CPU path): environment, numerics tests,
benchmarks in float32 and bfloat16, projected wall time of the original's example trainings, and a short
synthetic training whose held-out lip error is compared with a CPU run of the same seed.

    python scripts/device_check.py --out device_check.json [--quick] [--budget-s 480]

It uses whatever JAX the machine has (no network); packages it needs beyond that are listed in
`docs/DEVELOPING.md`. Every section records its own wall time; a section that would run past the budget is
skipped and says so, so the JSON always comes back.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Callable

# lazy imports: each section loads its stack only when the budget lets it run, so the JSON always comes back

REPO = pathlib.Path(__file__).resolve().parents[1]

# Tests whose numbers could differ on another backend: encoder parity with transformers' fixtures, the GRU,
# diffusion schedules and samplers, the ops (custom-VJP dense, threefry, encoder convs) against their references,
# ONNX vs JAX on tiny nets.
NUMERICS_TESTS = (
    "tests/test_audio_encoder.py", "tests/test_gru.py", "tests/test_gaussian_diffusion.py", "tests/test_ops_dense.py",
    "tests/test_ops_random.py", "tests/test_ops_conv.py", "tests/test_encoder_onnx.py", "tests/test_onnx_export.py",
    "tests/test_mixed_precision.py",  # bf16 tolerances on real bf16 units
    "tests/test_reference_ops.py",  # one train step of each network, plain vs CPU-tuned ops
)
QUICK_NUMERICS_TESTS = ("tests/test_gru.py", "tests/test_ops_dense.py")

# The original's example trainings (its example configs and dataset: 54 clips of 21,039 frames at 30 fps plus
# 11 muted clips of 120 frames; see docs/DEVELOPING.md).
EXAMPLE_REGRESSION = {"epochs": 50, "steps_per_epoch": 697}
EXAMPLE_DIFFUSION = {"epochs": 400, "items_per_epoch": 65, "clip_frames_30fps": 21039, "clips": 54,
                     "muted_clips": 11, "muted_frames_30fps": 120, "subsegment": (30, 600)}
GUIDE_DIFFUSION_MINUTES = (30, 40)  # the original's guide, on an unnamed GPU


def _package(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    """Devices, versions and memory of the default backend."""
    import jax

    devices = jax.devices()
    out: dict[str, Any] = {
        "python": sys.version.split()[0], "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "backend": jax.default_backend(), "device_count": len(devices), "process_count": jax.process_count(),
        "devices": [{"id": d.id, "kind": d.device_kind, "platform": d.platform} for d in devices],
        "packages": {n: _package(n) for n in ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "flax", "optax",
                                              "orbax-checkpoint", "numpy", "onnx", "onnxruntime", "jax2onnx",
                                              "ml-collections", "librosa", "soundfile", "transformers")},
    }
    try:
        out["platform_version"] = jax.extend.backend.get_backend().platform_version
    except Exception:  # not every JAX exposes it; the versions above still say what runs
        out["platform_version"] = None
    stats = getattr(devices[0], "memory_stats", lambda: None)()
    if stats:
        out["memory"] = {k: int(stats[k]) for k in ("bytes_limit", "bytes_in_use", "peak_bytes_in_use") if k in stats}
    return out


def numerics(quick: bool, timeout_s: float) -> dict:
    """The numerics tests on the default backend (pytest in a subprocess that keeps this backend)."""
    import jax

    tests = QUICK_NUMERICS_TESTS if quick else NUMERICS_TESTS
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "" if jax.default_backend() != "cpu" else "cpu"  # the tests' conftest defaults to cpu
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"tests": list(tests), "ok": False, "summary": f"timed out after {timeout_s:.0f} s"}
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    return {"tests": list(tests), "ok": proc.returncode == 0, "summary": lines[-1] if lines else proc.stderr[-500:],
            "failed": failed[:20]}


def _benchmark_cases(quick: bool) -> list[tuple[str, Callable[[], dict]]]:
    """(name, fn) of every benchmark, float32 then bfloat16; quick: tiny shapes, fewer cases."""
    from a2f_jax.benchmarks import diffusion_infer, diffusion_train, regression

    cases: list[tuple[str, Callable[[], dict]]] = []
    shapes = ((120, 1), (120, 4)) if quick else ((120, 1), (120, 4), (120, 16), (600, 1), (600, 4), (600, 16))
    for dtype in ("float32", "bfloat16"):
        cases.append((f"regression.train_step.{dtype}", lambda d=dtype: regression.train_step(quick, compute_dtype=d)))
        cases.append((f"regression.inference.{dtype}", lambda d=dtype: regression.inference(quick, compute_dtype=d)))
        for frames, batch in shapes:
            cases.append((f"diffusion_train.{frames}_b{batch}.{dtype}",
                          lambda f=frames, b=batch, d=dtype: diffusion_train.train_iteration(f, b, quick, compute_dtype=d)))
        cases.append((f"diffusion_infer.jax_window.{dtype}",
                      lambda d=dtype: diffusion_infer.jax_window(quick, compute_dtype=d)))
    return cases


def benchmarks(quick: bool, deadline: float) -> dict:
    out: dict[str, Any] = {}
    for name, fn in _benchmark_cases(quick):
        if time.monotonic() > deadline:
            out[name] = {"skipped": "time budget spent"}
            continue
        t0 = time.perf_counter()
        try:
            out[name] = fn()
        except Exception as exc:  # one failing case is reported; the others still run
            out[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc().splitlines()[-6:]}
        out[name]["section_s"] = round(time.perf_counter() - t0, 1)
    return out


def mean_subsegment_frames_60fps(cfg: dict = EXAMPLE_DIFFUSION) -> float:
    """Mean frames (60 fps) of a training item of the example: a random subsegment n ~ U{lo..hi}, capped at the
    clip's length. Real clips are taken at their mean length; muted clips are short and never capped above."""
    lo, hi = cfg["subsegment"]
    clip_len = 2 * cfg["clip_frames_30fps"] / cfg["clips"]
    muted_len = 2 * cfg["muted_frames_30fps"]

    def mean_capped(length: float) -> float:
        values = [min(n, length) for n in range(lo, hi + 1)]
        return sum(values) / len(values)

    total = cfg["clips"] * mean_capped(clip_len) + cfg["muted_clips"] * mean_capped(muted_len)
    return total / (cfg["clips"] + cfg["muted_clips"])


def projections(bench: dict, dtype: str) -> dict:
    """Projected wall time of the original's example trainings from the measured iteration times: diffusion
    time per item is interpolated linearly in frames between the 120- and 600-frame iterations (batch 1)."""
    out: dict[str, Any] = {}
    reg = bench.get(f"regression.train_step.{dtype}", {})
    if "step_s" in reg:
        steps = EXAMPLE_REGRESSION["epochs"] * EXAMPLE_REGRESSION["steps_per_epoch"]
        out["regression_example_min"] = round(steps * reg["step_s"] / 60, 1)
        out["regression_steps"] = steps
    short, long_ = bench.get(f"diffusion_train.120_b1.{dtype}", {}), bench.get(f"diffusion_train.600_b1.{dtype}", {})
    if "best_s" in short and "best_s" in long_ and long_.get("frames") != short.get("frames"):
        f0, f1 = short["frames"], long_["frames"]
        slope = (long_["best_s"] - short["best_s"]) / (f1 - f0)
        mean_frames = mean_subsegment_frames_60fps()
        per_item = short["best_s"] + slope * (mean_frames - f0)
        items = EXAMPLE_DIFFUSION["epochs"] * EXAMPLE_DIFFUSION["items_per_epoch"]
        out.update({"diffusion_example_min": round(items * per_item / 60, 1), "diffusion_items": items,
                    "diffusion_mean_frames_60fps": round(mean_frames, 1), "diffusion_s_per_item": round(per_item, 4),
                    "original_guide_min": list(GUIDE_DIFFUSION_MINUTES)})
    return out


def ratios(bench: dict) -> dict:
    """The issue's targets: batch 16 vs batch 1 frames/s, and bf16 vs float32 on the diffusion iteration."""
    out: dict[str, Any] = {}

    def fps(name: str) -> float | None:
        return bench.get(name, {}).get("frames_per_s")

    for frames in (120, 600):
        b1, b16 = fps(f"diffusion_train.{frames}_b1.float32"), fps(f"diffusion_train.{frames}_b16.float32")
        if b1 and b16:
            out[f"diffusion_{frames}_b16_over_b1"] = round(b16 / b1, 2)
        f32, bf16 = fps(f"diffusion_train.{frames}_b1.float32"), fps(f"diffusion_train.{frames}_b1.bfloat16")
        if f32 and bf16:
            out[f"diffusion_{frames}_b1_bf16_over_f32"] = round(bf16 / f32, 2)
    return out


def short_training(quick: bool, workdir: pathlib.Path, compute_dtype: str = "float32") -> dict:
    """A short regression training on the built-in synthetic dataset on the default backend; returns the trainer's
    held-out lip vertex error and timings. `compute_dtype`: the train key COMPUTE_DTYPE."""
    from a2f_jax import config
    from a2f_jax.data import synthetic
    from a2f_jax.preproc import run as preproc_run
    from a2f_jax.train import entry

    steps, batch = (10, 4) if quick else (300, 16)
    os.environ["A2F_DATASETS_ROOT"] = str(workdir / "datasets")
    os.environ["A2F_WORKSPACE_ROOT"] = str(workdir / "workspace")
    config_dir = REPO / "configs" / "synthetic-regression"  # the -min dataset has no lip vertex lists
    t0 = time.perf_counter()
    if not (workdir / "datasets" / "a2f-synthetic").is_dir():
        synthetic.generate(workdir / "datasets" / "a2f-synthetic", seed=0)
    preproc_run(config.load(config_dir), "synth")
    overrides = [f"train.BATCH_SIZE={batch}", f"train.VALIDATION_PERIOD={steps}", "train.LOG_PERIOD=1000", f"train.CHECKPOINT_PERIOD={steps}",
                 f"train.COMPUTE_DTYPE={compute_dtype!r}"]
    run_dir = entry.train(config.load(config_dir, overrides), max_steps=steps, show_progress=False)
    history = json.loads((pathlib.Path(run_dir) / "history.json").read_text())
    val = [h for h in history if "val/lip_vertex_error" in h]
    return {"steps": steps, "val_lip_vertex_error": val[-1]["val/lip_vertex_error"] if val else None,
            "wall_s": round(time.perf_counter() - t0, 1), "compute_dtype": compute_dtype}


def _with_comparison(out: dict, run: dict, reference: dict, tolerance: float) -> dict:
    """`out` plus the relative difference of the two runs' held-out lip errors and whether it is within
    `tolerance`; a run without that number (it failed, or timed out) is not ok."""
    a, b = run.get("val_lip_vertex_error"), reference.get("val_lip_vertex_error")
    if a is None or b is None:
        return {**out, "ok": False}
    diff = round(abs(a - b) / max(abs(b), 1e-12), 4)
    return {**out, "relative_difference": diff, "ok": diff <= tolerance}


def training_parity(quick: bool, timeout_s: float, tolerance: float = 0.10) -> dict:
    """The short training here and in a CPU subprocess with the same seed: held-out lip errors within
    `tolerance` (relative). On a CPU-only machine both runs are CPU runs, which checks the harness."""
    import jax

    with tempfile.TemporaryDirectory(prefix="a2f_device_check_") as tmp:
        here = short_training(quick, pathlib.Path(tmp) / "device")
        env = dict(os.environ, JAX_PLATFORMS="cpu")
        cmd = [sys.executable, "-m", "a2f_jax.device_check", "--training-only", str(pathlib.Path(tmp) / "cpu")]
        cmd += ["--quick"] if quick else []
        try:
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
            cpu = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {
                "error": proc.stderr.strip().splitlines()[-3:]}
        except subprocess.TimeoutExpired:
            cpu = {"error": f"CPU run timed out after {timeout_s:.0f} s"}
    out = {"backend": jax.default_backend(), "device": here, "cpu": cpu, "tolerance": tolerance}
    return _with_comparison(out, here, cpu, tolerance)


def precision_parity(quick: bool, float32_run: dict, tolerance: float = 0.10) -> dict:
    """The short training in bfloat16 on this backend against its float32 run (`training_parity`'s "device",
    same seed): held-out lip errors within `tolerance` (relative). Too slow for the CPU test suite (no bf16
    units there), so this is where the issue's "bf16 reaches the float32 lip error within 10 %" is checked."""
    with tempfile.TemporaryDirectory(prefix="a2f_device_check_bf16_") as tmp:
        low = short_training(quick, pathlib.Path(tmp), "bfloat16")
    out = {"float32": float32_run, "bfloat16": low, "tolerance": tolerance}
    return _with_comparison(out, low, float32_run, tolerance)


def run(quick: bool = False, budget_s: float = 480.0) -> dict:
    """Every section in order, each within what is left of `budget_s`."""
    start = time.monotonic()
    deadline = start + budget_s
    report: dict[str, Any] = {"quick": quick, "budget_s": budget_s, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                              "section_s": {}}

    def section(name: str, fn: Callable[[], Any], reserve_s: float = 0.0) -> None:
        left = deadline - time.monotonic() - reserve_s
        if left <= 0:
            report[name] = {"skipped": "time budget spent"}
            return
        t0 = time.perf_counter()
        try:
            report[name] = fn()
        except Exception as exc:
            report[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc().splitlines()[-6:]}
        report["section_s"][name] = round(time.perf_counter() - t0, 1)

    # The training comparison is the check that matters most after the environment: keep time for it.
    training_reserve = 0.0 if quick else min(150.0, budget_s / 4)
    section("environment", environment)
    section("numerics", lambda: numerics(quick, max(30.0, (deadline - time.monotonic()) / 4)), training_reserve)
    section("benchmarks", lambda: benchmarks(quick, deadline - training_reserve), training_reserve)
    bench = report.get("benchmarks", {}) if isinstance(report.get("benchmarks"), dict) else {}
    report["projections"] = {d: projections(bench, d) for d in ("float32", "bfloat16")}
    report["ratios"] = ratios(bench)
    section("training_parity", lambda: training_parity(quick, max(30.0, deadline - time.monotonic() - 5)))
    f32_run = report["training_parity"].get("device", {}) if isinstance(report.get("training_parity"), dict) else {}
    section("precision_parity", lambda: precision_parity(quick, f32_run))
    report["total_s"] = round(time.monotonic() - start, 1)
    return report


def _training_only(argv: list[str]) -> None:
    """Subprocess entry of `training_parity`: the short training, its result as the last stdout line."""
    workdir = pathlib.Path(argv[0])
    result = short_training("--quick" in argv, workdir)
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--training-only"]:
        import logging

        logging.disable(logging.CRITICAL)
        _training_only(sys.argv[2:])


def summary(report: dict) -> str:
    """A few lines for the console: what ran, what failed, the headline numbers."""
    env = report.get("environment", {})
    lines = [f"backend {env.get('backend')} ({env.get('device_count')} x {(env.get('devices') or [{}])[0].get('kind')}), "
             f"jax {env.get('packages', {}).get('jax')}, {report.get('total_s')} s"]
    num = report.get("numerics", {})
    lines.append(f"numerics: {'ok' if num.get('ok') else 'FAILED'} ({num.get('summary', num.get('skipped'))})")
    bench = report.get("benchmarks", {})
    bad = [k for k, v in bench.items() if isinstance(v, dict) and ("error" in v or "skipped" in v)]
    lines.append(f"benchmarks: {len(bench) - len(bad)} ran" + (f", not run: {', '.join(bad)}" if bad else ""))
    for dtype, proj in report.get("projections", {}).items():
        if proj:
            lines.append(f"projected example training ({dtype}): regression {proj.get('regression_example_min')} min, "
                         f"diffusion {proj.get('diffusion_example_min')} min")
    if report.get("ratios"):
        lines.append("ratios: " + ", ".join(f"{k}={v}" for k, v in report["ratios"].items()))
    par = report.get("training_parity", {})
    lines.append(f"training parity: {'ok' if par.get('ok') else 'FAILED'} "
                 f"(device {par.get('device', {}).get('val_lip_vertex_error')}, cpu {par.get('cpu', {}).get('val_lip_vertex_error')})")
    pp = report.get("precision_parity", {})
    lines.append(f"bf16 training parity: {'ok' if pp.get('ok') else 'FAILED'} "
                 f"(bf16 {pp.get('bfloat16', {}).get('val_lip_vertex_error')}, float32 {pp.get('float32', {}).get('val_lip_vertex_error')})")
    return "\n".join(lines)
