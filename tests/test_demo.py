"""The main job end to end at a reduced size: dataset → preprocess → train → deploy → infer → evaluate → previews."""

import json
import pathlib

import numpy as np

from a2f_jax import demo


def test_demo_pipeline_end_to_end(tmp_path, monkeypatch):
    monkeypatch.delenv("A2F_DATASETS_ROOT", raising=False)
    monkeypatch.delenv("A2F_WORKSPACE_ROOT", raising=False)
    summary = demo.run("regression", tmp_path / "demo", steps=20, video=False,
                       overrides=("train.VALIDATION_PERIOD=0", "train.CHECKPOINT_PERIOD=10"))
    results = pathlib.Path(summary["results"])
    saved = json.loads((results / "summary.json").read_text())
    assert saved["training_run"] == summary["training_run"]
    for key in ("evaluation", "prediction_npy", "prediction_maya_cache", "preview_png", "training_curves"):
        assert pathlib.Path(summary["outputs"][key]).is_file(), key
    table = summary["metrics"]
    assert set(table) == {"model", "mean_pose", "neutral_pose"}
    assert all(np.isfinite(v) for row in table.values() for v in row.values())
    # The bundle is complete and was checked before it was renamed into place.
    bundle = pathlib.Path(summary["bundle"])
    for name in ("network.onnx", "network_info.json", "model.json", "implicit_emo_db.npz", "trt_info.json"):
        assert (bundle / name).is_file(), name
    from a2f_jax.deploy.check import check_bundle, errors

    assert not errors(check_bundle(bundle, run_onnx=False))
    assert sorted(p.name for p in (pathlib.Path(summary["training_run"]) / "checkpoints").iterdir()) == ["10", "20"]
