"""Data parallelism with `jax.sharding`: a 1-D mesh over every device, batch sharded, params replicated.

Multi-host: `maybe_initialize_distributed()` calls `jax.distributed.initialize()` when the usual
environment variables are present (JAX_COORDINATOR_ADDRESS + JAX_NUM_PROCESSES + JAX_PROCESS_ID, or a
cluster JAX auto-detects such as SLURM); every process then builds the same global batch index, keeps
the rows of its own devices, and `shard_batch` assembles the global array.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from a2f_jax.errors import ConfigError, describe

log = logging.getLogger(__name__)

DATA_AXIS = "data"


def maybe_initialize_distributed() -> bool:
    """Initialise multi-host JAX if the environment asks for it; returns True when it did."""
    explicit = all(k in os.environ for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"))
    cluster = "SLURM_JOB_ID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1
    if not (explicit or cluster):
        return False
    if explicit:
        jax.distributed.initialize(
            coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )
    else:
        jax.distributed.initialize()
    log.info("multi-host: process %d of %d, %d local / %d global devices", jax.process_index(),
             jax.process_count(), jax.local_device_count(), jax.device_count())
    return True


def make_mesh(devices: list | None = None) -> Mesh:
    devices = list(devices) if devices is not None else jax.devices()
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: object, mesh: Any) -> int:
    """BATCH_SIZE as an int, or a ConfigError unless it is a positive multiple of the mesh's device count."""
    n = int(mesh.devices.size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ConfigError(describe("config_train", "BATCH_SIZE", f"a positive whole number, a multiple of the {n} "
                                   f"device(s) used for data parallelism", repr(batch_size)))
    if batch_size % n:
        lower, upper = (batch_size // n) * n, -(-batch_size // n) * n
        options = " or ".join(str(v) for v in (lower, upper) if v > 0)
        raise ConfigError(describe("config_train", "BATCH_SIZE", f"a multiple of the number of devices ({n}) for data "
                                   f"parallelism", f"{batch_size} (use {options}, or make fewer devices visible, "
                                   f"e.g. CUDA_VISIBLE_DEVICES)"))
    return int(batch_size)


def replicate(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, replicated(mesh))


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Place a host batch (the *global* batch, identical on every process) with its leading axis sharded."""
    sharding = batch_sharding(mesh)
    if jax.process_count() == 1:
        return jax.device_put(batch, sharding)
    n, p = jax.process_count(), jax.process_index()

    def local(a: np.ndarray) -> jax.Array:
        rows = a.shape[0] // n
        return jax.make_array_from_process_local_data(sharding, a[p * rows:(p + 1) * rows], a.shape)

    return {k: local(np.asarray(v)) for k, v in batch.items()}
