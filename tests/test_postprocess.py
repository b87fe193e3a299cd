"""a2f_jax.infer.postprocess against per-frame loop references written from docs/bundle_contract.md."""

from __future__ import annotations

import numpy as np
import pytest

from a2f_jax.deploy import contract as C
from a2f_jax.errors import DataError
from a2f_jax.infer import postprocess as pp

T, VS, VT = 9, 7, 4


def _data(seed=0, n_sac=13) -> pp.ModelData:
    rng = np.random.default_rng(seed)
    skin = rng.standard_normal((VS, 3))
    skin[:, 1] = np.linspace(-2.0, 3.0, VS)
    return pp.ModelData(
        neutral_skin=skin, neutral_tongue=rng.standard_normal((VT, 3)), neutral_jaw=rng.standard_normal((5, 3)),
        lip_open_pose_delta=rng.standard_normal((VS, 3)), eye_close_pose_delta=rng.standard_normal((VS, 3)),
        saccade_rot_matrix=rng.standard_normal((n_sac, 2)),
        shapes_matrix_skin=rng.standard_normal((3, VS, 3)), shapes_matrix_tongue=rng.standard_normal((2, VT, 3)))


def _cfg(**kw) -> dict:
    cfg = dict(C.DEFAULT_MODEL_CONFIG, upper_face_smoothing=0.02, lower_face_smoothing=0.01, face_mask_softness=0.2,
               eye_saccade_seed=11, lip_open_offset=0.1)
    cfg.update(kw)
    return cfg


def _deltas(seed=1, t=T) -> pp.Deltas:
    rng = np.random.default_rng(seed)
    return pp.Deltas(rng.standard_normal((t, VS, 3)), rng.standard_normal((t, VT, 3)), 0.1 * rng.standard_normal((t, 5, 3)),
                     rng.standard_normal((t, 4)))


# ------------------------------------------------------------------ references, one frame at a time (docs/bundle_contract.md)


def ref_skin(delta, data, c, dt, blink):
    m = np.array([1 / (1 + np.exp(-(c["face_mask_level"] - (y - data.neutral_skin[:, 1].min()) / np.ptp(data.neutral_skin[:, 1]))
                                  / c["face_mask_softness"])) for y in data.neutral_skin[:, 1]])
    au = 1 - 0.5 ** (dt / c["upper_face_smoothing"]) if c["upper_face_smoothing"] > 0 else 1.0
    al = 1 - 0.5 ** (dt / c["lower_face_smoothing"]) if c["lower_face_smoothing"] > 0 else 1.0
    out = []
    for t in range(len(delta)):
        d = (c["skin_strength"] * delta[t] + data.eye_close_pose_delta * (-c["eyelid_open_offset"] + blink[t] * c["blink_strength"])
             + data.lip_open_pose_delta * c["lip_open_offset"])
        if t == 0:
            u1 = u2 = l1 = l2 = d
        else:
            u1 = u1 + (d - u1) * au
            u2 = u2 + (u1 - u2) * au
            l1 = l1 + (d - l1) * al
            l2 = l2 + (l1 - l2) * al
        pose = np.empty_like(d)
        for v in range(len(d)):
            pose[v] = data.neutral_skin[v] + u2[v] * c["upper_face_strength"] * (1 - m[v]) + l2[v] * c["lower_face_strength"] * m[v]
        out.append(pose)
    return np.array(out)


def ref_jaw_frame(neutral, delta, c):
    target = neutral + delta * c["lower_teeth_strength"] + np.array([0, c["lower_teeth_height_offset"], c["lower_teeth_depth_offset"]])
    p, q = neutral - neutral.mean(0), target - target.mean(0)
    u, _, vt = np.linalg.svd(p.T @ q)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1, 1, d]) @ u.T
    t = target.mean(0) - r @ neutral.mean(0)
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = r, t
    return m.flatten(order="F")


def ref_eyes(angles, data, c, dt):
    n = len(data.saccade_rot_matrix)
    live, out = 0.0, []
    for e in angles:
        f = int(np.floor((c["eye_saccade_seed"] + live) % n))
        sac = data.saccade_rot_matrix[f]
        right = [c["right_eye_rot_x_offset"] + c["eyeballs_strength"] * e[0] + c["saccade_strength"] * sac[0],
                 c["right_eye_rot_y_offset"] + c["eyeballs_strength"] * e[1] + c["saccade_strength"] * sac[1], 0]
        left = [c["left_eye_rot_x_offset"] + c["eyeballs_strength"] * e[2] + c["saccade_strength"] * sac[0],
                c["left_eye_rot_y_offset"] + c["eyeballs_strength"] * e[3] + c["saccade_strength"] * sac[1], 0]
        out.append(right + left)
        live = (live + dt * 30) % n
    return np.array(out)


