"""Regression losses against NumPy references of the original's formulas (docs/training.md)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2f_jax.errors import ConfigError, DataError
from a2f_jax.train import losses as L

RNG = np.random.default_rng(0)
B, S, KS, KT, V = 4, 2, 6, 3, 20
D = KS + KT + 15 + 4


def _np_pose(coeffs, m, mu):
    return (coeffs @ m.reshape(m.shape[0], -1)).reshape(coeffs.shape[:-1] + (-1, 3)) + mu


@pytest.fixture(scope="module")
def data():
    m = RNG.normal(size=(KS, V, 3)).astype(np.float32)
    mu = RNG.normal(size=(V, 3)).astype(np.float32)
    return {
        "y_pred": RNG.normal(size=(B, S, D)).astype(np.float32),
        "y_true": RNG.normal(size=(B, S, D)).astype(np.float32),
        "emo": RNG.normal(size=(B, S, 16)).astype(np.float32),
        "audio": (RNG.normal(size=(B, S, 64)) * np.array([1e-5, 1e-4, 1e-3, 0.1])[:, None, None]).astype(np.float32),
        "m": m,
        "mu": mu,
        "lip": {"upper": [1, 2, 3], "lower": [4, 5, 6]},
        "size": {"upper_lip": {"top": [7, 8], "bottom": [9, 10]}, "lower_lip": {"top": [11, 12], "bottom": [13, 14]}},
        "eye": {"upper": [15, 16], "lower": [17, 18]},
    }


def test_mse_motion_emo_reg_r2(data):
    p, t, e = data["y_pred"], data["y_true"], data["emo"]
    np.testing.assert_allclose(L.mse_loss(p, t), ((p - t) ** 2).mean(), rtol=1e-5)
    ref_motion = (((p[:, 1:] - p[:, :-1]) - (t[:, 1:] - t[:, :-1])) ** 2).mean()
    np.testing.assert_allclose(L.motion_loss(p, t), ref_motion, rtol=1e-5)
    np.testing.assert_allclose(L.motion_reg_loss(e), ((e[:, 1:] - e[:, :-1]) ** 2).mean() / (e**2).mean(), rtol=1e-5)
    np.testing.assert_allclose(L.motion_reg_loss(3.0 * e), L.motion_reg_loss(e), rtol=1e-5)  # scale invariant
    ref_r2 = 1 - ((p - t) ** 2).mean() / ((t.mean(axis=(0, 1)) - t) ** 2).mean()
    np.testing.assert_allclose(L.r2(p, t), ref_r2, rtol=1e-5)


def test_coeffs_to_pose_and_gathered_y_difference(data):
    c = data["y_pred"][..., :KS]
    pose = _np_pose(c, data["m"], data["mu"])
    np.testing.assert_allclose(L.coeffs_to_pose(c, data["m"], data["mu"]), pose, rtol=1e-4, atol=1e-4)
    basis, off = L.y_diff_basis(data["m"], data["mu"], [1, 2], [3, 4])
    ref = pose[:, :, [1, 2], 1] - pose[:, :, [3, 4], 1]
    np.testing.assert_allclose(L.y_diff(c, basis, off), ref, rtol=1e-4, atol=1e-4)


def _np_lip_dist(pp, pt, up, lo, k, w=None):
    dt = pt[:, :, up, 1] - pt[:, :, lo, 1]
    dp = pp[:, :, up, 1] - pp[:, :, lo, 1]
    wt = np.exp(-k * np.maximum(dt, 0))
    loss = (wt * dp - wt * dt) ** 2
    if w is not None:
        loss = loss * w[:, None, None]
    return loss.mean()


def test_lip_dist_and_lip_size_against_vertex_space_reference(data):
    geo = L.prepare_loss_geometry(data["m"], data["mu"], data["lip"], data["size"], data["eye"])
    cp, ct = data["y_pred"][..., :KS], data["y_true"][..., :KS]
    pp, pt = _np_pose(cp, data["m"], data["mu"]), _np_pose(ct, data["m"], data["mu"])
    g = geo["lip_dist"]
    w = np.array([1.0, 2.0, 0.5, 3.0], np.float32)
    for k, sw in [(1.0, None), (10.0, w)]:
        got = L.lip_dist_loss(L.y_diff(cp, g["basis"], g["offset"]), L.y_diff(ct, g["basis"], g["offset"]), k, sw)
        np.testing.assert_allclose(got, _np_lip_dist(pp, pt, [1, 2, 3], [4, 5, 6], k, sw), rtol=1e-4)
    s = data["size"]
    ref = 0.0
    for part in ("upper_lip", "lower_lip"):
        top, bot = s[part]["top"], s[part]["bottom"]
        ref = ref + ((pp[:, :, top, 1] - pp[:, :, bot, 1]) - (pt[:, :, top, 1] - pt[:, :, bot, 1])) ** 2
    ref = (ref * w[:, None, None]).mean()
    gu, gl = geo["lip_size_upper"], geo["lip_size_lower"]
    got = L.lip_size_loss(
        L.y_diff(cp, gu["basis"], gu["offset"]), L.y_diff(ct, gu["basis"], gu["offset"]),
        L.y_diff(cp, gl["basis"], gl["offset"]), L.y_diff(ct, gl["basis"], gl["offset"]), w,
    )
    np.testing.assert_allclose(got, ref, rtol=1e-4)


def test_vol_stab_reg(data):
    x, p = data["audio"], data["y_pred"]
    wb = np.exp(-5000.0 * np.abs(x).mean(axis=(1, 2)))
    lb = ((p[:, 1:, :-4] - p[:, :-1, :-4]) ** 2).mean(axis=(1, 2))
    np.testing.assert_allclose(L.vol_stab_reg_loss(x, p, 5000.0), (wb * lb).mean(), rtol=1e-5)
    assert wb[0] > 0.9 and wb[3] < 1e-10  # quiet audio weighs, loud audio does not


def _np_softmax_log(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_phoneme_losses_filter_languages_and_weight_classes():
    pmax, p_en, p_zh = 7, 5, 7
    z_en = RNG.normal(size=(B, S, 25, p_en)).astype(np.float32)
    z_zh = RNG.normal(size=(B, S, 25, p_zh)).astype(np.float32)
    t = RNG.random(size=(B, S, 25, pmax)).astype(np.float32)
    t /= t.sum(-1, keepdims=True)
    masks = L.language_masks(["en", "zh", "en", "unsupported"], ["en", "zh"])
    np.testing.assert_array_equal(masks[0], [True, False, True, False])
    w_en = L.phoneme_class_weights(p_en, 0, 0.3)  # [SIL] weight
    np.testing.assert_allclose(w_en, [0.3, 1, 1, 1, 1], rtol=1e-7)
    with pytest.raises(DataError, match="SIL"):
        L.phoneme_class_weights(p_en, 5, 0.3)
    ref = 0.0
    for z, m, w in [(z_en, masks[0], w_en), (z_zh, masks[1], None)]:
        tt = t[m][..., : z.shape[-1]]
        lw = _np_softmax_log(z[m]) * (w if w is not None else 1.0)
        ref += (-(tt * lw).sum(-1)).mean()
    got = L.phoneme_loss([z_en, z_zh], [t, t], [jnp.asarray(m) for m in masks], [w_en, None])
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    ref_m = 0.0
    for z, m in [(z_en, masks[0]), (z_zh, masks[1])]:
        zz, tt = z[m], t[m][..., : z.shape[-1]]
        ref_m += (((zz[:, 1:] - zz[:, :-1]) - (tt[:, 1:] - tt[:, :-1])) ** 2).mean()
    np.testing.assert_allclose(L.phoneme_motion_loss([z_en, z_zh], [t, t], masks), ref_m, rtol=1e-5)
    # no sample of a language in the batch: 0, not NaN
    none = [np.zeros(B, bool)]
    assert float(L.phoneme_loss([z_en], [t], none)) == 0.0


class _TorchLossNormalizer:
    """The original's LossNormalizer("stddev", 0.99), re-stated in plain Python."""

    def __init__(self):
        self.num = self.den = 0.0

    def normalize(self, x):
        self.num = self.num * 0.99 + x**2
        self.den = self.den * 0.99 + 1.0
        return x / ((self.num / self.den) ** 0.5 + 1e-8)


