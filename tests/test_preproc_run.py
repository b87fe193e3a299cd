"""End-to-end preprocessing on small structured actors: artifact tree (docs/preproc_artifacts.md), numbers, defaults, errors."""

import json
import pathlib

import numpy as np
import pytest

from a2f_jax.config import load
from a2f_jax.data import caches
from a2f_jax.data.rigid import stabilize
from a2f_jax.errors import DataError
from a2f_jax.preproc import run
from a2f_jax.preproc.deploy_artifacts import NETWORK_DATA_KEYS
from a2f_jax.preproc.structured_data import write_config_dir, write_structured_actor
from a2f_jax.runs import PreprocRun

ACTOR = "toy"
SHOTS = ("shot_a_neutral", "shot_b_joy", "shot_c_anger")
V, VT = 60, 30


def _full_extras(tmp: pathlib.Path, paths: dict) -> dict:
    rng = np.random.default_rng(9)
    extra = tmp / "extra"
    extra.mkdir()
    for name, shape in (("lip", (V, 3)), ("eye", (V, 3)), ("jaw", (5, 3)), ("blink", (12,)), ("sacc", (300, 2))):
        np.save(extra / f"{name}.npy", rng.standard_normal(shape).astype(np.float32))
    np.savez(extra / "bs_skin.npz", neutral=np.zeros((V, 3), np.float32))
    (extra / "bs_skin_config.json").write_text('{"blendshape_params": {}}')
    np.savez(extra / "bs_tongue.npz", neutral=np.zeros((VT, 3), np.float32))
    (extra / "bs_tongue_config.json").write_text('{"blendshape_params": {"numPoses": 0}}')
    aug = pathlib.Path(paths["AUDIO_ROOT"]) / "aug" / "v1"
    aug.mkdir(parents=True)
    (aug / "shot_b_joy_x.wav").write_bytes(b"")
    return {
        "SKIN_LIP_OPEN_POSE_DELTA_FPATH": str(extra / "lip.npy"),
        "SKIN_EYE_CLOSE_POSE_DELTA_FPATH": str(extra / "eye.npy"),
        "JAW_KEYPOINTS_NEUTRAL_FPATH": str(extra / "jaw.npy"),
        "EYE_BLINK_KEYS_FPATH": str(extra / "blink.npy"),
        "EYE_SACCADE_ROTATIONS_FPATH": str(extra / "sacc.npy"),
        "BLENDSHAPE_SKIN_FPATH": str(extra / "bs_skin.npz"),
        "BLENDSHAPE_SKIN_CONFIG_FPATH": str(extra / "bs_skin_config.json"),
        "BLENDSHAPE_TONGUE_FPATH": str(extra / "bs_tongue.npz"),
        "BLENDSHAPE_TONGUE_CONFIG_FPATH": str(extra / "bs_tongue_config.json"),
    }


def _run(tmp, paths, preproc=None, dataset_extra=None, name="cfg"):
    pre = {"SKIN_SELECT_DISTINCT_MAX_ITER": 30}
    pre.update(preproc or {})
    cfg_dir = write_config_dir(tmp / name, ACTOR, paths, tmp / "out", pre, dataset_extra)
    return run(load(cfg_dir), ACTOR)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full")
    paths = write_structured_actor(tmp / "data", SHOTS, (40, 35, 45), V, VT)
    paths.update(_full_extras(tmp, paths))
    dataset_extra = {"TRANSFORM_SCALE": {ACTOR: {"tongue": 2.0, "skin": 1.0, "eye": 1.0, "jaw": 0.5}}}
    return _run(tmp, paths, dataset_extra=dataset_extra), paths


