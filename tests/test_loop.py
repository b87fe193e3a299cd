"""The shared loop: resume gives the uninterrupted result, NaN guard, signal handling, logging."""

import math
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from a2f_jax.errors import A2FError
from a2f_jax.train import optim
from a2f_jax.train.checkpoint import Checkpointer
from a2f_jax.train.loop import LoopSettings, NonFiniteLossError, run_loop

W_TRUE = np.array([1.5, -2.0, 0.5], np.float32)


def _problem():
    opt = optax.adam(0.05)
    params = {"w": jnp.zeros(3)}
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": opt.init(params)}

    @jax.jit
    def step(state, batch):
        def loss_fn(p):
            return jnp.mean((batch["x"] @ p["w"] - batch["y"]) ** 2)

        loss, g = jax.value_and_grad(loss_fn)(state["params"])
        upd, opt_state = opt.update(g, state["opt_state"], state["params"])
        return {"step": state["step"] + 1, "params": optax.apply_updates(state["params"], upd), "opt_state": opt_state}, {"loss": loss}

    def make_batch(k):
        rng = np.random.default_rng([7, k])
        x = rng.normal(size=(16, 3)).astype(np.float32)
        return {"x": x, "y": x @ W_TRUE}

    return state, step, make_batch


def test_resume_equals_uninterrupted(tmp_path):
    state, step, make_batch = _problem()
    full = run_loop(state, 0, step, make_batch, LoopSettings(40, 10, log_period=5, show_progress=False))
    assert full.history and full.history[-1]["loss"] < full.history[0]["loss"]

    ckpt = Checkpointer(tmp_path / "ckpt")
    part = run_loop(state, 0, step, make_batch, LoopSettings(20, 10, show_progress=False), checkpointer=ckpt)
    assert ckpt.latest_step() == 20
    fresh, _, _ = _problem()
    restored = ckpt.restore(fresh)
    assert int(restored["step"]) == 20
    rest = run_loop(restored, 20, step, make_batch, LoopSettings(40, 10, show_progress=False), checkpointer=ckpt)
    np.testing.assert_allclose(np.asarray(rest.state["params"]["w"]), np.asarray(full.state["params"]["w"]), atol=1e-6)
    assert part.last_step == 20 and rest.last_step == 40


def test_nan_guard_names_step_and_checkpoint(tmp_path):
    state, step, make_batch = _problem()

    def bad_batch(k):
        b = make_batch(k)
        if k == 7:
            b["y"] = b["y"] * np.nan
        return b

    ckpt = Checkpointer(tmp_path / "ckpt")
    with pytest.raises(NonFiniteLossError, match=r"at step 7 .*last good checkpoint is step 5") as info:
        run_loop(state, 0, step, bad_batch, LoopSettings(20, 10, checkpoint_period=5, show_progress=False), checkpointer=ckpt)
    assert isinstance(info.value, A2FError) and info.value.exit_code == 2  # one error line, not a traceback


def test_sigterm_saves_and_stops(tmp_path):
    state, step, make_batch = _problem()

    def batch_then_signal(k):
        if k == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return make_batch(k)

    ckpt = Checkpointer(tmp_path / "ckpt")
    res = run_loop(state, 0, step, batch_then_signal, LoopSettings(100, 10, show_progress=False), checkpointer=ckpt)
    assert res.interrupted and res.last_step == 4 and res.reason == "SIGTERM" and not res.stopped
    assert ckpt.latest_step() == 4


def test_stop_file_stops_gracefully_and_is_removed(tmp_path):
    state, step, make_batch = _problem()
    stop = tmp_path / "STOP"
    seen = []

    def batch_then_stop(k):
        if k == 5:
            stop.touch()
        return make_batch(k)

    ckpt = Checkpointer(tmp_path / "ckpt")
    settings = LoopSettings(100, 10, checkpoint_period=3, show_progress=False, stop_file=stop)
    res = run_loop(state, 0, step, batch_then_stop, settings, checkpointer=ckpt,
                   on_checkpoint=lambda s, history: seen.append(s))
    assert res.stopped and not res.interrupted and res.reason == "STOP file" and res.last_step == 6
    assert ckpt.steps() == [3, 6] and seen == [3, 6] and not stop.exists()


def test_signal_after_the_last_step_is_a_complete_run(tmp_path):
    state, step, make_batch = _problem()

    def signal_at_last(k):
        if k == 9:
            os.kill(os.getpid(), signal.SIGTERM)
        return make_batch(k)

    res = run_loop(state, 0, step, signal_at_last, LoopSettings(10, 10, show_progress=False))
    assert res.last_step == 10 and not res.interrupted and res.reason is None


