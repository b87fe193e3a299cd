"""Diffusion losses against NumPy references written from the original's formulas; padding masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2f_jax.errors import DataError
from a2f_jax.train import losses_diffusion as ld

VS, VT, JAW, EYE, K = 6, 2, 15, 4, 3
SKIN, TONGUE = 3 * VS, 3 * VT
C = SKIN + TONGUE + JAW + EYE
LIP = {"upper": [0, 1], "lower": [2, 3]}
EYES = {"lower": [4, 5], "upper": [0, 1]}


def _mesh(rng, num_actors=1):
    means, mats = [], []
    for _ in range(num_actors):
        mu = rng.standard_normal((VS, 3)) * 2.0
        q, _ = np.linalg.qr(rng.standard_normal((3 * VS, K)))
        means.append(mu.astype(np.float32))
        mats.append(q.T.reshape(K, VS, 3).astype(np.float32))
    return means, mats


def _consts(rng, num_actors=1, lip=LIP, eyes=EYES):
    means, mats = _mesh(rng, num_actors)
    scale = rng.uniform(0.5, 2.0, num_actors)
    translate = rng.standard_normal((num_actors, 3))
    consts = ld.build_loss_constants(
        skin_dim=SKIN, tongue_dim=TONGUE, jaw_dim=JAW, eye_dim=EYE, scale_skin=scale, translate_skin=translate,
        shapes_matrix=mats, shapes_mean=means, lip_dist_verts=lip, eye_dist_verts=eyes,
    )
    return consts, dict(means=means, mats=mats, scale=scale, translate=translate)


def _np_huber(d):
    return np.where(np.abs(d) < 1, 0.5 * d**2, np.abs(d) - 0.5)


def _np_lip(pred, gt, raw, a, exp_scale):
    """The original: un-rescale, project the prediction on the PCA subspace, lip-distance loss."""
    t = pred.shape[0]
    e = raw["mats"][a].reshape(K, -1).T.astype(np.float64)
    mu = raw["means"][a].reshape(-1).astype(np.float64)
    pv = (pred[:, :SKIN].reshape(t, VS, 3) * raw["scale"][a] + raw["translate"][a]).reshape(t, -1)
    gv = gt[:, :SKIN].reshape(t, VS, 3) * raw["scale"][a] + raw["translate"][a]
    rv = (((pv - mu) @ e) @ e.T + mu).reshape(t, VS, 3)
    dp = rv[:, LIP["upper"], 1] - rv[:, LIP["lower"], 1]
    dt = gv[:, LIP["upper"], 1] - gv[:, LIP["lower"], 1]
    w = np.exp(-exp_scale * np.maximum(dt, 0))
    return np.mean((w * dp - w * dt) ** 2)


def _np_softmask(mu):
    p1, p2 = mu[EYES["lower"][0]].astype(np.float64), mu[EYES["lower"][1]].astype(np.float64)
    y_thr = min(p1[1], p2[1])
    d = np.linalg.norm(p1 - p2)
    z_thr = (p1[2] + p2[2]) / 2 - d
    sig = lambda v: 1 / (1 + np.exp(-v))
    return sig(d / 2 * (mu[:, 1] - y_thr)) * sig(d / 2 * (mu[:, 2] - z_thr))


def test_each_term_matches_numpy_reference():
    rng = np.random.default_rng(0)
    consts, raw = _consts(rng)
    pred = rng.standard_normal((1, 7, C)).astype(np.float32) * 1.5
    gt = rng.standard_normal((1, 7, C)).astype(np.float32) * 0.3
    actor = np.array([[1.0]], np.float32)
    out = ld.diffusion_losses(
        jnp.asarray(pred), jnp.asarray(gt), consts, jnp.asarray(actor), tongue_weight=0.1, jaw_weight=2.0,
        lip_dist_alpha=1e-2, lip_dist_exp=10.0, velocity_alpha=0.5, exp_smooth_alpha=25.0,
    )
    w = np.ones(C)
    w[SKIN : SKIN + TONGUE] = 0.1
    w[SKIN + TONGUE : SKIN + TONGUE + JAW] = 2.0
    ref_diff = np.mean(_np_huber(gt[0] * w - pred[0] * w))
    p, g = pred[0, :, :SKIN], gt[0, :, :SKIN]
    ref_vel = np.mean(((p[1:] - p[:-1]) - (g[1:] - g[:-1])) ** 2)
    mv = (p[1:] - p[:-1]).reshape(6, VS, 3)
    ref_smooth = np.mean(_np_softmask(raw["means"][0])[:, None] * mv**2)
    ref_lip = _np_lip(pred[0], gt[0], raw, 0, 10.0)
    assert ref_lip > 1e-4  # the weights do not wipe the term out
    np.testing.assert_allclose(float(out["diffusion"][0]), ref_diff, rtol=1e-5)
    np.testing.assert_allclose(float(out["velocity"][0]), ref_vel, rtol=1e-5)
    np.testing.assert_allclose(float(out["expression_smooth"][0]), ref_smooth, rtol=1e-5)
    np.testing.assert_allclose(float(out["lip_dist"][0]), ref_lip, rtol=1e-4)
    ref_total = ref_diff + 1e-2 * ref_lip + 0.5 * ref_vel + 25.0 * ref_smooth
    np.testing.assert_allclose(float(out["total"][0]), ref_total, rtol=1e-5)


def test_softmask_values():
    rng = np.random.default_rng(1)
    mu = rng.standard_normal((VS, 3))
    np.testing.assert_allclose(ld.upper_face_mask(mu, EYES), _np_softmask(mu), rtol=1e-6)


def test_padded_batch_equals_separate_items_and_gradients():
    rng = np.random.default_rng(2)
    consts, raw = _consts(rng, num_actors=2)
    lengths = [7, 4]
    preds = [rng.standard_normal((1, n, C)).astype(np.float32) for n in lengths]
    gts = [rng.standard_normal((1, n, C)).astype(np.float32) * 0.2 for n in lengths]
    actors = [np.array([[1.0, 0.0]], np.float32), np.array([[0.0, 1.0]], np.float32)]
    pred_b = np.full((2, 7, C), 5.0, np.float32)  # garbage padding
    gt_b = np.full((2, 7, C), -3.0, np.float32)
    mask = np.zeros((2, 7), np.float32)
    for b, n in enumerate(lengths):
        pred_b[b, :n], gt_b[b, :n], mask[b, :n] = preds[b][0], gts[b][0], 1
    kw = dict(tongue_weight=0.1, jaw_weight=1.0, lip_dist_alpha=0.3, lip_dist_exp=10.0, velocity_alpha=0.7,
              exp_smooth_alpha=25.0)

    def total(p, g, a, m):
        return jnp.sum(ld.diffusion_losses(p, g, consts, a, mask=m, **kw)["total"])

    batched, g_batched = jax.value_and_grad(total)(jnp.asarray(pred_b), jnp.asarray(gt_b),
                                                   jnp.asarray(np.concatenate(actors)), jnp.asarray(mask))
    singles = 0.0
    for b, n in enumerate(lengths):
        v, g = jax.value_and_grad(total)(jnp.asarray(preds[b]), jnp.asarray(gts[b]), jnp.asarray(actors[b]), None)
        singles += float(v)
        np.testing.assert_allclose(np.asarray(g_batched[b, :n]), np.asarray(g[0]), rtol=1e-5, atol=1e-7)
        assert np.all(np.asarray(g_batched[b, n:]) == 0)
        # Each actor's own scale/translate/PCA in the lip loss.
        ref_lip = _np_lip(preds[b][0], gts[b][0], raw, b, 10.0)
        got = ld.lip_dist_loss(jnp.asarray(preds[b]), jnp.asarray(gts[b]), consts, jnp.array([b]), 10.0)
        np.testing.assert_allclose(float(got[0]), ref_lip, rtol=1e-4)
    np.testing.assert_allclose(float(batched), singles, rtol=1e-5)


def test_fully_padded_item_gives_zero_not_nan():
    rng = np.random.default_rng(3)
    consts, _ = _consts(rng)
    x = jnp.asarray(rng.standard_normal((2, 3, C)).astype(np.float32))
    out = ld.diffusion_losses(x, x * 0.5, consts, jnp.ones((2, 1)), tongue_weight=0.1, jaw_weight=1.0,
                              lip_dist_alpha=1.0, lip_dist_exp=10.0, velocity_alpha=1.0, exp_smooth_alpha=1.0,
                              mask=jnp.array([[1, 1, 1], [0, 0, 0]]))
    for name, v in out.items():
        assert np.isfinite(np.asarray(v)).all(), name
        assert float(v[1]) == 0.0, name
        assert float(v[0]) > 0.0, name


def test_missing_lists_and_none_alphas_drop_terms():
    rng = np.random.default_rng(4)
    consts, _ = _consts(rng, lip=None, eyes=None)
    x = jnp.asarray(rng.standard_normal((1, 3, C)).astype(np.float32))
    out = ld.diffusion_losses(x, x * 0.5, consts, jnp.ones((1, 1)), tongue_weight=0.1, jaw_weight=1.0,
                              lip_dist_alpha=1.0, lip_dist_exp=10.0, velocity_alpha=None, exp_smooth_alpha=25.0)
    assert set(out) == {"diffusion", "total"}
    np.testing.assert_allclose(np.asarray(out["total"]), np.asarray(out["diffusion"]))


def test_bad_vertex_lists_raise_data_error():
    rng = np.random.default_rng(5)
    with pytest.raises(DataError, match="lip_dist_verts"):
        _consts(rng, lip={"upper": [0, 99], "lower": [1, 2]})
    with pytest.raises(DataError, match="lower"):
        _consts(rng, eyes={"upper": [1]})
    with pytest.raises(DataError, match="shapes_matrix"):
        ld.build_loss_constants(skin_dim=SKIN, tongue_dim=TONGUE, jaw_dim=JAW, eye_dim=EYE, scale_skin=[1.0],
                                translate_skin=[[0, 0, 0]], shapes_matrix=[np.zeros((K, VS + 1, 3))],
                                shapes_mean=[np.zeros((VS, 3))])


def test_training_losses_composes_q_sample_model_and_terms():
    from a2f_jax.models import gaussian_diffusion as gd

    rng = np.random.default_rng(6)
    consts, _ = _consts(rng)
    diff = gd.create_diffusion(100, "cosine", "ddim10")
    x0 = jnp.asarray(rng.standard_normal((2, 5, C)).astype(np.float32))
    eps = jnp.asarray(rng.standard_normal((2, 5, C)).astype(np.float32))
    k = jnp.array([3, 9])
    seen = {}

    def model_fn(x_t, t):
        seen["x_t"], seen["t"] = np.asarray(x_t), np.asarray(t)
        return x_t * 0.5

    kw = dict(tongue_weight=0.1, jaw_weight=1.0, lip_dist_alpha=None, lip_dist_exp=10.0, velocity_alpha=1.0,
              exp_smooth_alpha=None)
    terms, pred = ld.training_losses(model_fn, diff, x0, k, eps, consts, jnp.ones((2, 1)), **kw)
    np.testing.assert_array_equal(seen["t"], [30, 90])  # original indices reach the model
    np.testing.assert_allclose(seen["x_t"], np.asarray(gd.q_sample(diff, x0, k, eps)), rtol=1e-6)
    ref = ld.diffusion_losses(pred, x0, consts, jnp.ones((2, 1)), **kw)
    np.testing.assert_allclose(np.asarray(terms["total"]), np.asarray(ref["total"]), rtol=1e-6)
    t = np.asarray(ld.sample_timesteps(jax.random.PRNGKey(0), 4000, 1000))
    assert t.min() >= 0 and t.max() <= 999 and len(np.unique(t)) > 900