def _npz(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def test_artifact_tree_names_keys_shapes_dtypes(full_run):
    rd, paths = full_run
    expected = [
        "log.log", "configs/VERSION.md", "configs/info.txt", "configs/actor_info.json", "configs/state.json",
        "configs/config_preproc_full.json", "configs/config_dataset_full.json", "configs/config_preproc_modifier.json",
        "configs/config_dataset_modifier.json",
        "pca/skin/skin_pca_shapes.npz", "pca/skin/skin_pca_coeffs_all.npz",
        "pca/skin/intermediate/skin_pruned_poses_sim.json", "pca/skin/intermediate/skin_cache_all.npy",
        "pca/skin/intermediate/skin_pruned_poses_pca_final.json", "pca/skin/intermediate/skin_pca_shapes_inter.npz",
        "pca/tongue/tongue_pca_shapes.npz", "pca/tongue/tongue_pca_coeffs_all.npz",
        "pca/tongue/intermediate/tongue_pca_shapes_inter.npz",
        *[f"pca/tongue/intermediate/tongue_cache_stab/{s}/{s}.{e}" for s in SHOTS for e in ("xml", "mc")],
        "deploy/network_data.npz", "deploy/data_info.json", "deploy/mean_geometry.npy", "deploy/shots.json",
        "deploy/clips_template.py", f"deploy/bs_skin_{ACTOR}.npz", f"deploy/bs_skin_config_{ACTOR}.json",
        f"deploy/bs_tongue_{ACTOR}.npz", f"deploy/bs_tongue_config_{ACTOR}.json",
    ]
    missing = [p for p in expected if not (rd / p).is_file()]
    assert not missing
    assert json.loads((rd / "configs/actor_info.json").read_text()) == {"actor_name": ACTOR}
    assert not list(rd.rglob("*.tmp"))
    # Built under a temporary name: nothing written refers to it, and the log followed the rename.
    staged_name = f".{rd.name}.tmp"
    assert not [p for p in rd.rglob("*") if p.is_file() and p.suffix in (".json", ".xml", ".py") and staged_name in p.read_text()]
    assert json.loads((rd / "run_status.json").read_text())["status"] == "complete"
    assert f"Preproc Run Name Full: {rd.name}" in (rd / "log.log").read_text()

    skin = _npz(rd / "pca/skin/skin_pca_shapes.npz")
    assert list(skin) == ["shapes_matrix", "shapes_mean"]
    k = skin["shapes_matrix"].shape[0]
    assert skin["shapes_matrix"].shape == (k, V, 3) and skin["shapes_mean"].shape == (V, 3)
    assert all(a.dtype == np.float32 for a in skin.values())
    inter = _npz(rd / "pca/skin/intermediate/skin_pca_shapes_inter.npz")
    assert list(inter) == ["evecs_t", "evals_t", "mean", "variance_threshold"]
    assert inter["evecs_t"].shape == (3 * V, k) and inter["evecs_t"].dtype == np.float32
    assert inter["variance_threshold"].dtype == np.float64 and inter["variance_threshold"].shape == ()
    np.testing.assert_array_equal(skin["shapes_matrix"], inter["evecs_t"].T.reshape(k, V, 3))
    coeffs = _npz(rd / "pca/skin/skin_pca_coeffs_all.npz")
    assert list(coeffs) == list(SHOTS)
    assert [c.shape for c in coeffs.values()] == [(40, k), (35, k), (45, k)]
    assert all(c.dtype == np.float32 for c in coeffs.values())

    t_inter = _npz(rd / "pca/tongue/intermediate/tongue_pca_shapes_inter.npz")
    assert list(t_inter) == ["evecs", "evals", "mean"]
    tongue = _npz(rd / "pca/tongue/tongue_pca_shapes.npz")
    kt = tongue["shapes_matrix"].shape[0]
    assert tongue["shapes_matrix"].shape == (kt, VT, 3) and tongue["shapes_matrix"].dtype == np.float32
    np.testing.assert_array_equal(tongue["shapes_mean"], np.load(paths["TONGUE_NEUTRAL_FPATH"]))

    net = _npz(rd / "deploy/network_data.npz")
    assert list(net) == list(NETWORK_DATA_KEYS)
    assert all(a.dtype == np.float32 for a in net.values())
    assert net["neutral_jaw"].shape == (5, 3) and net["blink_keys"].shape == (12,)
    assert net["saccade_rot_matrix"].shape == (300, 2)
    np.testing.assert_array_equal(net["neutral_skin"], net["shapes_mean_skin"])
    np.testing.assert_array_equal(net["lip_open_pose_delta"], np.load(paths["SKIN_LIP_OPEN_POSE_DELTA_FPATH"]))

    assert (rd / f"deploy/bs_tongue_config_{ACTOR}.json").read_bytes() == pathlib.Path(paths["BLENDSHAPE_TONGUE_CONFIG_FPATH"]).read_bytes()


def test_data_info_and_mean_geometry(full_run):
    rd, _ = full_run
    text = (rd / "deploy/data_info.json").read_text()
    info = json.loads(text)
    net = _npz(rd / "deploy/network_data.npz")
    assert list(info)[:6] == ["num_shapes_skin", "num_verts_skin", "num_shapes_tongue", "num_verts_tongue", "num_keypoints_jaw", "num_angles_eye"]
    # channel order as the user wrote it (ConfigDict would sort it)
    assert list(info)[6:] == [f"{p}_{c}" for c in ("tongue", "skin", "eye", "jaw") for p in ("translate", "scale")]
    assert info["num_verts_skin"] == V and info["num_keypoints_jaw"] == 5 and info["num_angles_eye"] == 2
    assert '"translate_skin": [' in text and "\n        " not in text.split('"translate_skin"')[1].split("\n")[0]
    for ch, ref, sv in (("skin", "shapes_mean_skin", 1.0), ("tongue", "shapes_mean_tongue", 2.0), ("jaw", "neutral_jaw", 0.5), ("eye", "saccade_rot_matrix", 1.0)):
        r = net[ref]
        assert isinstance(info[f"scale_{ch}"], float)
        assert all(isinstance(v, float) for v in info[f"translate_{ch}"])
        np.testing.assert_allclose(info[f"translate_{ch}"], r.mean(0), rtol=1e-6)
        assert info[f"scale_{ch}"] == pytest.approx(float(np.abs(r - r.mean(0)).max()) / sv, rel=1e-6)
    mg = np.load(rd / "deploy/mean_geometry.npy")
    assert mg.dtype == np.float64 and mg.shape == (3 * V + 3 * VT + 15 + 4,)
    skin = (net["shapes_mean_skin"] - np.array(info["translate_skin"])) / info["scale_skin"]
    np.testing.assert_allclose(mg[: 3 * V], skin.reshape(-1), rtol=1e-12)
    assert not mg[3 * V + 3 * VT :].any()


def test_shots_json_and_clips_template(full_run):
    rd, _ = full_run
    text = (rd / "deploy/shots.json").read_text()
    assert text.startswith("[\n    [") and text.endswith("]\n]\n")
    rows = json.loads(text)
    assert rows == [[ACTOR, "shot_a_neutral", 40, 30.0, "neutral"], [ACTOR, "shot_b_joy", 35, 30.0, "joy"], [ACTOR, "shot_c_anger", 45, 30.0, "anger"]]
    assert '30.0, "neutral"]' in text
    scope: dict = {}
    exec((rd / "deploy/clips_template.py").read_text(), scope)
    assert scope["CLIPS"][0] == (ACTOR, "shot_a_neutral", (0, 39), ACTOR, "en", "shot_a_neutral.wav", 0)
    assert scope["CLIPS"][-1] == (ACTOR, "shot_b_joy", (0, 34), "aug_v1", "en", "aug/v1/shot_b_joy_x.wav", 0)
    assert len(scope["CLIPS"]) == 4
    assert "    " + "#" * 116 + "\n" in (rd / "deploy/clips_template.py").read_text()


def test_every_frame_reconstructs_and_variance_threshold_holds(full_run):
    rd, paths = full_run
    skin = _npz(rd / "pca/skin/skin_pca_shapes.npz")
    coeffs = _npz(rd / "pca/skin/skin_pca_coeffs_all.npz")
    k = skin["shapes_matrix"].shape[0]
    np.testing.assert_array_equal(skin["shapes_mean"], np.load(paths["SKIN_NEUTRAL_FPATH"]))
    for shot, c in coeffs.items():
        frames = caches.read_cache(caches.find_cache_file(paths["SKIN_CACHE_ROOT"], shot))
        recon = (c @ skin["shapes_matrix"].reshape(k, -1)).reshape(-1, V, 3) + skin["shapes_mean"]
        # structured data: rank 6 + noise 1e-3, motion amplitude ~20 → tiny residual
        assert np.abs(recon - frames).max() < 0.05
    # the threshold rule on the selected frames: K components explain > 0.9995 around the neutral
    sel = json.loads((rd / "pca/skin/intermediate/skin_pruned_poses_pca_final.json").read_text())
    assert sum(len(v) for v in sel.values()) == 4 + 30
    rows = np.concatenate([caches.read_cache(caches.find_cache_file(paths["SKIN_CACHE_ROOT"], s))[sel[s]].reshape(len(sel[s]), -1) for s in SHOTS])
    delta = rows - skin["shapes_mean"].reshape(-1)
    total = (delta.astype(np.float64) ** 2).sum()
    basis = skin["shapes_matrix"].reshape(k, -1).astype(np.float64)
    assert ((delta @ basis.T) ** 2).sum() / total > 0.9995
    assert ((delta @ basis[:-1].T) ** 2).sum() / total <= 0.9995


def test_tongue_coefficients_describe_stabilized_geometry(full_run):
    rd, paths = full_run
    tongue = _npz(rd / "pca/tongue/tongue_pca_shapes.npz")
    coeffs = _npz(rd / "pca/tongue/tongue_pca_coeffs_all.npz")
    rigid = json.loads(pathlib.Path(paths["TONGUE_RIGID_VERTEX_LIST_FPATH"]).read_text())
    neutral = np.load(paths["TONGUE_NEUTRAL_FPATH"])
    kt = tongue["shapes_matrix"].shape[0]
    for shot in SHOTS:
        raw = caches.read_cache(caches.find_cache_file(paths["TONGUE_CACHE_ROOT"], shot))
        stab = stabilize(raw, neutral, rigid).astype(np.float32)
        stored = caches.read_cache(rd / f"pca/tongue/intermediate/tongue_cache_stab/{shot}/{shot}.xml")
        np.testing.assert_array_equal(stored, stab)  # float64 Maya cache re-read as float32
        recon = (coeffs[shot] @ tongue["shapes_matrix"].reshape(kt, -1)).reshape(-1, VT, 3) + tongue["shapes_mean"]
        assert np.abs(recon - stab).max() < 0.05
        assert np.abs(stab[:, rigid] - neutral[rigid]).max() < 1e-3  # rigid vertices pinned to the neutral


def test_min_config_writes_placeholders(tmp_path):
    paths = write_structured_actor(tmp_path / "data", SHOTS, 30, V, None)
    paths = {k: paths[k] for k in ("AUDIO_ROOT", "SKIN_CACHE_ROOT")}
    rd = _run(tmp_path, paths)
    tongue = _npz(rd / "pca/tongue/tongue_pca_shapes.npz")
    assert tongue["shapes_matrix"].shape == (10, 520, 3) and not tongue["shapes_matrix"].any()
    assert tongue["shapes_mean"].shape == (520, 3) and tongue["shapes_mean"].dtype == np.float32
    tc = _npz(rd / "pca/tongue/tongue_pca_coeffs_all.npz")
    assert list(tc) == ["placeholder"] and tc["placeholder"].shape == (1, 10) and tc["placeholder"].dtype == np.float32
    assert (rd / "pca/tongue/intermediate").is_dir() and not any((rd / "pca/tongue/intermediate").iterdir())
    net = _npz(rd / "deploy/network_data.npz")
    for key, shape in (("neutral_jaw", (5, 3)), ("blink_keys", (10,)), ("saccade_rot_matrix", (5000, 2)), ("lip_open_pose_delta", (V, 3)), ("eye_close_pose_delta", (V, 3))):
        assert net[key].shape == shape and not net[key].any() and net[key].dtype == np.float32
    info = json.loads((rd / "deploy/data_info.json").read_text())
    assert info["num_shapes_tongue"] == 10 and info["num_verts_tongue"] == 520
    assert info["scale_tongue"] == 1.0 and info["translate_eye"] == [0.0, 0.0]
    assert list(info)[6:] == [f"{p}_{c}" for c in ("skin", "tongue", "jaw", "eye") for p in ("translate", "scale")]
    assert np.load(rd / "deploy/mean_geometry.npy").shape == (3 * V + 1560 + 15 + 4,)
    assert not list((rd / "deploy").glob("bs_*"))
    # without a neutral the PCA mean is the mean of the selected frames
    inter = _npz(rd / "pca/skin/intermediate/skin_pca_shapes_inter.npz")
    assert np.abs(inter["mean"]).max() > 0


def test_forced_components_and_second_run_same_subspace(tmp_path):
    paths = write_structured_actor(tmp_path / "data", SHOTS, 30, V, VT, seed=4)
    forced = {"SKIN_FORCE_COMPONENTS": {ACTOR: 2}, "TONGUE_FORCE_COMPONENTS": {ACTOR: 1}}
    rd = _run(tmp_path, paths, forced, name="forced")
    assert _npz(rd / "pca/skin/skin_pca_shapes.npz")["shapes_matrix"].shape == (2, V, 3)
    assert _npz(rd / "pca/tongue/tongue_pca_shapes.npz")["shapes_matrix"].shape == (1, VT, 3)
    assert json.loads((rd / "deploy/data_info.json").read_text())["num_shapes_skin"] == 2

    first = _run(tmp_path, paths, name="a")
    second = _run(tmp_path, paths, name="b")
    assert first != second
    a = _npz(first / "pca/skin/skin_pca_shapes.npz")["shapes_matrix"]
    b = _npz(second / "pca/skin/skin_pca_shapes.npz")["shapes_matrix"]
    assert a.shape == b.shape
    cos = a.reshape(a.shape[0], -1) @ b.reshape(b.shape[0], -1).T
    np.testing.assert_allclose(np.abs(cos), np.eye(a.shape[0]), atol=1e-5)
    for f in ("skin_pruned_poses_sim.json", "skin_pruned_poses_pca_final.json"):
        assert (first / "pca/skin/intermediate" / f).read_text() == (second / "pca/skin/intermediate" / f).read_text()


def test_inference_neutrals_change_deploy_outputs_only(tmp_path):
    paths = write_structured_actor(tmp_path / "data", SHOTS, 30, V, VT, seed=5)
    inf = tmp_path / "inf_neutral.npy"
    np.save(inf, np.full((V, 3), 7.0, np.float32))
    rd = _run(tmp_path, paths, dataset_extra={"SKIN_NEUTRAL_INFERENCE_FPATH": {ACTOR: str(inf)}})
    net = _npz(rd / "deploy/network_data.npz")
    assert (net["shapes_mean_skin"] == 7.0).all() and (net["neutral_skin"] == 7.0).all()
    np.testing.assert_array_equal(_npz(rd / "pca/skin/skin_pca_shapes.npz")["shapes_mean"], np.load(paths["SKIN_NEUTRAL_FPATH"]))
    info = json.loads((rd / "deploy/data_info.json").read_text())
    assert info["translate_skin"] == [7.0, 7.0, 7.0] and info["scale_skin"] == 1.0
    assert not np.load(rd / "deploy/mean_geometry.npy")[: 3 * V].any()


def test_prune_cache_root_mesh_mask_and_shot_subset(tmp_path):
    paths = write_structured_actor(tmp_path / "data", SHOTS, 30, V, None, seed=6)
    low = tmp_path / "low"
    keep_verts = np.arange(0, V, 2)
    for shot in SHOTS:
        frames = caches.read_cache(caches.find_cache_file(paths["SKIN_CACHE_ROOT"], shot))
        caches.write_npy(low / shot / f"{shot}.npy", frames[:, keep_verts])
    mask = tmp_path / "mask.npy"
    np.save(mask, np.arange(10, dtype=np.int64))  # first 10 low-res vertices
    pre = {
        "SKIN_PRUNE_CACHE_ROOT": {ACTOR: str(low)},
        "SKIN_PRUNE_MESH_MASK_FPATH": {ACTOR: str(mask)},
        "SKIN_CACHE_SHOTS": {ACTOR: ["shot_c_anger", "shot_a_neutral"]},
    }
    rd = _run(tmp_path, {k: paths[k] for k in ("AUDIO_ROOT", "SKIN_CACHE_ROOT", "SKIN_NEUTRAL_FPATH")}, pre)
    assert np.load(rd / "pca/skin/intermediate/skin_cache_all.npy").shape[1] == 30
    assert list(_npz(rd / "pca/skin/skin_pca_coeffs_all.npz")) == ["shot_c_anger", "shot_a_neutral"]
    assert [r[1] for r in json.loads((rd / "deploy/shots.json").read_text())] == ["shot_c_anger", "shot_a_neutral"]


@pytest.mark.parametrize(
    "case, match",
    [
        ("empty_root", "at least one shot"),
        ("zero_variance", "non-zero variance"),
        ("empty_mask", "at least one vertex index"),
        ("bool_mask", "integer array of vertex indices"),
        ("unknown_shot", "missing"),
    ],
)
def test_bad_input_raises_clear_errors(tmp_path, case, match):
    paths = write_structured_actor(tmp_path / "data", SHOTS, 20, V, None, seed=7)
    paths = {k: paths[k] for k in ("AUDIO_ROOT", "SKIN_CACHE_ROOT", "SKIN_NEUTRAL_FPATH")}
    pre: dict = {}
    if case == "empty_root":
        (tmp_path / "empty").mkdir()
        paths["SKIN_CACHE_ROOT"] = str(tmp_path / "empty")
    elif case == "zero_variance":
        neutral = np.load(paths["SKIN_NEUTRAL_FPATH"])
        root = tmp_path / "still"
        for shot in SHOTS:
            caches.write_npy(root / shot / f"{shot}.npy", np.repeat(neutral[None], 15, axis=0))
        paths["SKIN_CACHE_ROOT"] = str(root)
    elif case in ("empty_mask", "bool_mask"):
        np.save(tmp_path / "mask.npy", np.zeros(0, np.int64) if case == "empty_mask" else np.ones(V, bool))
        pre["SKIN_PRUNE_MESH_MASK_FPATH"] = {ACTOR: str(tmp_path / "mask.npy")}
    elif case == "unknown_shot":
        pre["SKIN_CACHE_SHOTS"] = {ACTOR: ["shot_a_neutral"]}
        pre["SKIN_PRUNE_CACHE_SHOTS"] = {ACTOR: ["shot_b_joy"]}
    with pytest.raises(DataError, match=match):
        _run(tmp_path, paths, pre)


def test_verbose_writes_selection_snapshots(tmp_path):
    paths = write_structured_actor(tmp_path / "data", SHOTS, 30, V, None, seed=8)
    rd = _run(tmp_path, {k: paths[k] for k in ("AUDIO_ROOT", "SKIN_CACHE_ROOT")}, {"VERBOSE": True, "SKIN_SELECT_DISTINCT_MAX_ITER": 100})
    snap = json.loads((rd / "pca/skin/intermediate/skin_pruned_poses_pca_99.json").read_text())
    final = json.loads((rd / "pca/skin/intermediate/skin_pruned_poses_pca_final.json").read_text())
    assert sum(len(v) for v in snap.values()) == sum(len(v) for v in final.values()) == 104
    assert {k: sorted(v) for k, v in snap.items()} == final


def test_failed_stage_leaves_no_run(tmp_path, monkeypatch):
    """A stage that fails (here the tongue stage, after the skin PCA was written) leaves nothing behind, and
    "latest" still names the last complete run."""
    import importlib


    run_module = importlib.import_module("a2f_jax.preproc.run")  # the package exports the function `run`

    paths = write_structured_actor(tmp_path / "data", SHOTS, 20, V, None, seed=7)
    paths = {k: paths[k] for k in ("AUDIO_ROOT", "SKIN_CACHE_ROOT", "SKIN_NEUTRAL_FPATH")}
    good = _run(tmp_path, paths, name="good")

    def broken_tongue(*args):
        raise DataError("tongue: expected something, found nothing")

    monkeypatch.setattr(run_module, "run_tongue", broken_tongue)
    with pytest.raises(DataError, match="tongue"):
        _run(tmp_path, paths, name="bad")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [good.name]
    assert PreprocRun.resolve(tmp_path / "out", ACTOR, "latest").path == good
