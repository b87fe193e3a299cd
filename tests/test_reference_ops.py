"""The speed code of `a2f_jax.ops` against its plain references, through whole train steps.

One regression and one diffusion train step (the tiny networks of `tests/test_mixed_precision.py`, each through
its network's own `make_train_step`) run with the CPU-tuned ops (`A2F_FAST_OPS=1`) and with the plain reference
ops (`A2F_PLAIN_OPS=1`). The switch is read while a program is traced, so each variant sets the environment,
drops JAX's caches and traces its step afresh. The optimizer is SGD that also records the gradients in its state,
so one step gives the loss, the gradients and the updated parameters.

Tolerances (float32): loss within 1e-5 relative; each gradient leaf within 1e-4 of that leaf's largest |gradient|
(the same maths in another order: Winograd, folded group norm, row-major backward); updated parameters within
SGD_LR times that. Measured on CPU: equal losses, gradients within 3e-6 (regression) / 1e-6 (diffusion) of each
leaf's largest. Random numbers (noise, dropout masks) are bit-identical in both forms, so none of this is noise.
Per-op parity: `tests/test_ops_dense.py`, `tests/test_ops_random.py`, `tests/test_ops_conv.py`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import test_mixed_precision as tiny
from a2f_jax import ops
from a2f_jax.errors import ConfigError
from a2f_jax.models import freeze

LOSS_RTOL = 1e-5
GRAD_RTOL = 1e-4  # max |plain - fast| relative to the leaf's max |gradient|
SGD_LR = 0.1


def _recording_sgd(lr: float) -> optax.GradientTransformation:
    """SGD whose state after a step is that step's gradients."""
    return optax.GradientTransformation(lambda p: jax.tree_util.tree_map(jnp.zeros_like, p),
                                        lambda g, _s, _p=None: (jax.tree_util.tree_map(lambda x: -lr * x, g), g))


def _regression_step():
    setup = tiny._regression_setup("float32")
    state, dev, idx = tiny._regression_inputs(setup)
    opt = _recording_sgd(SGD_LR)
    state["opt_state"] = opt.init(state["params"])
    return tiny._regression_step(setup, opt), (state, dev, idx)


def _diffusion_step():
    from a2f_jax.networks import diffusion as D

    setup = tiny._diffusion_setup("float32")
    state, batch = tiny._diffusion_inputs(setup)
    batch["constants"] = setup.consts
    opt = _recording_sgd(SGD_LR)
    state["opt_state"] = opt.init(state["params"])
    return D.make_train_step(setup, opt, seed=42), (state, batch)


def _run(network: str, env: str, monkeypatch) -> dict:
    monkeypatch.delenv(ops.FAST_ENV, raising=False)
    monkeypatch.delenv(ops.PLAIN_ENV, raising=False)
    monkeypatch.setenv(env, "1")
    jax.clear_caches()  # nothing traced under the other setting is reused
    fn, args = _regression_step() if network == "regression" else _diffusion_step()
    new_state, metrics = jax.jit(fn)(*args)
    return {"loss": float(metrics["loss"]), "grads": tiny._flat(new_state["opt_state"]),
            "params": tiny._flat(new_state["params"]), "before": tiny._flat(args[0]["params"]),
            "jaxpr": str(jax.make_jaxpr(fn)(*args))}


@pytest.mark.parametrize("network", ["regression", "diffusion"])
def test_train_step_with_plain_ops_equals_cpu_tuned_ops(network, monkeypatch):
    fast = _run(network, ops.FAST_ENV, monkeypatch)
    plain = _run(network, ops.PLAIN_ENV, monkeypatch)
    # the switch reached the traced programs: plain convs in the encoder, no custom VJP / straight-line threefry
    assert plain["jaxpr"].count("conv_general_dilated[") > fast["jaxpr"].count("conv_general_dilated[")
    if network == "diffusion":
        assert "custom_vjp_call" in fast["jaxpr"] and "custom_vjp_call" not in plain["jaxpr"]
        # noise and dropout masks through jax.random (the fast form is plain uint32 arithmetic)
        assert plain["jaxpr"].count("random_bits[") > fast["jaxpr"].count("random_bits[")
    assert np.isfinite(fast["loss"]) and plain["loss"] == pytest.approx(fast["loss"], rel=LOSS_RTOL)
    assert fast["grads"].keys() == plain["grads"].keys() == plain["params"].keys()
    moved = 0
    for k, g in fast["grads"].items():
        scale = float(np.max(np.abs(g))) if g.size else 0.0
        err = float(np.max(np.abs(g - plain["grads"][k]))) if g.size else 0.0
        assert err <= GRAD_RTOL * max(scale, 1e-12), f"{k}: max |plain - fast| gradient {err:.3g} > {GRAD_RTOL} x {scale:.3g}"
        np.testing.assert_allclose(plain["params"][k], fast["params"][k], rtol=1e-6, atol=SGD_LR * GRAD_RTOL * scale,
                                   err_msg=k)
        moved += bool(scale)
    assert moved >= 10  # the step really trained most of the network
    # the one freezing mechanism (`models.freeze`) inside the step: the frozen encoder parts get exact zeros
    frozen = [k for k in fast["grads"] if _frozen(network, k)]
    assert frozen
    for k in frozen:
        assert not np.any(fast["grads"][k]) and not np.any(plain["grads"][k]), k
        np.testing.assert_array_equal(plain["params"][k], plain["before"][k], err_msg=k)


def _frozen(network: str, key: str) -> bool:
    """Whether the original freezes the param at `key` (a `jax.tree_util.keystr`)."""
    from a2f_jax.models import diffusion_rnn as dnet

    path = tuple(part.strip("[]'") for part in key.split("]") if part)
    if network == "regression":
        return path[:2] == ("net", "w2v")  # w2v_freeze: the whole wav2vec2 encoder
    return dnet.frozen_param_predicate()(path)


def test_regression_param_labels():
    from a2f_jax.networks import regression as R

    labels = R.param_labels({"net": {"w2v": {"a": 1}, "time1": {"b": 2}}, "emo_db": 3}, True)
    assert labels == {"net": {"w2v": {"a": freeze.FROZEN}, "time1": {"b": "net"}}, "emo_db": "emo"}
    assert R.param_labels({"net": {"w2v": {"a": 1}}, "emo_db": 3}, False) == {"net": {"w2v": {"a": "net"}}, "emo_db": "emo"}


def test_ops_decision_and_overrides(monkeypatch):
    monkeypatch.delenv(ops.PLAIN_ENV, raising=False)
    monkeypatch.delenv(ops.FAST_ENV, raising=False)
    assert ops.fast_cpu_ops() is (jax.default_backend() == "cpu")
    monkeypatch.setenv(ops.PLAIN_ENV, "1")
    assert ops.fast_cpu_ops() is False and "A2F_PLAIN_OPS=1" in ops.describe_decision()
    monkeypatch.setenv(ops.FAST_ENV, "1")
    with pytest.raises(ConfigError, match="at most one"):
        ops.fast_cpu_ops()
    monkeypatch.setenv(ops.PLAIN_ENV, "0")
    assert ops.fast_cpu_ops() is True
    monkeypatch.setenv(ops.FAST_ENV, "maybe")
    with pytest.raises(ConfigError, match="A2F_FAST_OPS.*expected 1 or 0.*'maybe'"):
        ops.fast_cpu_ops()
