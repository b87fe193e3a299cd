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
from typing import Any, Callable

# lazy imports: `bench.py --only X` discovers every area module and must not import every area's stack

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


def compiled_flops(compiled: Any) -> float:
    """XLA's FLOP count of a compiled executable (0 where the backend reports none); a while body counts once."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", 0.0)) if cost else 0.0


def random_diffusion_net(quick: bool, emotions: int = 10, compute_dtype: str = "float32") -> tuple[Any, Any]:
    """(DiffusionRNN, params) with random weights, one actor: base size (HuBERT base, skin 24,002 / tongue 5,602
    vertices, GRU 256) or, with `quick`, a tiny network (50 / 10 vertices, width 16). `compute_dtype`: the
    network's (`models.precision`); the params are float32 either way."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from a2f_jax.models import diffusion_rnn as dr
    from a2f_jax.models.audio_encoder import EncoderConfig
    from a2f_jax.models.precision import compute_dtype as resolve_dtype

    if quick:
        vs, vt = 50, 10
        enc = EncoderConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, conv_dim=(8,) * 7,
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
        extra = dict(hubert_feature_dim=16, feature_dim=16, gru_feature_dim=16)
    else:
        vs, vt, enc, extra = 24002, 5602, EncoderConfig(), {}
    cfg = dr.DiffusionNetConfig(skin_dim=3 * vs, tongue_dim=3 * vt, num_actors=1, num_emotions=emotions, encoder=enc, **extra)
    rng = np.random.default_rng(0)
    consts = dr.ActorConstants(0.1 * rng.standard_normal((1, cfg.output_dim)).astype(np.float32),
                               scale_skin=[1.0], scale_tongue=[1.0], scale_jaw=[1.0], scale_eye=[1.0])
    net = dr.DiffusionRNN(cfg, consts, resolve_dtype(compute_dtype))
    params = jax.jit(net.init)({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 60, cfg.output_dim)), jnp.array([0]),
                               jnp.zeros((1, 16000)), jnp.ones((1, 1)), jnp.zeros((1, emotions)))["params"]
    return net, params
