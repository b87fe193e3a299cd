"""The one training entry: data → network → optimizer → mesh → restore → loop → final save, for the network
NETWORK_TYPE picks (`a2f_jax.networks.get`; the interface is described in `docs/networks.md`).

A training run's folder and states are described in `a2f_jax.train.lifecycle`; the loop itself (logging,
validation, checkpoints, NaN guard, stop flag) is `a2f_jax.train.loop.run_loop`.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

import jax

from a2f_jax import networks
from a2f_jax.ops import switch
from a2f_jax.train import lifecycle, sharding
from a2f_jax.train.loop import LoopSettings

log = logging.getLogger(__name__)


def train(configs: Any, resume: str | None = None, max_steps: int | None = None, devices: list | None = None,
          show_progress: bool = True) -> pathlib.Path:
    """Train the network chosen by NETWORK_TYPE; returns the run directory (see `lifecycle` for its states).

    Raises ConfigError/RunError before any run folder is made for a bad network type, budget, batch size or
    --resume folder, and TrainingStopped (exit code 3) after SIGTERM/Ctrl-C."""
    network = networks.get(configs.network_type)
    sharding.maybe_initialize_distributed()
    tcfg = configs.train
    lifecycle.check_step_budget(tcfg, max_steps)
    resume_dir = lifecycle.check_resume(resume)
    mesh = sharding.make_mesh(devices)
    batch_size = sharding.check_batch_size(tcfg.BATCH_SIZE, mesh)

    # Data (and the network definition built from its sizes).
    setup = network.build(configs)
    sampler = network.make_sampler(setup, batch_size, int(tcfg.RNG_SEED_DATASET))
    steps_per_epoch = sampler.batches_per_epoch
    total = lifecycle.total_steps(tcfg, steps_per_epoch, max_steps)
    log.info("%s: %d steps (%d per epoch), batch %d", network.NAME, total, steps_per_epoch, batch_size)
    if lifecycle.already_complete(resume_dir, total):
        return resume_dir
    run_dir = lifecycle.open_run(configs, setup.data.artifacts, resume_dir,
                                 lambda d: network.write_run_metadata(setup, d), total)
    with lifecycle.recording_failure(run_dir):
        log.info("%s; compute dtype %s", switch.describe_decision(), tcfg.COMPUTE_DTYPE)
        # Network parameters and optimizer.
        params = network.init(setup, jax.random.PRNGKey(int(tcfg.RNG_SEED_TORCH)))
        opt = network.make_optimizer(setup, params, steps_per_epoch)
        state = network.init_state(setup, params, opt.tx)
        # Restore the newest checkpoint when resuming, then place the state on the mesh.
        ckpt, state, start = lifecycle.restore(run_dir, tcfg, state, resume_dir is not None)
        session = lifecycle.begin_session(run_dir, configs, max_steps, start, total, resume_dir is not None)
        state = sharding.replicate(state, mesh)
        train_step = jax.jit(network.make_train_step(setup, opt.tx, steps_per_epoch), donate_argnums=(0,))
        validate = None
        if setup.val_clips:
            def validate(st: Any, _step: int) -> dict[str, float]:
                return network.validation_metrics(setup, jax.device_get(st["params"]))

        settings = LoopSettings(total, steps_per_epoch, int(tcfg.LOG_PERIOD), int(tcfg.CHECKPOINT_PERIOD),
                                int(tcfg.VALIDATION_PERIOD) if validate else 0, show_progress)
        # The loop; the final save (params, exports) when it was not interrupted.
        with network.feed(setup, sampler, mesh, start, total) as feed:
            lifecycle.run_and_close(
                session, ckpt, state, train_step, feed.batch, settings,
                export=lambda st: network.save_results(setup, jax.device_get(st["params"]), run_dir),
                validate=validate,
                extra_scalars=lambda step: {"learning_rate": opt.learning_rate(step), **feed.stats()})
    return run_dir
