"""Run the discovered benchmarks and write one JSON file with a machine description."""

from __future__ import annotations

import json
import os
import pathlib
import platform
import subprocess
import sys
import time
import traceback

from a2f_jax.benchmarks import discover
from a2f_jax.io_utils import atomic_write_json

# lazy imports: `bench.py --only X` discovers every area module and must not import every area's stack


def machine_description() -> dict:
    import jax
    import numpy as np

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
    }


def run(names: list[str] | None, quick: bool, out: str, isolate: bool = True) -> dict:
    """Run benchmarks (each in its own subprocess by default, so peak memory is per benchmark)."""
    available = discover()
    selected = [n for n in available if not names or any(n == s or n.startswith(s + ".") for s in names)]
    if names and not selected:
        raise SystemExit(f"no benchmark matches {names}; available: {sorted(available)}")
    results: dict = {"machine": machine_description(), "quick": quick, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "results": {}}
    for name in selected:
        print(f"[bench] {name} ...", flush=True)
        t0 = time.perf_counter()
        if isolate:
            proc = subprocess.run(
                [sys.executable, "-m", "a2f_jax.benchmarks._one", name] + (["--quick"] if quick else []),
                capture_output=True, text=True,
            )
            if proc.returncode == 0:
                res = json.loads(proc.stdout.strip().splitlines()[-1])
            else:
                res = {"error": proc.stderr.strip().splitlines()[-5:]}
        else:
            try:
                res = available[name](quick)
            except Exception:  # a failing benchmark is reported, the others still run
                res = {"error": traceback.format_exc().splitlines()[-5:]}
        res["wall_s"] = round(time.perf_counter() - t0, 3)
        results["results"][name] = res
        print(f"[bench] {name}: {json.dumps(res)}", flush=True)
    pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, results, indent=2)
    print(f"[bench] wrote {out}")
    return results