def test_normalizer_state_matches_original_sequence():
    values = [2.0, 0.5, 1.5, 3.0]
    ref = _TorchLossNormalizer()
    state = L.init_normalizer_state(["mse"])
    for step, v in enumerate(values):
        p = float(L.loss_exponent(step, 2, 3))
        assert p == pytest.approx(1 - step / 6)
        got = L.normalized(jnp.float32(v), state["mse"], p)
        np.testing.assert_allclose(got, ref.normalize(v) ** p, rtol=1e-5)
        state = L.next_normalizer_state(state, {"losses/mse": jnp.float32(v)})
    np.testing.assert_allclose(state["mse"], [ref.num, ref.den], rtol=1e-5)


def _np_total(data, cfg, geo, state_vals, p, lip_w):
    """Reference of the trainer's combination with the eye mask, from full vertex reconstructions."""
    yp, yt, e, x = data["y_pred"], data["y_true"], data["emo"], data["audio"]
    pose_t = _np_pose(yt[..., :KS], data["m"], data["mu"])
    dist = (pose_t[:, :, data["eye"]["upper"], 1] - pose_t[:, :, data["eye"]["lower"], 1]).mean(axis=(1, 2))
    mask = (dist > cfg.eye_dist_threshold).astype(np.float32)[:, None, None]
    yp, yt = yp * mask, yt * mask

    def norm(v, name):
        num = 0.99 * state_vals[name][0] + v * v
        den = 0.99 * state_vals[name][1] + 1
        return (v / (math.sqrt(num / den) + 1e-8)) ** p

    raw = {
        "mse": ((yp - yt) ** 2).mean(),
        "motion": (((yp[:, 1:] - yp[:, :-1]) - (yt[:, 1:] - yt[:, :-1])) ** 2).mean(),
        "emo_reg": ((e[:, 1:] - e[:, :-1]) ** 2).mean() / (e**2).mean(),
    }
    pp, pt = _np_pose(yp[..., :KS], data["m"], data["mu"]), _np_pose(yt[..., :KS], data["m"], data["mu"])
    raw["lip_dist"] = _np_lip_dist(pp, pt, data["lip"]["upper"], data["lip"]["lower"], cfg.lip_dist_exp, lip_w)
    wb = np.exp(-cfg.vol_stab_reg_exp * np.abs(x).mean(axis=(1, 2)))
    raw["vol_stab_reg"] = (wb * ((yp[:, 1:, :-4] - yp[:, :-1, :-4]) ** 2).mean(axis=(1, 2))).mean()
    total = (
        cfg.mse_alpha * norm(raw["mse"], "mse")
        + cfg.motion_alpha * norm(raw["motion"], "motion")
        + cfg.emo_reg_alpha * norm(raw["emo_reg"], "emo_reg")
        + cfg.lip_dist_alpha * raw["lip_dist"]
        + cfg.vol_stab_reg_alpha * raw["vol_stab_reg"]
    )
    return total, raw, mask


