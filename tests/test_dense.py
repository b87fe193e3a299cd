"""models.dense: the hand-written backward equals autodiff of x @ W + b."""

import jax
import jax.numpy as jnp
import numpy as np

from a2f_jax.models.dense import dense, dense_nobias


def test_dense_values_and_gradients_match_autodiff():
    r = np.random.default_rng(0)
    x = jnp.asarray(r.standard_normal((2, 5, 7)), jnp.float32)
    w = jnp.asarray(r.standard_normal((7, 3)), jnp.float32)
    b = jnp.asarray(r.standard_normal(3), jnp.float32)
    g = jnp.asarray(r.standard_normal((2, 5, 3)), jnp.float32)

    def ours(x, w, b):
        return jnp.sum(jnp.sin(dense(x, w, b)) * g) + jnp.sum(jnp.cos(dense_nobias(x, w)) * g)

    def plain(x, w, b):
        return jnp.sum(jnp.sin(x @ w + b) * g) + jnp.sum(jnp.cos(x @ w) * g)

    np.testing.assert_allclose(np.asarray(dense(x, w, b)), np.asarray(x @ w + b), rtol=1e-6)
    got = jax.jit(jax.grad(ours, argnums=(0, 1, 2)))(x, w, b)
    want = jax.grad(plain, argnums=(0, 1, 2))(x, w, b)
    for a, e in zip(got, want):
        assert a.shape == e.shape
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-5, atol=1e-5)
