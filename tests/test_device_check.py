"""The prepared device check runs its whole path on the CPU (`--quick`) and writes one JSON."""

import json
import pathlib
import subprocess
import sys

import pytest

from a2f_jax import device_check

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_projection_of_the_example_diffusion_training():
    bench = {"diffusion_train.120_b1.float32": {"frames": 120, "best_s": 1.0},
             "diffusion_train.600_b1.float32": {"frames": 600, "best_s": 5.0},
             "regression.train_step.float32": {"step_s": 0.5}}
    proj = device_check.projections(bench, "float32")
    mean = device_check.mean_subsegment_frames_60fps()
    # real clips (~779 frames at 60 fps) are never capped: their mean is (30 + 600) / 2; muted ones (240) are
    assert 240 < mean < 315
    per_item = 1.0 + (mean - 120) * 4.0 / 480
    assert proj["diffusion_s_per_item"] == pytest.approx(per_item, abs=1e-4)
    assert proj["diffusion_example_min"] == pytest.approx(400 * 65 * per_item / 60, abs=0.06)
    assert proj["regression_example_min"] == pytest.approx(50 * 697 * 0.5 / 60, abs=0.06)
    assert device_check.projections({}, "float32") == {}


@pytest.mark.slow
def test_quick_device_check_writes_every_section(tmp_path):
    out = tmp_path / "check.json"
    proc = subprocess.run([sys.executable, "scripts/device_check.py", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["environment"]["backend"] == "cpu"
    assert report["numerics"]["ok"], report["numerics"]
    bench = report["benchmarks"]
    assert {"regression.train_step.float32", "regression.train_step.bfloat16", "diffusion_train.120_b4.bfloat16",
            "diffusion_infer.jax_window.float32"} <= set(bench)
    errors = {k: v for k, v in bench.items() if "error" in v or "skipped" in v}
    assert not errors, errors
    assert bench["diffusion_train.120_b1.bfloat16"]["loss_finite"]
    assert report["ratios"]["diffusion_120_b1_bf16_over_f32"] > 0
    parity = report["training_parity"]
    assert parity["ok"], parity  # both runs are CPU runs here: the same seed must give the same error
    assert "training parity: ok" in proc.stdout
    precision = report["precision_parity"]
    assert precision["ok"], precision  # bf16 training reaches the float32 run's held-out error within 10 %
