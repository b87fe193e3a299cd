"""Preprocessing of the built-in synthetic dataset through the shipped configs (full and -min)."""

import json
import pathlib

import numpy as np
import pytest

from a2f_jax.config import load
from a2f_jax.data import caches, synthetic
from a2f_jax.preproc import run

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, minimal", [("synthetic-regression", False), ("synthetic-regression-min", True)])
def test_synthetic_configs(tmp_path, monkeypatch, name, minimal):
    monkeypatch.setenv("A2F_DATASETS_ROOT", str(tmp_path / "datasets"))
    folder = "a2f-synthetic-min" if minimal else "a2f-synthetic"
    synthetic.generate(tmp_path / "datasets" / folder, seed=0, minimal=minimal, num_shots=4)
    overrides = [f"preproc.PREPROC_OUTPUT_ROOT={tmp_path / 'out'}", "preproc.SKIN_SELECT_DISTINCT_MAX_ITER=40"]
    configs = load(REPO / "configs" / name, overrides)
    rd = run(configs, "synth")

    shots = caches.list_shots(configs.dataset.SKIN_CACHE_ROOT["synth"])
    assert len(shots) == 4
    with np.load(rd / "pca/skin/skin_pca_coeffs_all.npz") as f:
        assert f.files == shots
        coeffs = {s: f[s] for s in shots}
    with np.load(rd / "pca/skin/skin_pca_shapes.npz") as f:
        basis, mean = f["shapes_matrix"], f["shapes_mean"]
    k = basis.shape[0]
    assert k == configs.preproc.SKIN_FORCE_COMPONENTS["synth"]
    # every frame of every shot (including the Maya and pc2 shots) comes back within a few mm
    for shot in shots:
        frames = caches.read_cache(caches.find_cache_file(configs.dataset.SKIN_CACHE_ROOT["synth"], shot))
        recon = (coeffs[shot] @ basis.reshape(k, -1)).reshape(frames.shape) + mean
        assert np.abs(recon - frames).max() < 0.3

    info = json.loads((rd / "deploy/data_info.json").read_text())
    rows = json.loads((rd / "deploy/shots.json").read_text())
    assert [r[1] for r in rows] == shots and all(r[3] == 30.0 for r in rows)
    with np.load(rd / "pca/tongue/tongue_pca_coeffs_all.npz") as f:
        if minimal:
            assert f.files == ["placeholder"] and info["num_verts_tongue"] == 520
            assert not list((rd / "deploy").glob("bs_*"))
        else:
            assert f.files == caches.list_shots(configs.dataset.TONGUE_CACHE_ROOT["synth"])
            assert info["num_verts_tongue"] == np.load(configs.dataset.TONGUE_NEUTRAL_FPATH["synth"]).shape[0]
            assert sorted(p.name for p in (rd / "deploy").glob("bs_*")) == [
                "bs_skin_config_synth.json", "bs_skin_synth.npz", "bs_tongue_config_synth.json", "bs_tongue_synth.npz"
            ]
