"""Orbax checkpoints of train states that hold zero-size arrays (single-emotion datasets, no tongue)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from a2f_jax.train.checkpoint import Checkpointer


def _state():
    params = {"linear_explicit_emo": {"kernel": jnp.zeros((0, 8)), "bias": jnp.arange(8.0)},
              "head": {"kernel": jnp.ones((3, 0))}}
    opt = optax.adam(1e-3)
    return {"step": jnp.asarray(5, jnp.int32), "params": params, "opt_state": opt.init(params)}


def test_zero_size_leaves_save_and_restore(tmp_path):
    state = _state()
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(5, state)
    like = jax.tree_util.tree_map(jnp.zeros_like, state)
    restored = ckpt.restore(like)
    ckpt.close()
    assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(state)
    for got, want in zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(state)):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_zero_size_leaves_restore_into_abstract_state(tmp_path):
    state = _state()
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(5, state)
    abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    restored = ckpt.restore(abstract)
    ckpt.close()
    assert restored["params"]["linear_explicit_emo"]["kernel"].shape == (0, 8)
    assert int(restored["step"]) == 5
