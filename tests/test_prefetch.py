"""Prefetched batches: the same batch for each step (resume too), two deep, errors reach the loop, no thread left
behind, the loop's early stops; the 8-device trainer feed equals the unprefetched batches (process rows too)."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import threading
import time

import jax
import numpy as np
import pytest

from a2f_jax.errors import DataError
from a2f_jax.train import prefetch
from a2f_jax.train.loop import LoopSettings, run_loop
from a2f_jax.train.prefetch import Prefetcher
from a2f_jax.train.sampler_diffusion import DiffusionSampler, DiffusionSamplerSettings
from test_sampler_diffusion import AUG, _cfg, _data_with_muted

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


def _wait_until(cond, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


@pytest.fixture()
def sampler(tmp_path):
    return DiffusionSampler(_data_with_muted(tmp_path), DiffusionSamplerSettings.from_train_config(_cfg(**AUG)), 2, 3)


@pytest.mark.parametrize("start", [0, 5])  # 5: a resumed run's first step
def test_prefetched_batches_equal_unprefetched(sampler, start):
    before = _threads()
    with Prefetcher(sampler.batch, jax.device_put, start=start, stop=start + 6) as pf:
        for step in range(start, start + 6):
            got, ref = pf(step), sampler.batch(step)
            assert isinstance(got["y"], jax.Array)
            for k in ref:
                np.testing.assert_array_equal(np.asarray(got[k]), ref[k], err_msg=f"step {step} {k}")
        # Out of order (not the loop's way, but allowed): the worker restarts at the step asked for.
        for step in (2, 3):
            np.testing.assert_array_equal(np.asarray(pf(step)["audio"]), sampler.batch(step)["audio"])
        # Past `stop`: built in the caller.
        np.testing.assert_array_equal(np.asarray(pf(start + 6)["y"]), sampler.batch(start + 6)["y"])
    assert _threads() == before


def test_two_deep_and_statistics():
    built: list[int] = []

    def build(step: int) -> dict:
        built.append(step)
        return {"x": np.full(3, step)}

    with Prefetcher(build, start=10, stop=100) as pf:
        _wait_until(lambda: len(built) == 2)  # steps 10, 11 ready before the loop asks
        time.sleep(0.3)
        assert built == [10, 11]
        assert int(pf(10)["x"][0]) == 10  # the device runs step 10: the worker builds 12
        _wait_until(lambda: len(built) == 3)
        time.sleep(0.3)
        assert built == [10, 11, 12]
        stats = pf.take_stats()
        assert set(stats) == {"input/host_batch_ms", "input/wait_ms"} and min(stats.values()) >= 0
        # A window per log line: with no step and no batch since, no wait and the host mean of all batches.
        assert pf.take_stats() == {"input/host_batch_ms": pytest.approx(1e3 * pf.totals["build_s"] / 3), "input/wait_ms": 0.0}


@pytest.mark.parametrize("where", ["build", "place"])
def test_worker_exception_reaches_the_caller(where):
    before = _threads()

    def build(step: int) -> dict:
        if where == "build" and step == 3:
            raise DataError(f"bad clip at step {step}")
        return {"x": np.full(2, step)}

    def place(batch: dict) -> dict:
        if where == "place" and int(batch["x"][0]) == 3:
            raise DataError("placement failed")
        return batch

    pf = Prefetcher(build, place, start=0, stop=10)
    for step in range(3):
        assert int(pf(step)["x"][0]) == step
    with pytest.raises(DataError, match="bad clip at step 3|placement failed") as info:
        pf(3)
    assert any(f.name == where for f in info.traceback)  # the worker's traceback comes with it
    assert _threads() == before  # a failed worker is joined
    pf.close()


def test_worker_stops_after_close_break_and_interruption():
    before = _threads()

    def slow(step: int) -> dict:
        time.sleep(0.05)
        return {"x": np.full(2, step)}

    pf = Prefetcher(slow, start=0, stop=1000)
    for step in range(2):
        pf(step)
    pf.close()
    pf.close()  # idempotent
    assert _threads() == before
    with pytest.raises(RuntimeError, match="closed"):
        pf(2)
    closed = []
    with Prefetcher(slow, start=0, stop=1000, on_close=lambda: closed.append(True)) as pf:
        for step in range(1000):
            pf(step)
            if step == 3:
                break  # an early break mid-build
    assert _threads() == before and closed == [True]
    with pytest.raises(KeyboardInterrupt):
        with Prefetcher(slow, start=0, stop=1000) as pf:
            pf(0)
            raise KeyboardInterrupt  # a second Ctrl-C in the loop
    assert _threads() == before


def test_run_loop_with_prefetch_stop_file_and_resume(tmp_path):
    """The loop asks for steps in order from the resume step; a STOP file ends it early: the batches seen are
    exactly those steps, and closing the feed leaves no thread."""
    before = _threads()
    seen: list[int] = []
    stop = tmp_path / "STOP"

    def step_fn(state, batch):
        seen.append(int(batch["x"][0]))
        if len(seen) == 3:
            stop.touch()
        return state + 1, {"loss": np.float32(0.0)}

    with Prefetcher(lambda s: {"x": np.full(1, s)}, start=4, stop=20) as pf:
        res = run_loop(0, 4, step_fn, pf, LoopSettings(20, 5, 0, 0, 0, False, stop_file=stop))
    assert res.stopped and res.last_step == 7 and seen == [4, 5, 6]
    assert _threads() == before


def test_run_loop_with_prefetch_sigterm():
    """SIGTERM mid-run: the loop ends after the current step (interrupted) and the closed feed leaves no thread."""
    import signal

    before = _threads()
    seen: list[int] = []

    def step_fn(state, batch):
        seen.append(int(batch["x"][0]))
        if len(seen) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return state + 1, {"loss": np.float32(0.0)}

    with Prefetcher(lambda s: {"x": np.full(1, s)}, start=0, stop=50) as pf:
        res = run_loop(0, 0, step_fn, pf, LoopSettings(50, 10, 0, 0, 0, False))
    assert res.interrupted and res.reason == "SIGTERM" and seen == [0, 1]
    assert _threads() == before


def test_sharded_feed_single_device_and_pool(sampler):
    before = _threads()
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("data",))
    with prefetch.sharded_feed(sampler.batch, mesh, 2, start=1, stop=4, threads=2) as feed:
        for step in range(1, 4):
            got, ref = feed(step), sampler.batch(step)
            for k in ref:
                np.testing.assert_array_equal(np.asarray(got[k]), ref[k])
        assert any(name.startswith("batch-rows") for name in _threads())  # the rows were built on the pool
    assert _threads() == before  # the row pool is shut down too


EIGHT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from a2f_jax import config
    from a2f_jax.networks import diffusion as T
    from a2f_jax.train import sharding, prefetch
    cf = config.load(sys.argv[1], json.loads(sys.argv[2]) + ["train.BATCH_SIZE=8"])
    setup = T.build(cf)
    sampler = T.make_sampler(setup, 8, 43)
    mesh = sharding.make_mesh()
    # Two simulated processes of four devices each: their rows, built apart, make the single-process batch.
    owner = lambda d: d.id // 4
    rows = [sharding.process_rows(mesh, 8, p, owner) for p in (0, 1)]
    try:  # devices of a process interleaved with another's: no block of rows
        sharding.process_rows(mesh, 8, 0, lambda d: d.id % 2)
        interleaved = "accepted"
    except ValueError as e:
        interleaved = str(e)
    rows_equal = all(all(np.array_equal(np.concatenate([sampler.batch(k, r)[name] for r in rows]), whole[name])
                         for name in whole) for k in (3, 4) for whole in [sampler.batch(k)])
    # The multi-host assembly (make_array_from_process_local_data) of one process's rows: here every row.
    whole = sampler.batch(3)
    assembled = sharding.place_local_batch(whole, mesh, 8, multi_process=True)
    assembled_equal = all(np.array_equal(np.asarray(assembled[k]), whole[k]) and
                          assembled[k].sharding.is_equivalent_to(sharding.batch_sharding(mesh), whole[k].ndim) for k in whole)
    params = T.init(setup, jax.random.PRNGKey(42))
    opt = T.make_optimizer(setup, params, sampler.batches_per_epoch).tx
    step = jax.jit(T.make_train_step(setup, opt, seed=42))
    consts = sharding.replicate(setup.consts, mesh)
    out = {}
    for mode in ("plain", "prefetch"):
        state = sharding.replicate({"step": jnp.full((), 3, jnp.int32), "params": params, "opt_state": opt.init(params)}, mesh)
        feed = prefetch.sharded_feed(sampler.batch, mesh, 8, start=3, stop=5, threads=2) if mode == "prefetch" else None
        for k in (3, 4):  # from a resume step
            batch = feed(k) if feed else sharding.shard_batch(sampler.batch(k), mesh)
            sharded = batch["y"].sharding.is_equivalent_to(sharding.batch_sharding(mesh), batch["y"].ndim)
            state, m = step(state, {**batch, "constants": consts})
        if feed:
            feed.close()
        out[mode] = (jax.device_get(state["params"]), float(m["loss"]), sharded)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(*(jax.tree_util.tree_leaves(out[k][0]) for k in out)))
    print(json.dumps({"devices": jax.device_count(), "rows": [[r.start, r.stop] for r in rows], "rows_equal": rows_equal,
                      "assembled_equal": assembled_equal, "interleaved": interleaved,
                      "diff": diff, "loss": [out[k][1] for k in out], "sharded": [out[k][2] for k in out]}))
""")