# ---------------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_skin_matches_reference(fps):
    data, c, d = _data(), _cfg(), _deltas()
    blink = np.linspace(0, 1, T)
    got = pp.PostProcessor(data, c, fps).skin(d.skin, blink)
    np.testing.assert_allclose(got, ref_skin(d.skin, data, c, 1 / fps, blink), rtol=1e-10, atol=1e-10)


def test_zero_smoothing_is_pass_through():
    data, d = _data(), _deltas()
    c = _cfg(upper_face_smoothing=0.0, lower_face_smoothing=0.0)
    got = pp.PostProcessor(data, c, 30).skin(d.skin)
    np.testing.assert_allclose(got, ref_skin(d.skin, data, c, 1 / 30, np.zeros(T)), atol=1e-12)
    assert pp.smoothing_alpha(0.0, 1 / 30) == 1.0 and pp.smoothing_alpha(-1.0, 1 / 30) == 1.0
    assert pp.smoothing_alpha(1 / 30, 1 / 30) == pytest.approx(0.5)  # half-life of one frame


def test_streaming_chunks_equal_whole_clip():
    data, c, d = _data(), _cfg(), _deltas(t=20)
    whole = pp.flatten_result(pp.PostProcessor(data, c, 60).process(d))
    proc = pp.PostProcessor(data, c, 60)
    parts = []
    for lo, hi in ((0, 1), (1, 8), (8, 20)):
        chunk = pp.Deltas(d.skin[lo:hi], d.tongue[lo:hi], d.jaw[lo:hi], d.eyes[lo:hi])
        parts.append(pp.flatten_result(proc.process(chunk)))
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-12)
    proc.reset()  # after a reset the first frame is unsmoothed again
    np.testing.assert_allclose(pp.flatten_result(proc.process(pp.Deltas(d.skin[:3], d.tongue[:3], d.jaw[:3], d.eyes[:3]))), whole[:3], atol=1e-12)


def test_face_mask_is_one_on_lower_face():
    data = _data()
    m = pp.face_mask(data.neutral_skin, 0.6, 0.0085)
    low, high = np.argmin(data.neutral_skin[:, 1]), np.argmax(data.neutral_skin[:, 1])
    assert m[low] == pytest.approx(1.0) and m[high] == pytest.approx(0.0, abs=1e-12)
    flat = data.neutral_skin.copy()
    flat[:, 1] = 1.0
    with pytest.raises(DataError, match="Y range"):
        pp.face_mask(flat, 0.6, 0.0085)


def test_tongue_formula():
    data, c, d = _data(), _cfg(), _deltas()
    got = pp.PostProcessor(data, c, 30).tongue(d.tongue)
    want = data.neutral_tongue + d.tongue * c["tongue_strength"]
    want[..., 1] += c["tongue_height_offset"]
    want[..., 2] += c["tongue_depth_offset"]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_jaw_kabsch_matches_reference_and_recovers_rigid_motion():
    data, c, d = _data(), _cfg(), _deltas()
    got = pp.PostProcessor(data, c, 30).jaw(d.jaw)
    for t in range(T):
        np.testing.assert_allclose(got[t], ref_jaw_frame(data.neutral_jaw, d.jaw[t], c), atol=1e-10)
    # an exactly rigid target is recovered exactly; layout is column-major with translation at 12..14
    ang = 0.3
    r = np.array([[np.cos(ang), -np.sin(ang), 0], [np.sin(ang), np.cos(ang), 0], [0, 0, 1]])
    shift = np.array([0.5, -1.0, 2.0])
    target = data.neutral_jaw @ r.T + shift
    m = pp.kabsch(data.neutral_jaw, target[None])[0]
    np.testing.assert_allclose(m.reshape(4, 4, order="F")[:3, :3], r, atol=1e-10)
    np.testing.assert_allclose(m[12:15], shift, atol=1e-10)
    assert m[15] == 1.0 and np.allclose(m[[3, 7, 11]], 0)
    # a mirrored target must still give a proper rotation (det +1)
    mirrored = data.neutral_jaw * np.array([1, 1, -1])
    assert np.linalg.det(pp.kabsch(data.neutral_jaw, mirrored[None])[0].reshape(4, 4, order="F")[:3, :3]) == pytest.approx(1.0)


