"""Preprocessing at the Claire dataset's size: 54 shots, 21,039 frames, 24,002 skin and 5,602 tongue
vertices (docs/dataset_format.md "The original's example dataset (Claire)"), random-but-structured caches generated into a temp dir.

The preproc itself runs in a child process, so its peak RSS is measured alone (the generator's
memory is not counted). Quick mode: 6 shots of 60 frames, 2,000/500 vertices, 50 selection iterations.
"""

from __future__ import annotations

import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from a2f_jax.preproc.structured_data import write_config_dir, write_structured_actor

_CHILD = """
import json, sys, time
from a2f_jax.config import load
from a2f_jax.preproc import run
t0 = time.perf_counter()
rd = run(load(sys.argv[1]), "bench")
print("RESULT " + json.dumps({"seconds": time.perf_counter() - t0, "run_dir": str(rd)}))
"""


def _lengths(num_shots: int, total: int) -> list[int]:
    base = [total // num_shots] * num_shots
    for i in range(total - sum(base)):
        base[i] += 1
    rng = np.random.default_rng(0)
    # vary lengths (±40%) while keeping the total
    delta = (rng.uniform(-0.4, 0.4, num_shots // 2) * base[0]).astype(int)
    for i, d in enumerate(delta):
        base[2 * i] += d
        base[2 * i + 1] -= d
    return [int(n) for n in base]


def claire_size(quick: bool) -> dict:
    if quick:
        shots, total, v, vt, max_iter = 6, 360, 2000, 500, 50
    else:
        shots, total, v, vt, max_iter = 54, 21039, 24002, 5602, 787
    lengths = _lengths(shots, total)
    names = [f"cp{i + 1}_neutral" for i in range(shots)]
    with tempfile.TemporaryDirectory(prefix="a2f_preproc_bench_") as tmp:
        tmp = pathlib.Path(tmp)
        t0 = time.perf_counter()
        paths = write_structured_actor(tmp / "data", names, lengths, v, vt, rank=40, amplitude=8.0, noise=1e-3)
        gen_s = time.perf_counter() - t0
        cfg = write_config_dir(tmp / "cfg", "bench", paths, tmp / "out", {"SKIN_SELECT_DISTINCT_MAX_ITER": max_iter, "RUN_NAME": "bench"})
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(cfg)], capture_output=True, text=True, env=dict(os.environ))
        child_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        if proc.returncode != 0:
            raise RuntimeError(f"preproc child failed:\n{proc.stderr[-4000:]}")
        result = json.loads([line for line in proc.stdout.splitlines() if line.startswith("RESULT ")][-1][7:])
        rd = pathlib.Path(result["run_dir"])
        info = json.loads((rd / "deploy" / "data_info.json").read_text())
        pruned = json.loads((rd / "pca" / "skin" / "intermediate" / "skin_pruned_poses_sim.json").read_text())
        return {
            "shots": shots,
            "frames": int(sum(lengths)),
            "skin_verts": v,
            "tongue_verts": vt,
            "select_iterations": max_iter,
            "generate_s": round(gen_s, 2),
            "preproc_s": round(result["seconds"], 2),
            "preproc_peak_rss_mb": round(child_peak_mb, 1),
            "pruned_skin_frames": sum(len(x) for x in pruned.values()),
            "skin_components": info["num_shapes_skin"],
            "tongue_components": info["num_shapes_tongue"],
        }


BENCHMARKS = {"claire_size": claire_size}
