"""Both networks through the one interface of `a2f_jax.networks` (docs/networks.md): the registry, build, init,
one train step each, and the rebuild from a model_def."""

import math
import pathlib

import jax
import numpy as np
import pytest

from a2f_jax import config, networks
from a2f_jax.errors import ConfigError
from a2f_jax.models.diffusion_rnn import param_shapes
from a2f_jax.train import sharding
from synth_workspace import synthetic_workspace

ROOT = pathlib.Path(__file__).resolve().parents[1]
INTERFACE = ("NAME", "build", "from_model_def", "make_sampler", "feed", "init", "make_optimizer", "init_state",
             "make_train_step", "validation_metrics", "write_run_metadata", "save_results", "export_onnx")
OVERRIDES = {
    "regression": ["train.BATCH_SIZE=2"],
    # one compiled program: batch 2, subsegments of 30..60 frames, one 60-frame bucket
    "diffusion": ["train.BATCH_SIZE=2", "train.SUBSEGMENT_MIN_FRAME=30", "train.SUBSEGMENT_MAX_FRAME=60",
                  "train.LENGTH_BUCKETS=[60]"],
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The minimal synthetic dataset, preprocessed once for both networks."""
    with synthetic_workspace(tmp_path_factory.mktemp("nets"), ROOT / "configs" / "synthetic-regression-min", minimal=True):
        yield


def _configs(kind: str):
    return config.load(ROOT / "configs" / f"synthetic-{kind}-min", OVERRIDES[kind])


def test_registry_picks_by_network_type_and_names_the_known_ones():
    assert networks.get("regression") is networks.regression and networks.get("diffusion") is networks.diffusion
    assert sorted(networks.NETWORKS) == ["diffusion", "regression"]
    for bad in ("gan", None, ""):
        with pytest.raises(ConfigError, match=r"NETWORK_TYPE.*expected one of \['diffusion', 'regression'\]"):
            networks.get(bad)


@pytest.mark.parametrize("kind", ["regression", "diffusion"])
def test_every_network_has_the_whole_interface(kind):
    module = networks.get(kind)
    missing = [name for name in INTERFACE if not hasattr(module, name)]
    assert not missing and module.NAME == kind


@pytest.mark.parametrize("kind", ["regression", "diffusion"])
def test_one_train_step_through_the_interface(workspace, kind):
    net = networks.get(kind)
    cf = _configs(kind)
    assert cf.network_type == kind
    setup = net.build(cf)
    sampler = net.make_sampler(setup, 2, int(cf.train.RNG_SEED_DATASET))
    params = net.init(setup, jax.random.PRNGKey(int(cf.train.RNG_SEED_TORCH)))
    opt = net.make_optimizer(setup, params, sampler.batches_per_epoch)
    assert opt.learning_rate(0) > 0
    state = net.init_state(setup, params, opt.tx)
    mesh = sharding.make_mesh()
    state = sharding.replicate(state, mesh)
    step = jax.jit(net.make_train_step(setup, opt.tx, sampler.batches_per_epoch), donate_argnums=(0,))
    with net.feed(setup, sampler, mesh, 0, 1) as feed:
        state, metrics = step(state, feed.batch(0))
        stats = feed.stats()
    assert int(state["step"]) == 1
    assert math.isfinite(float(metrics["loss"])) and all(isinstance(v, float) for v in stats.values())
    assert any(k.startswith("losses/") for k in metrics)

    # The model_def rebuilds a network with the same parameter tree (what inference and export load).
    rebuilt = net.from_model_def(setup.model_def)
    net_params = params["net"] if kind == "regression" else params
    if kind == "regression":
        shapes = jax.eval_shape(rebuilt.init_params, jax.random.PRNGKey(0))
    else:
        shapes = param_shapes(rebuilt.net)
    same = jax.tree_util.tree_map(lambda a, b: tuple(np.shape(a)) == tuple(b.shape), net_params, shapes)
    assert all(jax.tree_util.tree_leaves(same))