@pytest.mark.parametrize("fps", [30.0, 60.0, 24.0])
def test_eyes_with_saccades_match_reference(fps):
    data, c, d = _data(n_sac=7), _cfg(), _deltas(t=25)
    got = pp.PostProcessor(data, c, fps).eyes(d.eyes)
    np.testing.assert_allclose(got, ref_eyes(d.eyes, data, c, 1 / fps), atol=1e-12)


def test_features_can_be_switched_off():
    data, c, d = _data(), _cfg(), _deltas()
    off = pp.Features(strengths=False, smoothing=False, face_mask=False, eyelid=False, lip_open=False,
                      tongue_offsets=False, teeth_offsets=False, eye_offsets=False, saccades=False)
    out = pp.PostProcessor(data, c, 30, off).process(d)
    np.testing.assert_allclose(out["skin"], data.neutral_skin + d.skin, atol=1e-12)
    np.testing.assert_allclose(out["tongue"], data.neutral_tongue + d.tongue, atol=1e-12)
    np.testing.assert_allclose(out["eyes"][:, [0, 1, 3, 4]], d.eyes, atol=1e-12)
    assert np.all(out["eyes"][:, [2, 5]] == 0)
    np.testing.assert_allclose(out["jaw"][0], ref_jaw_frame(data.neutral_jaw, d.jaw[0], dict(c, lower_teeth_strength=1.0, lower_teeth_height_offset=0.0, lower_teeth_depth_offset=0.0)), atol=1e-10)
    only_saccades_off = pp.PostProcessor(data, c, 30, pp.Features(saccades=False)).eyes(d.eyes)
    np.testing.assert_allclose(only_saccades_off[:, 0], c["right_eye_rot_x_offset"] + c["eyeballs_strength"] * d.eyes[:, 0])


def test_regression_rows_are_pca_coefficients_without_mean():
    data = _data()
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((T, 3 + 2 + 15 + 4))
    d = pp.deltas_from_regression(rows, data)
    t = 4
    want = sum(rows[t, j] * data.shapes_matrix_skin[j] for j in range(3))
    np.testing.assert_allclose(d.skin[t], want, atol=1e-12)
    np.testing.assert_allclose(d.tongue[t], sum(rows[t, 3 + j] * data.shapes_matrix_tongue[j] for j in range(2)), atol=1e-12)
    np.testing.assert_array_equal(d.jaw[t].reshape(-1), rows[t, 5:20])
    np.testing.assert_array_equal(d.eyes[t], rows[t, 20:])
    with pytest.raises(DataError, match=r"\[T, 24\]"):
        pp.deltas_from_regression(rows[:, :-1], data)


def test_diffusion_split_and_result_layout():
    data, c = _data(), _cfg()
    pred = np.random.default_rng(4).standard_normal((T, 3 * VS + 3 * VT + 19))
    d = pp.deltas_from_diffusion(pred, data)
    np.testing.assert_array_equal(d.skin.reshape(T, -1), pred[:, : 3 * VS])
    np.testing.assert_array_equal(d.eyes, pred[:, -4:])
    flat = pp.flatten_result(pp.PostProcessor(data, c, 60).process(d))
    assert flat.shape == (T, 3 * VS + 3 * VT + 16 + 6)


def test_model_data_from_npz_arrays_uses_the_right_neutral():
    arrays = {"shapes_matrix_skin": np.ones((2, VS, 3)), "shapes_mean_skin": np.full((VS, 3), 1.0), "neutral_skin": np.full((VS, 3), 2.0),
              "lip_open_pose_delta": np.zeros((VS, 3)), "eye_close_pose_delta": np.zeros((VS, 3)),
              "shapes_matrix_tongue": np.ones((1, VT, 3)), "shapes_mean_tongue": np.ones((VT, 3)), "neutral_tongue": np.ones((VT, 3)),
              "neutral_jaw": np.zeros((5, 3)), "saccade_rot_matrix": np.zeros((4, 2))}
    assert pp.ModelData.from_arrays(arrays, "regression").neutral_skin[0, 0] == 1.0
    assert pp.ModelData.from_arrays(arrays, "diffusion").neutral_skin[0, 0] == 2.0
    del arrays["neutral_jaw"]
    with pytest.raises(DataError, match="neutral_jaw"):
        pp.ModelData.from_arrays(arrays, "diffusion")
