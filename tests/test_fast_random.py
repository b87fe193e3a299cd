"""models.fast_random reproduces jax.random / flax Dropout bit for bit."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2f_jax.models import fast_random as fr


@pytest.mark.parametrize("seed,shape", [(0, (3, 5)), (7, (1, 33, 17)), (123, (4, 1000)), (5, (2,))])
def test_bits_uniform_normal_equal_jax(seed, shape):
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 11)
    np.testing.assert_array_equal(np.asarray(fr.random_bits(key, shape)), np.asarray(jax.random.bits(key, shape)))
    np.testing.assert_array_equal(np.asarray(fr.uniform(key, shape)), np.asarray(jax.random.uniform(key, shape)))
    np.testing.assert_array_equal(np.asarray(fr.uniform(key, shape, -2.0, 3.0)),
                                  np.asarray(jax.random.uniform(key, shape, minval=-2.0, maxval=3.0)))
    got = jax.jit(fr.normal, static_argnums=1)(key, shape)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(jax.random.normal(key, shape)))


def test_normal_statistics():
    x = np.asarray(fr.normal(jax.random.PRNGKey(3), (200_000,)))
    assert abs(x.mean()) < 0.01 and abs(x.std() - 1.0) < 0.01
    assert np.isfinite(x).all()


def test_typed_keys_and_other_implementations():
    typed = jax.random.key(4)
    np.testing.assert_array_equal(np.asarray(fr.normal(typed, (50,))), np.asarray(jax.random.normal(typed, (50,))))
    rbg = jax.random.key(4, impl="rbg")
    np.testing.assert_array_equal(np.asarray(fr.uniform(rbg, (50,))), np.asarray(jax.random.uniform(rbg, (50,))))
    with pytest.raises(ValueError, match="uint32\\[2\\]"):
        fr.random_bits(jnp.zeros(3, jnp.uint32), (2,))


class _Net(nn.Module):
    fast: bool

    @nn.compact
    def __call__(self, x, train):
        for rate in (0.1, 0.5):
            x = fr.Dropout(rate)(x, deterministic=not train) if self.fast else nn.Dropout(rate)(x, deterministic=not train)
            x = nn.Dense(8)(x)
        return x


def test_dropout_is_bit_identical_to_flax():
    x = jnp.ones((4, 6, 8))
    params = _Net(False).init(jax.random.PRNGKey(0), x, False)
    rngs = {"dropout": jax.random.PRNGKey(9)}
    a = _Net(True).apply(params, x, True, rngs=rngs)
    b = _Net(False).apply(params, x, True, rngs=rngs)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(_Net(True).apply(params, x, False)), np.asarray(_Net(False).apply(params, x, False)))
