"""Autocorrelation features vs a plain NumPy loop over the formula in docs/training.md."""

from __future__ import annotations

import numpy as np
import pytest

from a2f_jax.errors import ConfigError
from a2f_jax.models.autocorr import AUTOCORR_X_SCALE, autocorrelation


def _reference(buf: np.ndarray, nf: float, preemph: float, remove_dc: bool, win: str | None) -> np.ndarray:
    x = buf.astype(np.float64) / nf * 8.912028121636435
    if preemph:
        y = x.copy()
        for n in range(1, len(x)):
            y[n] = x[n] - preemph * x[n - 1]
        x = y
    out = np.zeros((25, 32))
    for w in range(25):
        s = x[320 * w : 320 * w + 640].copy()
        if remove_dc:
            s -= s.mean()
        if win == "hanning":
            s *= np.array([0.5 - 0.5 * np.cos(2 * np.pi * n / 639) for n in range(640)])
        elif win == "kaiser6":
            s *= np.kaiser(640, 6)
        for k in range(32):
            out[w, k] = np.dot(s[: 640 - k], s[k:]) / 640  # sum over n < 640-k of s[n] s[n+k]
    return out


@pytest.mark.parametrize("preemph,remove_dc,win", [(0.0, True, "hanning"), (0.97, False, "kaiser6"), (0.0, True, None)])
def test_matches_numpy_loop(preemph: float, remove_dc: bool, win: str | None) -> None:
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((2, 2, 8320)) * 0.2 + 0.05).astype(np.float32)  # [B, S, N], with a DC offset
    nf = np.array([0.7, 1.3], np.float32)
    got = np.asarray(autocorrelation(audio, nf, preemph=preemph, remove_dc=remove_dc, win_func=win))
    assert got.shape == (2, 2, 25, 32)
    for b in range(2):
        for s in range(2):
            ref = _reference(audio[b, s], float(nf[b]), preemph, remove_dc, win)
            np.testing.assert_allclose(got[b, s], ref, rtol=2e-4, atol=1e-5 * np.abs(ref).max())


def test_no_norm_factor_and_constant() -> None:
    assert AUTOCORR_X_SCALE == 8.912028121636435
    audio = np.random.default_rng(1).standard_normal((3, 8320)).astype(np.float32)
    a = np.asarray(autocorrelation(audio))
    b = np.asarray(autocorrelation(audio * 2.0, np.full(3, 2.0, np.float32)))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # lag 0 is the (windowed) energy: positive
    assert a.shape == (3, 25, 32) and (a[..., 0] > 0).all()


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="8320 samples"):
        autocorrelation(np.zeros((1, 8000), np.float32))
    with pytest.raises(ConfigError, match="win_func"):
        autocorrelation(np.zeros((1, 8320), np.float32), win_func="hamming")
