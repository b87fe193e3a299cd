"""ops.random (straight-line threefry) reproduces its reference jax.random, and models.layers.Dropout reproduces
flax's Dropout, bit for bit, with either form of the ops switch."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2f_jax import ops
from a2f_jax.models.layers import Dropout
from a2f_jax.ops import random as fr


@pytest.mark.parametrize("seed,shape", [(0, (3, 5)), (7, (1, 33, 17)), (123, (4, 1000)), (5, (2,))])
def test_bits_uniform_normal_equal_jax(seed, shape):
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 11)
    np.testing.assert_array_equal(np.asarray(fr.random_bits(key, shape)), np.asarray(jax.random.bits(key, shape)))
    np.testing.assert_array_equal(np.asarray(fr.uniform(key, shape)), np.asarray(jax.random.uniform(key, shape)))
    np.testing.assert_array_equal(np.asarray(fr.uniform(key, shape, -2.0, 3.0)),
                                  np.asarray(jax.random.uniform(key, shape, minval=-2.0, maxval=3.0)))
    got = jax.jit(fr.normal, static_argnums=1)(key, shape)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(jax.random.normal(key, shape)))
    np.testing.assert_array_equal(np.asarray(got), np.asarray(fr.normal_reference(key, shape)))
    np.testing.assert_array_equal(np.asarray(fr.uniform(key, shape)), np.asarray(fr.uniform_reference(key, shape)))


@pytest.mark.parametrize("env", [ops.FAST_ENV, ops.PLAIN_ENV])
def test_switched_draws_are_the_same_numbers(env, monkeypatch):
    monkeypatch.delenv(ops.FAST_ENV, raising=False)
    monkeypatch.delenv(ops.PLAIN_ENV, raising=False)
    monkeypatch.setenv(env, "1")
    key = jax.random.PRNGKey(17)
    np.testing.assert_array_equal(np.asarray(fr.noise_normal(key, (3, 40))), np.asarray(jax.random.normal(key, (3, 40))))
    np.testing.assert_array_equal(np.asarray(fr.dropout_uniform(key, (3, 40))),
                                  np.asarray(jax.random.uniform(key, (3, 40))))


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
            x = Dropout(rate)(x, deterministic=not train) if self.fast else nn.Dropout(rate)(x, deterministic=not train)
            x = nn.Dense(8)(x)
        return x


@pytest.mark.parametrize("env", [ops.FAST_ENV, ops.PLAIN_ENV])
def test_dropout_is_bit_identical_to_flax(env, monkeypatch):
    monkeypatch.delenv(ops.FAST_ENV, raising=False)
    monkeypatch.delenv(ops.PLAIN_ENV, raising=False)
    monkeypatch.setenv(env, "1")
    x = jnp.ones((4, 6, 8))
    params = _Net(False).init(jax.random.PRNGKey(0), x, False)
    rngs = {"dropout": jax.random.PRNGKey(9)}
    a = _Net(True).apply(params, x, True, rngs=rngs)
    b = _Net(False).apply(params, x, True, rngs=rngs)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(_Net(True).apply(params, x, False)), np.asarray(_Net(False).apply(params, x, False)))
