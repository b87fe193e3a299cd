"""Data parallelism with `jax.sharding`: a 1-D mesh over every device, batch sharded, params replicated.

Multi-host: `maybe_initialize_distributed()` calls `jax.distributed.initialize()` when the usual
environment variables are present (JAX_COORDINATOR_ADDRESS + JAX_NUM_PROCESSES + JAX_PROCESS_ID, or a
cluster JAX auto-detects such as SLURM). Each process builds only the rows of the global batch that live
on its own devices (`process_rows`) and `place_local_batch` assembles the global array from them
(`jax.make_array_from_process_local_data`); `shard_batch` does both from a whole global batch.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

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


def process_rows(mesh: Mesh, global_rows: int, process_index: int | None = None,
                 process_of: Callable[[Any], int] | None = None) -> slice:
    """The rows of a `global_rows`-row batch (sharded on its leading axis) that live on the devices of one
    process (default: this one): a contiguous slice. `process_of(device)` names a device's process
    (default `device.process_index`; tests simulate several processes with it)."""
    p = jax.process_index() if process_index is None else int(process_index)
    owner = process_of or (lambda d: d.process_index)
    index = batch_sharding(mesh).devices_indices_map((int(global_rows),))
    spans = sorted({ix[0].indices(int(global_rows))[:2] for d, ix in index.items() if owner(d) == p})
    if not spans:
        raise ValueError(f"process {p} holds no device of the mesh")
    lo, hi = spans[0]
    for a, b in spans[1:]:
        if a != hi:  # jax.devices() lists each process's devices together, so a default mesh never gets here
            raise ValueError(f"the devices of process {p} hold rows {spans} of the batch, not one block: order the "
                             f"mesh's devices by process")
        hi = b
    return slice(lo, hi)


def place_local_batch(local: dict[str, np.ndarray], mesh: Mesh, global_rows: int,
                      multi_process: bool | None = None) -> dict[str, jax.Array]:
    """The global batch [global_rows, ...] with its leading axis sharded, from this process's rows of it
    (`process_rows`; a single process: every row). `multi_process` (default: more than one process) assembles
    it with `jax.make_array_from_process_local_data`, else `jax.device_put`."""
    sharding = batch_sharding(mesh)
    if not (jax.process_count() > 1 if multi_process is None else multi_process):
        return jax.device_put(local, sharding)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v), (int(global_rows),) + np.shape(v)[1:])
            for k, v in local.items()}


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Place a host batch (the *global* batch, identical on every process) with its leading axis sharded."""
    n = len(next(iter(batch.values())))
    if jax.process_count() == 1:
        return jax.device_put(batch, batch_sharding(mesh))
    rows = process_rows(mesh, n)
    return place_local_batch({k: np.asarray(v)[rows] for k, v in batch.items()}, mesh, n)