def test_regression_loss_combination_with_eye_mask(data):
    cfg = L.RegressionLossConfig(eye_dist_threshold=0.0)
    geo = L.prepare_loss_geometry(data["m"], data["mu"], data["lip"], None, data["eye"])
    state = L.init_normalizer_state()
    state["mse"] = jnp.array([0.5, 1.2])
    state_vals = {k: np.asarray(v, np.float64) for k, v in state.items()}
    lip_w = L.emotion_sample_weights(["joy", "anger", "neutral", "joy"], {"joy": 2.0})
    np.testing.assert_array_equal(lip_w, [2.0, 1.0, 1.0, 2.0])
    fn = jax.jit(lambda yp, yt, e, x, st, p, g, w: L.regression_loss(yp, yt, e, x, cfg, KS, st, p, g, w))
    total, terms = fn(data["y_pred"], data["y_true"], data["emo"], data["audio"], state, 0.7, geo, lip_w)
    ref_total, raw, mask = _np_total(data, cfg, geo, state_vals, 0.7, lip_w)
    assert 0 < mask.sum() < B  # the threshold splits the batch: the mask really acts
    np.testing.assert_allclose(total, ref_total, rtol=1e-4)
    for k, v in raw.items():
        np.testing.assert_allclose(terms[f"losses/{k}"], v, rtol=1e-4, err_msg=k)
    assert set(terms) == {"loss", "r2", "losses/mse", "losses/motion", "losses/emo_reg", "losses/lip_dist", "losses/vol_stab_reg"}
    # gradients exist and are finite
    g = jax.grad(lambda yp: L.regression_loss(yp, data["y_true"], data["emo"], data["audio"], cfg, KS, state, 0.7, geo)[0])(
        jnp.asarray(data["y_pred"])
    )
    assert np.isfinite(np.asarray(g)).all() and np.abs(np.asarray(g)).sum() > 0


