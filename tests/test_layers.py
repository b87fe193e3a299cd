"""NormRelu, the one PyTorch-style initialiser and Linear, Conv1d, GDropout statistics, ConcatEmotion."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2f_jax.errors import ConfigError
from a2f_jax.models.layers import (
    Conv1d,
    GDropout,
    Linear,
    concat_emotion,
    norm_relu,
    torch_uniform,
)
from a2f_jax.ops.conv import conv1d_matmul, conv1d_xla


def test_norm_relu_is_sqrt2_relu_and_leaky_variant():
    x = jnp.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(norm_relu(x), math.sqrt(2) * np.maximum(np.asarray(x), 0), rtol=1e-6)
    leak = 0.2
    ref = np.where(np.asarray(x) >= 0, x, leak * np.asarray(x)) * math.sqrt(2 / (1 + leak**2))
    np.testing.assert_allclose(norm_relu(x, leak), ref, rtol=1e-6)


def _torch_conv2d_ref(x_nchw, w_oihw, b, stride, pad):
    """Direct PyTorch Conv2d (cross-correlation) semantics in NumPy."""
    x = np.pad(x_nchw, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    n, _, h, w = x.shape
    co, _, kh, kw = w_oihw.shape
    ho, wo = (h - kh) // stride[0] + 1, (w - kw) // stride[1] + 1
    out = np.zeros((n, co, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, :, i * stride[0] : i * stride[0] + kh, j * stride[1] : j * stride[1] + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w_oihw) + b
    return out


@pytest.mark.parametrize("k,stride,pad", [(3, 2, 1), (2, 1, 0), (3, 1, 1)])
def test_conv1d_matches_torch_conv2d_along_time_axis(k, stride, pad):
    rng = np.random.default_rng(0)
    n, cin, cout, h = 3, 5, 4, 9
    x = rng.normal(size=(n, cin, h, 1))
    w = rng.normal(size=(cout, cin, k, 1))
    b = rng.normal(size=cout)
    ref = _torch_conv2d_ref(x, w, b, (stride, 1), (pad, 0))[..., 0]  # [N, Cout, Ho]
    kernel = jnp.asarray(w.reshape(cout, cin, k).transpose(2, 1, 0), jnp.float32)  # documented mapping
    params = {"params": {"kernel": kernel, "bias": jnp.asarray(b, jnp.float32)}}
    x_nlc = jnp.asarray(x[..., 0].transpose(0, 2, 1), jnp.float32)
    for impl in ("matmul", "xla"):
        y = Conv1d(cout, k, stride, (pad, pad), impl=impl).apply(params, x_nlc)
        np.testing.assert_allclose(np.asarray(y).transpose(0, 2, 1), ref, rtol=1e-4, atol=1e-4)


def test_conv1d_along_lag_axis_matches_torch_kernel_1x3():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 1, 32))  # [N, C, H=1, W]
    w = rng.normal(size=(6, 3, 1, 3))
    b = rng.normal(size=6)
    ref = _torch_conv2d_ref(x, w, b, (1, 2), (0, 1))[:, :, 0, :]  # W 32 -> 16
    kernel = jnp.asarray(w.reshape(6, 3, 3).transpose(2, 1, 0), jnp.float32)
    y = conv1d_matmul(jnp.asarray(x[:, :, 0, :].transpose(0, 2, 1), jnp.float32), kernel, 2, (1, 1)) + b
    assert y.shape == (2, 16, 6)
    np.testing.assert_allclose(np.asarray(y).transpose(0, 2, 1), ref, rtol=1e-4, atol=1e-4)


def test_conv1d_impls_agree_and_bad_impl_raises():
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 25, 7))
    kern = jax.random.normal(jax.random.PRNGKey(1), (3, 7, 5))
    np.testing.assert_allclose(conv1d_matmul(x, kern, 2, (1, 1)), conv1d_xla(x, kern, 2, (1, 1)), rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="impl"):
        Conv1d(5, 3, impl="fft").init(jax.random.PRNGKey(0), x)


def test_pytorch_default_init_bounds():
    x = jnp.zeros((2, 50))
    p = Linear(400).init(jax.random.PRNGKey(0), x)["params"]
    bound = 1 / math.sqrt(50)
    w = np.asarray(p["kernel"])
    assert w.shape == (50, 400) and p["bias"].shape == (400,)
    assert np.abs(w).max() <= bound and np.abs(np.asarray(p["bias"])).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound  # uniform, not normal / lecun
    pc = Conv1d(64, 3, 2, (1, 1)).init(jax.random.PRNGKey(1), jnp.zeros((1, 9, 20)))["params"]
    cb = 1 / math.sqrt(60)  # fan_in = Cin * k
    assert pc["kernel"].shape == (3, 20, 64)
    assert np.abs(np.asarray(pc["kernel"])).max() <= cb and np.abs(np.asarray(pc["kernel"])).max() > 0.9 * cb


def test_linear_with_zero_inputs_has_zero_bias():
    p = Linear(8).init(jax.random.PRNGKey(0), jnp.zeros((1, 0)))["params"]
    assert p["kernel"].shape == (0, 8)
    np.testing.assert_array_equal(p["bias"], 0)


def test_torch_uniform_is_jax_uniform_in_the_pytorch_bound():
    key = jax.random.PRNGKey(5)
    for fan_in in (1, 7, 256):
        b = 1.0 / math.sqrt(fan_in)
        np.testing.assert_array_equal(np.asarray(torch_uniform(fan_in)(key, (3, 4))),
                                      np.asarray(jax.random.uniform(key, (3, 4), jnp.float32, -b, b)))
    np.testing.assert_array_equal(np.asarray(torch_uniform(0)(key, (5,))), np.zeros(5))


@pytest.mark.parametrize("env", ["A2F_FAST_OPS", "A2F_PLAIN_OPS"])
def test_linear_forms_share_params_values_and_gradients(env, monkeypatch):
    """`wide` (the diffusion layers: ops.dense.linear) only changes how the backward pass is written."""
    monkeypatch.delenv("A2F_FAST_OPS", raising=False)
    monkeypatch.delenv("A2F_PLAIN_OPS", raising=False)
    monkeypatch.setenv(env, "1")
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 6))
    for use_bias in (True, False):
        plain, wide = Linear(4, use_bias=use_bias), Linear(4, use_bias=use_bias, wide=True)
        p = plain.init(jax.random.PRNGKey(0), x)["params"]
        pw = wide.init(jax.random.PRNGKey(0), x)["params"]
        jax.tree_util.tree_map(np.testing.assert_array_equal, p, pw)
        loss = lambda m: jax.grad(lambda q: jnp.sum(jnp.sin(m.apply({"params": q}, x))))  # noqa: E731
        np.testing.assert_allclose(np.asarray(plain.apply({"params": p}, x)), np.asarray(wide.apply({"params": p}, x)),
                                   rtol=1e-6)
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), loss(plain)(p),
                               loss(wide)(p))
    zero = Linear(4, zero_init=True).init(jax.random.PRNGKey(0), x)["params"]
    assert not np.any(np.asarray(zero["kernel"])) and not np.any(np.asarray(zero["bias"]))


def _apply_gdrop(x, key, **kw):
    return GDropout(**kw).apply({}, x, True, rngs={"dropout": key})


def test_gdropout_eval_is_identity_and_train_needs_rng():
    x = jnp.ones((2, 3, 4))
    np.testing.assert_array_equal(GDropout().apply({}, x, False), x)
    y1 = _apply_gdrop(x, jax.random.PRNGKey(0))
    y2 = _apply_gdrop(x, jax.random.PRNGKey(1))
    assert not np.allclose(y1, y2)
    np.testing.assert_array_equal(y1, _apply_gdrop(x, jax.random.PRNGKey(0)))


def test_gdropout_one_multiplier_per_batch_and_channel_normalised():
    b, mid, c = 8, 6, 64
    x = jnp.ones((b, mid, c))
    m = np.asarray(_apply_gdrop(x, jax.random.PRNGKey(3)))
    np.testing.assert_allclose(m, np.broadcast_to(m[:, :1, :], m.shape))  # same over S/H/W
    assert not np.allclose(m[0], m[1])  # different per batch item
    # normalised: the RMS over channels is 1 (so the signal power per sample is preserved)
    np.testing.assert_allclose(np.sqrt((m[:, 0, :] ** 2).mean(axis=1)), 1.0, rtol=1e-5)


def test_gdropout_mul_statistics_unnormalised():
    x = jnp.ones((400, 1, 100))
    m = np.asarray(_apply_gdrop(x, jax.random.PRNGKey(4), normalize=False))[:, 0, :]
    g = np.log(m) / np.log(1.4)  # m = 1.4 ** N(0, 1)
    assert abs(g.mean()) < 0.02 and abs(g.std() - 1.0) < 0.02
    # E[1.4**g] = exp(ln(1.4)^2 / 2): the multiplier's mean, as in the original
    assert abs(m.mean() - math.exp(math.log(1.4) ** 2 / 2)) < 0.01


def test_gdropout_single_channel_is_near_identity():
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 5, 1))
    np.testing.assert_allclose(_apply_gdrop(x, jax.random.PRNGKey(2)), x, rtol=1e-5)


def test_gdropout_drop_mode_rate_and_mean():
    x = jnp.ones((500, 1, 200))
    m = np.asarray(_apply_gdrop(x, jax.random.PRNGKey(5), mode="drop", strength=0.4, normalize=False))
    assert abs((m == 0).mean() - 0.4) < 0.01
    assert abs(m.mean() - 1.0) < 0.02  # inverted dropout keeps the mean
    np.testing.assert_allclose(np.unique(m), [0.0, 1 / 0.6], rtol=1e-6)


def test_concat_emotion_broadcasts_over_middle_axes():
    x = jnp.zeros((2, 3, 4, 5, 6))
    e = jnp.arange(2 * 3 * 7, dtype=jnp.float32).reshape(2, 3, 7)
    y = concat_emotion(x, e)
    assert y.shape == (2, 3, 4, 5, 13)
    np.testing.assert_array_equal(y[1, 2, 3, 4, 6:], e[1, 2])
    np.testing.assert_array_equal(concat_emotion(jnp.zeros((2, 3, 4)), e)[..., 4:], e)
    with pytest.raises(ValueError, match="batch, seq"):
        concat_emotion(jnp.zeros((2, 4, 4)), e)