@pytest.fixture(scope="module")
def synth_env(tmp_path_factory):
    from synth_workspace import synthetic_workspace
    from test_trainer_diffusion import CONFIG

    with synthetic_workspace(tmp_path_factory.mktemp("synth"), CONFIG) as env:
        yield env


def test_eight_devices_prefetched_step_equals_plain(synth_env):
    from test_trainer_diffusion import CONFIG, SMALL

    env = dict(os.environ, **synth_env, JAX_PLATFORMS="cpu",
               XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8")
    proc = subprocess.run([sys.executable, "-c", EIGHT, str(CONFIG), json.dumps(SMALL[1:])],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["devices"] == 8 and res["rows"] == [[0, 4], [4, 8]] and res["rows_equal"] and res["assembled_equal"]
    assert "not one block" in res["interleaved"]
    assert res["sharded"] == [True, True]
    assert res["diff"] == 0.0 and res["loss"][0] == res["loss"][1], res


def test_trainer_logs_the_input_pipeline(synth_env):
    """Every log line carries the host ms per batch and the loop's wait; the run ends with a summary line."""
    from a2f_jax.train.entry import train
    from test_trainer_diffusion import _configs

    before = _threads()
    run = train(_configs("train.RUN_NAME='pipeline'", "train.LOG_PERIOD=1"), max_steps=3, show_progress=False)
    history = [h for h in json.loads((run / "history.json").read_text()) if "loss" in h]
    assert [h["step"] for h in history] == [0, 1, 2]
    assert all(h["input/host_batch_ms"] > 0 and h["input/wait_ms"] >= 0 for h in history[1:])
    text = (run / "log.log").read_text()
    assert "input/wait_ms=" in text and "input pipeline: 3 batches built" in text
    assert not {n for n in _threads() - before if n.startswith(("batch-", "batch_"))}  # the feed is closed


def test_quick_benchmark_reports_host_and_wait():
    from a2f_jax.benchmarks import input_pipeline

    res = input_pipeline.diffusion_host_batch(quick=True)
    for b in ("b1", "b4"):
        r = res[b]
        assert r["host_ms_mean"] > 0 and r["items"] > 0 and r["batch"] == int(b[1:])
        assert min(r["loop_wait_ms_per_step_prefetch"], r["loop_wait_ms_per_step_plain"]) >= 0  # figures, not a race
