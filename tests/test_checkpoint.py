"""Orbax checkpoints: zero-size arrays (single-emotion datasets, no tongue), torn checkpoints, changed networks."""

import logging
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from a2f_jax.errors import CheckpointError
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


def _saved(tmp_path, steps=(5, 10)):
    ckpt = Checkpointer(tmp_path / "ckpt")
    for step in steps:
        state = _state()
        state["step"] = jnp.asarray(step, jnp.int32)
        ckpt.save(step, state)
    ckpt.close()
    return tmp_path / "ckpt"


def _tear(step_dir, how):
    manifest = step_dir / "default" / "manifest.ocdbt"
    if how == "deleted":
        manifest.unlink()
    else:
        manifest.write_bytes(manifest.read_bytes()[:10])


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_torn_newest_checkpoint_falls_back_with_a_warning(tmp_path, caplog, how):
    directory = _saved(tmp_path)
    _tear(directory / "10", how)
    ckpt = Checkpointer(directory)
    with caplog.at_level(logging.WARNING, logger="a2f_jax.train.checkpoint"):
        restored = ckpt.restore(_state())
    assert int(restored["step"]) == 5
    assert re.search(r"checkpoint step 10 is torn .*resuming from step 5 instead", caplog.text)
    # set aside, so the resumed run can write step 10 again
    assert ckpt.steps() == [5] and (directory / "10.torn").is_dir()
    ckpt.save(10, _state())
    assert ckpt.steps() == [5, 10]
    ckpt.close()


def test_no_intact_checkpoint_is_a_checkpoint_error(tmp_path):
    directory = _saved(tmp_path)
    for step in ("5", "10"):
        _tear(directory / step, "deleted")
    ckpt = Checkpointer(directory)
    with pytest.raises(CheckpointError, match=r"expected an intact checkpoint to resume from, found only torn ones \(step 10: .*step 5: "):
        ckpt.restore(_state())
    ckpt.close()
    with pytest.raises(CheckpointError, match="found none"):
        Checkpointer(tmp_path / "empty").restore(_state())


def test_changed_network_names_the_parameter_and_both_shapes(tmp_path):
    directory = _saved(tmp_path)
    wider = _state()
    wider["params"]["linear_explicit_emo"]["bias"] = jnp.zeros(16)
    wider["opt_state"] = optax.adam(1e-3).init(wider["params"])
    ckpt = Checkpointer(directory)
    with pytest.raises(CheckpointError, match=r"10: expected params/linear_explicit_emo/bias of shape \(16,\) .*found shape \(8,\)"):
        ckpt.restore(wider)
    renamed = _state()
    renamed["params"]["extra"] = jnp.ones(2)
    with pytest.raises(CheckpointError, match=r"expected params/extra of shape \(2,\) .*found no such entry"):
        ckpt.restore(renamed)
    fewer = _state()
    del fewer["params"]["linear_explicit_emo"]["bias"]
    fewer["opt_state"] = optax.adam(1e-3).init(fewer["params"])
    with pytest.raises(CheckpointError, match=r"found .*bias \(and \d+ more\) in the checkpoint"):
        ckpt.restore(fewer)
    assert ckpt.steps() == [5, 10]  # a mismatch is not a torn checkpoint: nothing set aside
    ckpt.close()
