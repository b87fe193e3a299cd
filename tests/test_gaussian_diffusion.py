"""Gaussian diffusion: schedule values, respacing, DDPM/DDIM steps and loops against NumPy references."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from a2f_jax.errors import ConfigError
from a2f_jax.models import gaussian_diffusion as gd


def test_cosine_schedule_values():
    b = gd.beta_schedule("cosine", 1000)
    assert b.dtype == np.float64 and b.shape == (1000,)
    np.testing.assert_allclose(b[0], 4.12842e-5, rtol=1e-5)
    assert b[999] == 0.999
    acp = np.cumprod(1 - b)
    np.testing.assert_allclose(acp[999], 2.42877e-9, rtol=1e-4)
    # Independent formula for a middle value.
    f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    np.testing.assert_allclose(b[500], 1 - f(501 / 1000) / f(500 / 1000), rtol=1e-12)


def test_linear_schedule_values():
    b = gd.beta_schedule("linear", 1000)
    np.testing.assert_allclose([b[0], b[-1]], [1e-4, 0.02])
    b100 = gd.beta_schedule("linear", 100)
    np.testing.assert_allclose([b100[0], b100[-1]], [1e-3, 0.2])
    with pytest.raises(ConfigError, match="DIFFUSION_NOISE_SCHEDULE"):
        gd.beta_schedule("sigmoid", 10)


def test_space_timesteps():
    assert gd.space_timesteps(1000, "2") == {0, 999}
    assert gd.space_timesteps(1000, "") == set(range(1000))
    assert gd.space_timesteps(1000, None) == set(range(1000))
    # Section counts: 300 steps, sections of 100 with 10/15/20 steps (guided-diffusion's docstring example).
    s = gd.space_timesteps(300, [10, 15, 20])
    assert len(s) == 45
    assert sorted(s)[:10] == [0, 11, 22, 33, 44, 55, 66, 77, 88, 99]
    assert min(x for x in s if x >= 100) == 100 and max(x for x in s if x < 200) == 199
    assert max(s) == 299
    # Uneven sections: 10 steps in 3 sections of 4/3/3; "2,1,3".
    assert gd.space_timesteps(10, "2,1,3") == {0, 3, 4, 7, 8, 9}
    assert gd.space_timesteps(1000, "ddim10") == set(range(0, 1000, 100))
    assert gd.space_timesteps(100, "ddim25") == set(range(0, 100, 4))
    with pytest.raises(ConfigError, match="TIMESTEP_RESPACING"):
        gd.space_timesteps(10, "20")
    with pytest.raises(ConfigError, match="TIMESTEP_RESPACING"):
        gd.space_timesteps(10, "ddim7")
    with pytest.raises(ConfigError, match="TIMESTEP_RESPACING"):
        gd.space_timesteps(10, "two")


def test_respaced_two_step_tables():
    d = gd.create_diffusion(1000, "cosine", "2")
    assert d.num_timesteps == 2
    assert list(d.timestep_map) == [0, 999]
    np.testing.assert_allclose(d.betas, [4.12842e-5, 0.999999998], rtol=1e-6)
    np.testing.assert_allclose(d.alphas_cumprod, [0.999958716, 2.42877e-9], rtol=1e-5)
    np.testing.assert_allclose(d.posterior_mean_coef1, [1.0, 0.99997936], rtol=1e-6)
    np.testing.assert_allclose(d.posterior_mean_coef2, [0.0, 2.0346e-9], rtol=1e-3, atol=1e-15)
    sigma = np.exp(0.5 * d.posterior_log_variance_clipped)
    np.testing.assert_allclose(sigma, [0.0064253, 0.0064253], rtol=1e-4)
    assert [d.latent_slot(k) for k in range(2)] == [0, 1]


def test_full_diffusion_matches_base_tables():
    d = gd.create_diffusion(1000, "cosine", "")
    b = gd.beta_schedule("cosine", 1000)
    np.testing.assert_allclose(d.betas, b, rtol=1e-10)
    assert list(d.timestep_map) == list(range(1000))
    acp = np.cumprod(1 - b)
    acp_prev = np.append(1.0, acp[:-1])
    pv = b * (1 - acp_prev) / (1 - acp)
    np.testing.assert_allclose(d.posterior_variance, pv)
    np.testing.assert_allclose(d.posterior_log_variance_clipped[0], np.log(pv[1]))
    np.testing.assert_allclose(d.posterior_log_variance_clipped[5], np.log(pv[5]))


def test_q_sample_per_item_timesteps():
    d = gd.create_diffusion(1000, "cosine", "")
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((2, 3, 4)).astype(np.float32)
    eps = rng.standard_normal((2, 3, 4)).astype(np.float32)
    t = np.array([10, 900])
    out = np.asarray(gd.q_sample(d, jnp.asarray(x0), jnp.asarray(t), jnp.asarray(eps)))
    acp = np.cumprod(1 - gd.beta_schedule("cosine", 1000))
    ref = np.sqrt(acp[t])[:, None, None] * x0 + np.sqrt(1 - acp[t])[:, None, None] * eps
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    # Python-int index gives the same.
    out_int = np.asarray(gd.q_sample(d, jnp.asarray(x0[:1]), 10, jnp.asarray(eps[:1])))
    np.testing.assert_allclose(out_int, ref[:1], rtol=1e-5, atol=1e-6)


def _np_tables(respacing):
    base = gd.beta_schedule("cosine", 1000)
    keep = sorted(gd.space_timesteps(1000, respacing))
    acp_base = np.cumprod(1 - base)
    b = 1 - acp_base[keep] / np.append(1.0, acp_base[keep][:-1])
    acp = np.cumprod(1 - b)
    acp_prev = np.append(1.0, acp[:-1])
    pv = b * (1 - acp_prev) / (1 - acp)
    return dict(
        b=b, acp=acp, acp_prev=acp_prev, logvar=np.log(np.append(pv[1], pv[1:])),
        c1=b * np.sqrt(acp_prev) / (1 - acp), c2=(1 - acp_prev) * np.sqrt(1 - b) / (1 - acp),
    )


def test_one_ancestral_step_matches_numpy():
    d = gd.create_diffusion(1000, "cosine", "ddim10")
    tb = _np_tables("ddim10")
    rng = np.random.default_rng(1)
    x_t, x0, z = (rng.standard_normal((2, 5, 3)).astype(np.float32) for _ in range(3))
    for k in (7, 0):
        out = np.asarray(gd.p_sample_step(d, jnp.asarray(x_t), k, jnp.asarray(x0), jnp.asarray(z)))
        ref = tb["c1"][k] * x0 + tb["c2"][k] * x_t + (k > 0) * np.exp(0.5 * tb["logvar"][k]) * z
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    # Array index per item: item 0 at k=3, item 1 at k=0 (no noise there).
    out = np.asarray(gd.p_sample_step(d, jnp.asarray(x_t), jnp.array([3, 0]), jnp.asarray(x0), jnp.asarray(z)))
    ref1 = tb["c1"][0] * x0[1] + tb["c2"][0] * x_t[1]
    np.testing.assert_allclose(out[1], ref1, rtol=1e-5, atol=1e-6)
    ref0 = tb["c1"][3] * x0[0] + tb["c2"][3] * x_t[0] + np.exp(0.5 * tb["logvar"][3]) * z[0]
    np.testing.assert_allclose(out[0], ref0, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_one_ddim_step_matches_numpy(eta):
    d = gd.create_diffusion(1000, "cosine", "ddim10")
    tb = _np_tables("ddim10")
    rng = np.random.default_rng(2)
    x_t, x0, z = (rng.standard_normal((1, 4, 3)).astype(np.float32) for _ in range(3))
    k = 5
    out = np.asarray(gd.ddim_step(d, jnp.asarray(x_t), k, jnp.asarray(x0), jnp.asarray(z), eta))
    ab, abp = tb["acp"][k], tb["acp_prev"][k]
    eps = (np.sqrt(1 / ab) * x_t - x0) / np.sqrt(1 / ab - 1)
    sigma = eta * np.sqrt((1 - abp) / (1 - ab)) * np.sqrt(1 - ab / abp)
    ref = x0 * np.sqrt(abp) + np.sqrt(1 - abp - sigma**2) * eps + sigma * z
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_two_step_ancestral_loop_with_external_noise_and_carry():
    d = gd.create_diffusion(1000, "cosine", "2")
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    calls = []

    def denoise(x, t, slot, carry):
        calls.append((np.asarray(x).copy(), np.asarray(t), slot))
        return 0.5 * x + t[:, None, None].astype(jnp.float32) * 1e-3, carry + [slot]

    out, carry = gd.p_sample_loop(d, denoise, jnp.asarray(noise), carry=[])
    assert carry == [1, 0]
    assert [c[2] for c in calls] == [1, 0]
    np.testing.assert_array_equal(calls[0][1], [999, 999])
    np.testing.assert_array_equal(calls[1][1], [0, 0])
    np.testing.assert_allclose(calls[0][0], noise[:, -1])
    tb = _np_tables("2")
    x0_1 = 0.5 * noise[:, 2] + 0.999
    x1 = tb["c1"][1] * x0_1 + tb["c2"][1] * noise[:, 2] + np.exp(0.5 * tb["logvar"][1]) * noise[:, 1]
    np.testing.assert_allclose(calls[1][0], x1, rtol=1e-5, atol=1e-6)
    # The last step returns x̂0 exactly: c1 = 1, c2 = 0 and no noise at k = 0.
    np.testing.assert_allclose(np.asarray(out), 0.5 * x1, rtol=1e-5, atol=1e-6)


def test_skip_steps_starts_from_noised_zeros():
    d = gd.create_diffusion(1000, "cosine", "ddim10")
    rng = np.random.default_rng(4)
    noise = rng.standard_normal((1, 11, 2, 3)).astype(np.float32)
    seen = []

    def denoise(x, t, slot, carry):
        seen.append((np.asarray(x).copy(), int(t[0])))
        return jnp.zeros_like(x), carry

    gd.p_sample_loop(d, denoise, jnp.asarray(noise), skip_steps=3)
    assert [s[1] for s in seen] == [600, 500, 400, 300, 200, 100, 0]
    acp = _np_tables("ddim10")["acp"]
    np.testing.assert_allclose(seen[0][0], np.sqrt(1 - acp[6]) * noise[:, -1], rtol=1e-5)
    with pytest.raises(ConfigError, match="SKIP_STEPS"):
        gd.p_sample_loop(d, denoise, jnp.asarray(noise), skip_steps=10)
    with pytest.raises(ValueError, match="noise"):
        gd.p_sample_loop(d, denoise, jnp.asarray(noise[:, :5]))


def test_ddim_loop_with_exact_x0_recovers_it():
    # If the model always predicts the true x0, DDIM (eta 0) lands exactly on it.
    d = gd.create_diffusion(1000, "cosine", "ddim10")
    rng = np.random.default_rng(5)
    x0 = jnp.asarray(rng.standard_normal((1, 3, 2)).astype(np.float32))
    x_T = jnp.asarray(rng.standard_normal((1, 3, 2)).astype(np.float32))
    out, _ = gd.ddim_sample_loop(d, lambda x, t, s, c: (x0, c), x_T)
    np.testing.assert_allclose(np.asarray(out), np.asarray(x0), rtol=1e-5, atol=1e-5)


def test_huber():
    d = jnp.array([-3.0, -1.0, -0.5, 0.0, 0.2, 0.999, 2.0])
    ref = np.where(np.abs(d) < 1, 0.5 * np.asarray(d) ** 2, np.abs(d) - 0.5)
    np.testing.assert_allclose(np.asarray(gd.huber(d)), ref, rtol=1e-7)
