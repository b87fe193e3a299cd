"""ops.dense: the hand-written backward equals autodiff of its reference x @ W + b."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2f_jax.ops.dense import dense, dense_nobias, dense_reference


def test_dense_values_and_gradients_match_autodiff():
    r = np.random.default_rng(0)
    x = jnp.asarray(r.standard_normal((2, 5, 7)), jnp.float32)
    w = jnp.asarray(r.standard_normal((7, 3)), jnp.float32)
    b = jnp.asarray(r.standard_normal(3), jnp.float32)
    g = jnp.asarray(r.standard_normal((2, 5, 3)), jnp.float32)

    def ours(x, w, b):
        return jnp.sum(jnp.sin(dense(x, w, b)) * g) + jnp.sum(jnp.cos(dense_nobias(x, w)) * g)

    def plain(x, w, b):
        return jnp.sum(jnp.sin(dense_reference(x, w, b)) * g) + jnp.sum(jnp.cos(dense_reference(x, w)) * g)

    np.testing.assert_allclose(np.asarray(dense(x, w, b)), np.asarray(x @ w + b), rtol=1e-6)
    got = jax.jit(jax.grad(ours, argnums=(0, 1, 2)))(x, w, b)
    want = jax.grad(plain, argnums=(0, 1, 2))(x, w, b)
    for a, e in zip(got, want):
        assert a.shape == e.shape
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("env", ["A2F_FAST_OPS", "A2F_PLAIN_OPS"])
def test_linear_follows_the_switch(env, monkeypatch):
    from a2f_jax.ops.dense import linear

    monkeypatch.delenv("A2F_FAST_OPS", raising=False)
    monkeypatch.delenv("A2F_PLAIN_OPS", raising=False)
    monkeypatch.setenv(env, "1")
    x, w, b = jnp.ones((2, 3)), jnp.ones((3, 4)), jnp.ones(4)
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda w: jnp.sum(linear(x, w, b))))(w))
    assert ("custom_vjp_call" in jaxpr) is (env == "A2F_FAST_OPS")
