"""ops.conv: the audio encoder's CPU-tuned convs (first-layer matmul, folded group norm, Winograd k3/s2) equal
their plain references (lax.conv_general_dilated, a separate norm pass) within float32 rounding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2f_jax import ops
from a2f_jax.ops import conv


@pytest.mark.parametrize("n", [7, 8, 9, 10, 25, 50])
def test_winograd_k3s2_conv_equals_direct_conv(n):
    r = np.random.default_rng(n)
    x = jnp.asarray(r.standard_normal((2, n, 6)), jnp.float32)
    w = jnp.asarray(r.standard_normal((3, 6, 5)), jnp.float32)
    want = conv.conv1d_reference(x, w, 2)
    got = conv.conv_k3s2_winograd(x, w)
    assert got.shape == want.shape == (2, (n - 3) // 2 + 1, 5)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_first_layer_matmul_equals_direct_conv():
    r = np.random.default_rng(1)
    x = jnp.asarray(r.standard_normal((2, 403, 1)), jnp.float32)
    w = jnp.asarray(r.standard_normal((10, 1, 6)), jnp.float32)
    got = conv.first_layer_patches(x, 10, 5) @ w[:, 0, :]
    np.testing.assert_allclose(np.asarray(got), np.asarray(conv.conv1d_reference(x, w, 5)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("valid", [None, [80, 41]])
def test_folded_group_norm_equals_conv_then_norm(valid):
    r = np.random.default_rng(2)
    x = jnp.asarray(r.standard_normal((2, 403, 1)), jnp.float32)
    w = jnp.asarray(r.standard_normal((10, 1, 6)), jnp.float32)
    scale = jnp.asarray(r.uniform(0.5, 1.5, 6), jnp.float32)
    bias = jnp.asarray(r.standard_normal(6), jnp.float32)
    valid = None if valid is None else jnp.asarray(valid)
    got = conv.folded_group_norm_conv(conv.first_layer_patches(x, 10, 5), w[:, 0, :], scale, bias, 1e-5, valid,
                                      jnp.float32)
    want = conv.group_norm_reference(conv.conv1d_reference(x, w, 5), scale, bias, 1e-5, valid, jnp.float32)
    rows = got.shape[1] if valid is None else int(valid[1])
    np.testing.assert_allclose(np.asarray(got)[:, :rows], np.asarray(want)[:, :rows], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel,stride,cin", [(10, 5, 1), (3, 2, 4), (2, 2, 4)])
def test_switched_forms_agree(kernel, stride, cin, monkeypatch):
    r = np.random.default_rng(3)
    x = jnp.asarray(r.standard_normal((2, 61, cin)), jnp.float32)
    w = jnp.asarray(r.standard_normal((kernel, cin, 5)), jnp.float32)
    scale, bias, cb = jnp.ones(5), jnp.zeros(5), jnp.asarray(r.standard_normal(5), jnp.float32)
    out = {}
    for env in (ops.FAST_ENV, ops.PLAIN_ENV):
        monkeypatch.delenv(ops.FAST_ENV, raising=False)
        monkeypatch.delenv(ops.PLAIN_ENV, raising=False)
        monkeypatch.setenv(env, "1")
        jaxpr = str(jax.make_jaxpr(lambda a: conv.feature_conv(a, w, stride))(x))
        out[env] = (conv.feature_conv(x, w, stride), conv_group_norm(x, w, stride, cb, scale, bias), jaxpr)
    assert "conv_general_dilated" in out[ops.PLAIN_ENV][2]
    assert ("conv_general_dilated" in out[ops.FAST_ENV][2]) is (kernel == 2)  # no tuned form for k2/s2
    for a, b in zip(out[ops.FAST_ENV][:2], out[ops.PLAIN_ENV][:2]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


def conv_group_norm(x, w, stride, cb, scale, bias):
    return conv.conv_group_norm(x, w, stride, cb, scale, bias, 1e-5, None, jnp.float32)


def test_regression_conv_forms_agree():
    r = np.random.default_rng(4)
    x = jnp.asarray(r.standard_normal((3, 32, 4)), jnp.float32)
    w = jnp.asarray(r.standard_normal((3, 4, 5)), jnp.float32)
    np.testing.assert_allclose(np.asarray(conv.conv1d_matmul(x, w, 2, (1, 1))), np.asarray(conv.conv1d_xla(x, w, 2, (1, 1))),
                               rtol=1e-5, atol=1e-5)