def test_validation_hook_and_history():
    state, step, make_batch = _problem()
    calls = []
    res = run_loop(state, 0, step, make_batch, LoopSettings(10, 5, log_period=5, validation_period=4, show_progress=False),
                   validate=lambda s, k: calls.append(k) or {"val/x": float(k)})
    assert calls == [4, 8, 10]
    assert [h["step"] for h in res.history if "val/x" in h] == [4, 8, 10]


def test_regression_schedule_steps_per_epoch():
    sched = optim.regression_schedule(2e-4, 0.994, 697)
    assert math.isclose(float(sched(0)), 2e-4, rel_tol=1e-6)
    assert math.isclose(float(sched(696)), 2e-4, rel_tol=1e-6)
    assert math.isclose(float(sched(697)), 2e-4 * 0.994, rel_tol=1e-6)
    assert math.isclose(float(sched(49 * 697)), 2e-4 * 0.994**49, rel_tol=1e-5)


def test_diffusion_schedule_values_of_the_original():
    lr = lambda e: optim.diffusion_epoch_lr(e, 5e-5, 400)  # noqa: E731
    assert lr(0) == lr(1) == pytest.approx(1e-4)
    assert lr(11) == pytest.approx(4.994e-5, rel=1e-3)  # tau = 10
    assert lr(101) == pytest.approx(4.41e-5, rel=1e-3)
    assert lr(201) == pytest.approx(3.0e-5, rel=1e-2)
    assert lr(400) == pytest.approx(1.0e-5, rel=1e-2)
    sched = optim.diffusion_schedule(5e-5, 400, updates_per_epoch=17)
    assert float(sched(17 * 11)) == pytest.approx(4.994e-5, rel=1e-3)


@pytest.mark.parametrize("reduction,factor", [("sum", 4.0), ("mean", 1.0)])
def test_accumulation_sum_or_mean(reduction, factor):
    opt = optim.accumulate(optax.sgd(1.0), 4, reduction)
    p = jnp.zeros(2)
    s = opt.init(p)
    for k in range(4):
        u, s = opt.update(jnp.ones(2) * (k + 1), s, p)
        if k < 3:
            np.testing.assert_array_equal(np.asarray(u), 0.0)
    # Mean gradient is 2.5; the original sums (10).
    np.testing.assert_allclose(np.asarray(u), -2.5 * factor)


def test_accumulation_apply_matches_update_and_skips_between_emits():
    opt = optim.accumulate(optax.adam(0.1), 3, "sum")
    p_u = p_a = {"w": jnp.arange(3.0)}
    s_u = s_a = opt.init(p_u)
    apply = jax.jit(lambda g, s, p: optim.apply_gradients(opt, g, s, p))
    for k in range(6):
        g = {"w": jnp.asarray([1.0, -2.0, 0.5]) * (k + 1)}
        u, s_u = opt.update(g, s_u, p_u)
        p_u = optax.apply_updates(p_u, u)
        before = np.asarray(p_a["w"])
        p_a, s_a = apply(g, s_a, p_a)
        np.testing.assert_allclose(np.asarray(p_a["w"]), np.asarray(p_u["w"]), rtol=1e-6)
        changed = not np.array_equal(np.asarray(p_a["w"]), before)
        assert changed == (k % 3 == 2)  # the inner Adam runs on every third micro-step only
    assert int(s_a.inner[0].count) == 2  # two Adam updates in six micro-steps


def test_frozen_label_gets_no_update_and_no_state():
    params = {"emo_db": jnp.ones(3), "net": {"w2v": {"k": jnp.ones(2)}, "head": jnp.ones(2)}}
    labels = {"emo_db": "emo", "net": {"w2v": {"k": "frozen"}, "head": "net"}}
    opt = optim.regression_optimizer(0.1, 2.0, 0.5, 10, labels)
    s = opt.init(params)
    g = jax.tree_util.tree_map(jnp.ones_like, params)
    u, _ = opt.update(g, s, params)
    np.testing.assert_array_equal(np.asarray(u["net"]["w2v"]["k"]), 0.0)
    assert np.all(np.asarray(u["net"]["head"]) < 0)
    np.testing.assert_allclose(np.asarray(u["emo_db"]), 2 * np.asarray(u["net"]["head"][0]), rtol=1e-5)
    leaves = [x.size for x in jax.tree_util.tree_leaves(s)]
    assert sum(leaves) == 2 * (3 + 2) + 4  # Adam moments of net + emo only (plus 4 scalar step counters)
