"""Host side of diffusion training: how long the sampler takes to build a batch, against the device step.

Example shapes: targets of 88,831 floats per frame (skin 24,002 and tongue 5,602 vertices, jaw, eyes), 12
clips of the example's frame counts at 30 fps (131 .. 897 frames) and 2 muted shots of 120 frames, the
diffusion defaults (60 fps, subsegments of 30 .. 600 frames, LENGTH_BUCKETS, pitch shift p = 0.2, mic noise),
batch 1, 4 and 16; `quick`: 64 floats per frame, short clips, subsegments of 10 .. 60 frames, batch 1 and 4.
Each batch size reports host ms per batch (`DiffusionSampler.batch`, the rows on `prefetch.default_threads`
threads), ms to place it on the device, its size, and the pipeline at work: the loop's wait per step with and
without the two-deep prefetch, for a device step 1.25 times as long as building and placing a batch (a
sleeping stand-in, as a GPU step leaves the CPU free). Compare host ms with `diffusion_train` (the step at the same shapes): the device
never waits while host ms per batch stays below the step.
"""

from __future__ import annotations

import pathlib
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

# lazy imports: `bench.py --only X` discovers every area module and must not import every area's stack

EXAMPLE_FRAMES = (131, 194, 250, 283, 319, 348, 386, 478, 550, 660, 710, 897)  # of the example's CLIPS
TARGET_DIM = 72006 + 16806 + 15 + 4


def _dataset(root: pathlib.Path, quick: bool) -> Any:
    import soundfile as sf

    from a2f_jax.train.dataset import Clip, Shot, TrainingData

    fps, sr = 30.0, 16000
    frames = (40, 55, 70) if quick else EXAMPLE_FRAMES
    dim = 64 if quick else TARGET_DIM
    rng = np.random.default_rng(0)
    block = rng.standard_normal((16, dim), dtype=np.float32) * 0.01  # tiled: a GB of targets in a second
    shots, clips, targets, start = [], [], [], 0
    for i, n in enumerate(frames):
        path = root / f"clip{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(int(n / fps * sr) + 400)).astype(np.float32), sr, subtype="FLOAT")
        shots.append(Shot("a", f"clip{i}", n, fps, "neutral", start))
        clips.append(Clip("a", f"clip{i}", 0, n - 1, "a", "en", path, 0.0, i))
        targets.append(np.tile(block, (-(-n // 16), 1))[:n] + np.float32(i))
        start += n
    for j in range(2):
        shots.append(Shot("a", f"muted_{j}", 120, fps, "joy", start, muted=True, source=("clip0", 0)))
        targets.append(np.repeat(targets[0][:1], 120, axis=0))
        clips.append(Clip("a", f"muted_{j}", 0, 119, "muted", "en", None, 0.0, len(shots) - 1, muted=True))
        start += 120
    return TrainingData(["a"], {}, shots, clips, ["skin_pose"], {"skin_pose": dim}, ["joy"], targets, fps)


def _config(batch: int, quick: bool) -> Any:
    from a2f_jax.config import base

    tcfg = base.train_diffusion()
    tcfg.BATCH_SIZE = batch
    if quick:
        tcfg.SUBSEGMENT_MIN_FRAME, tcfg.SUBSEGMENT_MAX_FRAME, tcfg.LENGTH_BUCKETS = 10, 60, [30, 60]
    return tcfg


def _loop_wait(build: Any, place: Any, steps: range, step_s: float, prefetched: bool) -> float:
    """Mean ms the loop waits for its placed batch per step after the first (whose batch no step can hide; in
    the trainer it is built while the first step compiles), the device step being `step_s` of sleep."""
    from a2f_jax.train.prefetch import Prefetcher

    waits = []
    feed = Prefetcher(build, place, start=steps.start, stop=steps.stop) if prefetched else (lambda k: place(build(k)))
    try:
        for k in steps:
            t0 = time.perf_counter()
            feed(k)
            waits.append(time.perf_counter() - t0)
            time.sleep(step_s)
    finally:
        if prefetched:
            feed.close()
    return 1e3 * float(np.mean(waits[1:]))


def diffusion_host_batch(quick: bool) -> dict:
    import jax

    from a2f_jax.train.prefetch import default_threads
    from a2f_jax.train.sampler_diffusion import DiffusionSampler, DiffusionSamplerSettings

    out: dict[str, Any] = {"target_dim": 64 if quick else TARGET_DIM, "clip_frames_30fps": list((40, 55, 70) if quick else EXAMPLE_FRAMES)}
    with tempfile.TemporaryDirectory() as tmp:
        data = _dataset(pathlib.Path(tmp), quick)
        for batch in ((1, 4) if quick else (1, 4, 16)):
            tcfg = _config(batch, quick)
            sampler = DiffusionSampler(data, DiffusionSamplerSettings.from_train_config(tcfg), batch, 43)
            threads = default_threads(batch)
            pool = ThreadPoolExecutor(threads) if threads > 1 else None
            try:
                for k in range(len(data.clips)):  # every track loaded once (the trainer caches them too)
                    sampler.batch(k, pool=pool)
                steps = range(100, 100 + (3 if quick else max(4, 24 // batch)))
                times, place, frames, padded, shifted = [], [], [], [], 0
                for k in steps:
                    b = None  # at batch 16 a batch is 3.4 GB: one at a time
                    t0 = time.perf_counter()
                    b = sampler.batch(k, pool=pool)
                    times.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    placed = jax.block_until_ready(jax.device_put(b))
                    place.append(time.perf_counter() - t0)
                    del placed
                    mb = sum(v.nbytes for v in b.values()) / 2**20
                    frames.append(float(b["mask"].sum(1).mean()))
                    padded.append(b["y"].shape[1])
                    shifted += sum(p.pitch_steps is not None for p in sampler.plan(k))
                b = None
                host_ms = 1e3 * float(np.mean(times))
                place_ms = 1e3 * float(np.mean(place))
                step_s = 1.25 * (host_ms + place_ms) / 1e3
                wait_steps = range(200, 200 + (5 if quick else 7))
                build = lambda k: sampler.batch(k, pool=pool)  # noqa: E731
                put = lambda b: jax.block_until_ready(jax.device_put(b))  # noqa: E731
                out[f"b{batch}"] = {
                    "batch": batch, "threads": threads, "host_ms_mean": round(host_ms, 1),
                    "host_ms_best": round(1e3 * min(times), 1), "host_ms_max": round(1e3 * max(times), 1),
                    "host_ms_per_item": round(host_ms / batch, 1), "place_ms_mean": round(place_ms, 1),
                    "batch_mb": round(mb, 1), "padded_frames_mean": round(float(np.mean(padded)), 1),
                    "item_frames_mean": round(float(np.mean(frames)), 1), "pitch_shifted_items": shifted,
                    "items": batch * len(steps),
                    "simulated_step_ms": round(1e3 * step_s, 1),
                    "loop_wait_ms_per_step_plain": round(_loop_wait(build, put, wait_steps, step_s, False), 1),
                    "loop_wait_ms_per_step_prefetch": round(_loop_wait(build, put, wait_steps, step_s, True), 1),
                }
            finally:
                if pool is not None:
                    pool.shutdown()
    return out


BENCHMARKS = {"diffusion_host_batch": diffusion_host_batch}
