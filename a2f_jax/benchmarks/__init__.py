"""Benchmarks run by `scripts/bench.py`.

Each module `a2f_jax/benchmarks/<area>.py` defines `BENCHMARKS: dict[str, Callable[[bool], dict]]`;
the callable takes `quick` (smaller shapes, for smoke tests) and returns JSON-able results
(seconds, frames/s, peak memory, ...). Modules are discovered by name, so adding a benchmark
never touches another area's file.
"""

from __future__ import annotations

import importlib
import pkgutil
import resource
import time
from typing import Callable

BenchFn = Callable[[bool], dict]


def discover() -> dict[str, BenchFn]:
    """All benchmarks of all modules in this package, keyed `<module>.<name>`."""
    found: dict[str, BenchFn] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for name, fn in getattr(module, "BENCHMARKS", {}).items():
            found[f"{info.name}.{name}"] = fn
    return found


def timeit(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> dict:
    """Wall time of `fn()` (which must block until its result is ready): best and mean of `repeats`."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"best_s": min(times), "mean_s": sum(times) / len(times), "repeats": repeats}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
