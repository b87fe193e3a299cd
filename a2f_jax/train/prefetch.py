"""Batches built ahead on a background thread and placed on the devices while the accelerator runs a step.

`Prefetcher` is a `make_batch(step)` for `loop.run_loop`: the loop asks for steps in order from the resume
step on, and while it runs step k a worker thread builds the host batches of steps k+1 .. k+depth and puts
them on the devices (already sharded, by the `place` function). Each batch is still `build(step)` of its
own global step, so prefetching changes no batch and a resumed run replays the same ones. A step asked
for out of order restarts the worker there. An exception in the worker is raised by the call that asks
for that step (same exception, the worker's traceback); `close()` (or leaving the `with` block) stops the
worker and joins it. It also times the pipeline: host time per batch and how long the loop waited.

`sharded_feed` is the trainers' feed: this process's rows of each global batch (`sharding.process_rows`),
built on a small thread pool, assembled into the sharded global batch (`sharding.place_local_batch`).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Callable

from a2f_jax.train import sharding

log = logging.getLogger(__name__)

DEPTH = 2  # batches ready (or being built) ahead of the step the device runs
_POLL_S = 0.1  # how often blocked waits look at the stop flag / the worker's liveness
JOIN_TIMEOUT_S = 120.0  # close() waits this long for a batch being built (one batch, however large)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Prefetcher:
    """`prefetcher(step)` -> `place(build(step))`, built `depth` steps ahead on one worker thread.

    `start`: the first step to build eagerly (None: the first step asked for). `stop`: one past the last step
    the worker builds (the run's total); steps outside [first, stop) are built in the calling thread.
    `on_close`: called once by `close()` after the worker has stopped (e.g. to shut down a thread pool)."""

    def __init__(self, build: Callable[[int], Any], place: Callable[[Any], Any] | None = None, *,
                 start: int | None = None, stop: int | None = None, depth: int = DEPTH, name: str = "batch-prefetch",
                 on_close: Callable[[], None] | None = None) -> None:
        if depth < 1:
            raise ValueError(f"prefetch depth must be at least 1, got {depth}")
        self.build, self.place = build, place or (lambda batch: batch)
        self.stop, self.depth, self.name, self._on_close = stop, int(depth), name, on_close
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._queue: queue.Queue = queue.Queue()
        self._slots = threading.Semaphore(self.depth)
        self._next: int | None = None
        self._closed = False
        self._lock = threading.Lock()  # the statistics, written by the worker and read by the loop
        self._window = {"batches": 0, "build_s": 0.0, "steps": 0, "wait_s": 0.0}
        self.totals = dict(self._window)
        if start is not None:
            self._start(int(start))

    # -- the worker -------------------------------------------------------------------------------------
    def _start(self, first: int) -> None:
        self._halt = threading.Event()
        self._queue = queue.Queue()
        self._slots = threading.Semaphore(self.depth)
        self._next = first
        self._thread = threading.Thread(target=self._work, args=(first, self._halt, self._queue, self._slots),
                                        name=self.name, daemon=True)  # daemon: a hung build cannot block exit
        self._thread.start()

    def _work(self, step: int, halt: threading.Event, out: queue.Queue, slots: threading.Semaphore) -> None:
        while not halt.is_set() and (self.stop is None or step < self.stop):
            if not slots.acquire(timeout=_POLL_S):  # `depth` batches are waiting for the loop
                continue
            if halt.is_set():
                break
            try:
                t0 = time.perf_counter()
                batch = self.place(self.build(step))
                self._record(batches=1, build_s=time.perf_counter() - t0)
            except BaseException as exc:  # noqa: BLE001 - handed to the loop, which raises it
                out.put((step, _Failure(exc)))
                return
            out.put((step, batch))
            del batch  # the loop owns it now: a consumed batch must not stay alive here
            step += 1

    def _stop_worker(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._halt.set()
        self._slots.release()  # wake a worker waiting for a slot
        thread.join(JOIN_TIMEOUT_S)
        if thread.is_alive():
            log.warning("%s: the worker is still building a batch after %.0f s; left behind (daemon thread)",
                        self.name, JOIN_TIMEOUT_S)
        self._queue = queue.Queue()  # drop the batches built ahead
        self._next = None

    # -- the loop's side --------------------------------------------------------------------------------
    def __call__(self, step: int) -> Any:
        if self._closed:
            raise RuntimeError(f"{self.name}: closed")
        step = int(step)
        t0 = time.perf_counter()
        if self.stop is not None and step >= self.stop:
            batch = self.place(self.build(step))  # past the worker's range: built here
            self._record(batches=1, build_s=time.perf_counter() - t0, steps=1, wait_s=time.perf_counter() - t0)
            return batch
        if self._thread is None or step != self._next:
            self._stop_worker()
            self._start(step)
        got, item = self._take()
        self._record(steps=1, wait_s=time.perf_counter() - t0)
        if isinstance(item, _Failure):
            self._stop_worker()
            raise item.exc
        if got != step:  # cannot happen: the worker builds consecutive steps from the one asked for
            raise RuntimeError(f"{self.name}: asked for step {step}, the worker delivered step {got}")
        self._slots.release()
        self._next = step + 1
        return item

    def _take(self) -> tuple[int, Any]:
        thread, q = self._thread, self._queue
        while True:
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                # The worker puts a batch or its failure before it ends; ended with nothing queued is a bug.
                if thread is not None and not thread.is_alive() and q.empty():
                    raise RuntimeError(f"{self.name}: the worker ended without delivering step {self._next}") from None

    def _record(self, **add: float) -> None:
        with self._lock:
            for k, v in add.items():
                self._window[k] += v
                self.totals[k] += v

    def take_stats(self) -> dict[str, float]:
        """Means since the previous call: host ms per batch (build + placement, on the worker; the mean of all
        batches so far when none was finished since) and ms per step the loop waited for its batch (near 0 when
        the input pipeline keeps up with the device)."""
        with self._lock:
            w, self._window = self._window, {k: 0 for k in self._window}
            built = w if w["batches"] else self.totals
        return {"input/host_batch_ms": 1e3 * built["build_s"] / max(built["batches"], 1),
                "input/wait_ms": 1e3 * w["wait_s"] / max(w["steps"], 1)}

    def close(self) -> None:
        """Stop and join the worker (a batch being built is finished first); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop_worker()
        if self._on_close is not None:
            self._on_close()
        t = self.totals
        if t["steps"]:
            log.info("input pipeline: %d batches built, %.1f ms host time per batch; the loop waited %.1f s in all "
                     "(%.1f ms per step)", t["batches"], 1e3 * t["build_s"] / max(t["batches"], 1), t["wait_s"],
                     1e3 * t["wait_s"] / t["steps"])

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def default_threads(rows: int) -> int:
    """Threads to build a process's `rows` rows with: half the CPUs it may use (the rest feed the devices), <= 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(int(rows), cpus // 2, 8))


def sharded_feed(build: Callable[[int, slice, Executor | None], dict], mesh: Any, global_rows: int, start: int,
                 stop: int, threads: int | None = None, depth: int = DEPTH) -> Prefetcher:
    """`make_batch(step)` for the loop: `build(step, rows, pool)` makes this process's `rows` of the global
    batch of `step` (on `pool`'s threads when given), `depth` steps ahead on a worker thread, and the global
    batch [global_rows, ...] is placed on `mesh` with its leading axis sharded. Close it (or use `with`)."""

    rows = sharding.process_rows(mesh, global_rows)
    threads = default_threads(rows.stop - rows.start) if threads is None else int(threads)
    pool = ThreadPoolExecutor(threads, thread_name_prefix="batch-rows") if threads > 1 else None
    log.info("input pipeline: rows %d..%d of %d per step, built %d step(s) ahead on %d thread(s)", rows.start,
             rows.stop - 1, global_rows, depth, threads)
    return Prefetcher(lambda step: build(step, rows, pool),
                      lambda local: sharding.place_local_batch(local, mesh, global_rows),
                      start=start, stop=stop, depth=depth, on_close=pool.shutdown if pool is not None else None)