def test_regression_loss_terms_switch_off_and_phonemes(data):
    cfg = L.RegressionLossConfig(lip_dist_alpha=None, vol_stab_reg_alpha=None, emo_reg_alpha=None, motion_alpha=None)
    z = [jnp.asarray(RNG.normal(size=(B, S, 25, 4)), jnp.float32)]
    t = jnp.full((B, S, 25, 4), 0.25)
    masks = [jnp.array([True, True, False, True])]
    state = L.init_normalizer_state()
    total, terms = L.regression_loss(
        data["y_pred"], data["y_true"], data["emo"], data["audio"], cfg, KS, state, 1.0,
        phoneme_logits=z, phoneme_targets=t, phoneme_masks=masks,
    )
    assert set(terms) == {"loss", "r2", "losses/mse", "losses/phoneme", "losses/phoneme_motion"}
    # with an empty normaliser history and p = 1 each normalised term is value / |value| = 1
    np.testing.assert_allclose(total, 1.0 + 0.1 + 0.05, rtol=1e-5)


def test_config_from_train_config_and_errors(data):
    cfg = L.RegressionLossConfig.from_train_config({"LOSS_LIP_SIZE_ALPHA": 3, "LOSS_PHONEME_ALPHA": None, "EYE_DIST_THRESHOLD": 0.2})
    assert cfg.lip_size_alpha == 3.0 and cfg.phoneme_alpha is None and cfg.eye_dist_threshold == 0.2
    assert cfg.mse_alpha == 1.0 and cfg.vol_stab_reg_exp == 5000.0
    with pytest.raises(ConfigError, match="LOSS_MSE_ALPHA"):
        L.RegressionLossConfig.from_train_config({"LOSS_MSE_ALPHA": "1"})
    with pytest.raises(DataError, match="upper"):
        L.prepare_loss_geometry(data["m"], data["mu"], {"upper": [1, 99], "lower": [2, 3]}, source="lip.json")
    with pytest.raises(DataError, match="equal length"):
        L.prepare_loss_geometry(data["m"], data["mu"], {"upper": [1], "lower": [2, 3]})
    with pytest.raises(DataError, match="lower"):
        L.prepare_loss_geometry(data["m"], data["mu"], None, None, {"upper": [1]})
    assert L.emotion_sample_weights(["a"], None) is None
