"""Live serving over gRPC (`scripts/serve.py`): 1, 2 and 4 concurrent streams on localhost.

The server runs in its own process (`python -m a2f_jax.serve.cli`-style: scripts/serve.py, onnxruntime 1 thread per
call, --max-streams 4); clients run here, one thread per stream. Each stream is 10 s of speech-like audio (quick:
1 s) sent as 16-bit PCM at 16 kHz in 100 ms chunks.

- paced (chunks sent in real time, as a live talker): per-frame latency = arrival of the frame − sending of the
  chunk that completed its audio context (the network's own look-ahead — regression 260 ms past the frame centre,
  diffusion up to 0.75 s — is not counted, it is the model's); first-frame latency, p50 / p95 over all frames;
- unpaced (chunks sent as fast as the server takes them): real-time factor per stream = stream wall time / audio
  seconds (< 1: faster than real time).

Bundles: the demo's (full mode: the synthetic dataset → preprocessing → `steps` training steps → deploy, exactly
as `a2f_jax.demo` builds it; the speed does not depend on how well it is trained) for regression and diffusion;
`quick`: tiny stand-in networks in a hand-made bundle (seconds). The load of the machine while it ran is reported
(`loadavg_1m`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Iterator

import numpy as np

# lazy imports: `bench.py --only X` must not import every area, and the bundle builders need training code
REPO = pathlib.Path(__file__).resolve().parents[2]
CONCURRENCY = (1, 2, 4)
CHUNK_SECONDS = 0.1
TRAIN_STEPS = 2
SERVER_START_TIMEOUT = 300.0


# ------------------------------------------------------------------------------------------------- bundles


def _demo_bundle(kind: str, base: pathlib.Path) -> pathlib.Path:
    """The demo's bundle (`a2f_jax.demo.run` stages dataset → preprocess → train → deploy), briefly trained."""
    from a2f_jax import config
    from a2f_jax.data import synthetic
    from a2f_jax.deploy import bundle
    from a2f_jax.preproc import run as preproc_run
    from a2f_jax.train import entry

    os.environ["A2F_DATASETS_ROOT"] = str(base / "datasets")
    os.environ["A2F_WORKSPACE_ROOT"] = str(base / "workspace")
    config_dir = REPO / "configs" / f"synthetic-{kind}"
    overrides = ["train.VALIDATION_PERIOD=0", f"train.CHECKPOINT_PERIOD={TRAIN_STEPS}"]
    data_root = base / "datasets" / "a2f-synthetic"
    if not (data_root / "data" / "synth").is_dir():
        synthetic.generate(data_root, seed=0)
    preproc_run(config.load(config_dir, overrides), "synth")
    configs = config.load(config_dir, overrides)
    run_dir = entry.train(configs, max_steps=TRAIN_STEPS, show_progress=False)
    return pathlib.Path(bundle.deploy_run(configs, run_dir, out_root=base / "workspace" / "output_deploy"))


def _tiny_bundle(kind: str, base: pathlib.Path) -> pathlib.Path:
    """A hand-made bundle: random model data (40 skin vertices), 8 blendshapes, a stand-in network with the
    deploy I/O contract (one tanh layer of the window)."""
    import jax.numpy as jnp

    from a2f_jax.deploy import bundle
    from a2f_jax.deploy import contract as C
    from a2f_jax.deploy.onnx_utils import export_onnx

    rng = np.random.default_rng(0)
    vs, vt, ks, kt, emotions = 40, 6, 8, 3, ["joy", "anger", "sadness"]
    neutral = rng.standard_normal((vs, 3)).astype(np.float32)
    neutral[:, 1] = np.linspace(-1, 1, vs)
    tongue = rng.standard_normal((vt, 3)).astype(np.float32)
    data = {"shapes_matrix_skin": 0.1 * rng.standard_normal((ks, vs, 3)), "shapes_mean_skin": neutral, "neutral_skin": neutral,
            "lip_open_pose_delta": 0.01 * rng.standard_normal((vs, 3)), "eye_close_pose_delta": 0.01 * rng.standard_normal((vs, 3)),
            "shapes_matrix_tongue": 0.1 * rng.standard_normal((kt, vt, 3)), "shapes_mean_tongue": tongue, "neutral_tongue": tongue,
            "neutral_jaw": rng.standard_normal((5, 3)), "blink_keys": np.linspace(0, 1, 10),
            "saccade_rot_matrix": rng.standard_normal((50, 2))}
    data = {k: np.asarray(v, np.float32) for k, v in data.items()}
    if kind == "regression":
        info = C.regression_network_info("synth", emotions, [0.0] * 3, ks, vs, kt, vt)
    else:
        info = C.diffusion_network_info(["synth"], emotions, [0.0] * 3, vs, vt, gru_latent_dim=8)
    shapes = C.onnx_tensor_shapes(info)
    io = C.ONNX_IO[kind]
    ins = [(n, shapes[n]) for n, (role, _) in io.items() if role == "input"]
    outs = [(n, shapes[n]) for n, (role, _) in io.items() if role == "output"]
    if kind == "regression":
        n, e, r = shapes["input"][2], shapes["emotion"][2], shapes["result"][2]
        w1 = jnp.asarray(rng.standard_normal((n, 8)) / np.sqrt(n), jnp.float32)
        w2 = jnp.asarray(0.3 * rng.standard_normal((8 + e, r)), jnp.float32)

        def fn(x, emo):
            return jnp.concatenate([jnp.tanh(x @ w1), emo], -1) @ w2
    else:
        n, d = shapes["window"][1], shapes["prediction"][2]
        s, _, _, h = shapes["input_latents"]
        wa = jnp.asarray(rng.standard_normal((n, 8)) / np.sqrt(n), jnp.float32)
        wo = jnp.asarray(0.01 * rng.standard_normal((8, d)), jnp.float32)
        wh = jnp.asarray(rng.standard_normal((h, h)) / np.sqrt(h), jnp.float32)

        def fn(window, identity, emotion, latents, noise):
            feat = jnp.tanh(window @ wa)
            return 0.01 * noise[:, s] + (feat @ wo)[:, None, :] + 0 * identity.sum() + 0 * emotion.sum(), jnp.tanh(latents @ wh)
    names = [f"pose{i}" for i in range(8)]
    bs_npz, bs_cfg = base / "bs_skin.npz", base / "bs_skin_config.json"
    np.savez(bs_npz, poseNames=np.array([b"neutral"] + [p.encode() for p in names]), neutral=neutral,
             **{p: (0.05 * rng.standard_normal((vs, 3))).astype(np.float32) for p in names})
    bs_cfg.write_text(json.dumps({"blendshape_params": {
        "strengthL1regularization": 1.0, "strengthL2regularization": 3.5, "strengthTemporalSmoothing": 5.0,
        "strengthSymmetry": 10.0, "numPoses": 8, "bsSolveActivePoses": [1] * 8, "bsSolveCancelPoses": [-1] * 8,
        "bsSolveSymmetryPoses": [0, 0] + [-1] * 6, "bsWeightMultipliers": [1.0] * 8, "bsWeightOffsets": [0.0] * 8}}))
    kw: dict[str, Any] = dict(network_info=info, onnx_model=export_onnx(fn, ins, outs), model_data={"synth": data},
                              blendshapes={"synth": {"skin": (bs_npz, bs_cfg)}})
    if kind == "regression":
        kw["emo_db"] = {"emo_db": rng.standard_normal((10, 16)).astype(np.float32), "emo_specs": {"s01_neutral": (0, 10)}}
    return pathlib.Path(bundle.write_bundle(base / f"bundle_{kind}", **kw))


# -------------------------------------------------------------------------------------------------- server


@contextlib.contextmanager
def _server(bundle: pathlib.Path, log_path: pathlib.Path) -> Iterator[str]:
    """scripts/serve.py in its own process on a free port; yields "127.0.0.1:<port>"."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "serve.py"), "--bundle", str(bundle), "--port", "0",
                                 "--max-streams", str(max(CONCURRENCY))], stdout=subprocess.PIPE, stderr=log, text=True,
                                env=env, cwd=REPO)
        try:
            line = proc.stdout.readline()  # the JSON line printed once it listens
            if not line:
                proc.wait(SERVER_START_TIMEOUT)
                raise RuntimeError(f"the server did not start: {log_path.read_text()[-2000:]}")
            yield json.loads(line)["listening"]
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


# ------------------------------------------------------------------------------------------------- streams


def _speech(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    x = sum(np.sin(2 * np.pi * (f + 40 * np.sin(2 * np.pi * 0.7 * t)) * t) for f in (180.0, 420.0, 1100.0)) / 3
    return np.clip(np.rint((0.5 * env * x + 0.02 * rng.standard_normal(len(t))) * 32768), -32768, 32767).astype(np.int16)


def _latencies(res: Any, context_end: list[int], total: int) -> np.ndarray:
    """Per frame: arrival − sending of the chunk that completed its audio context (s)."""
    sent = np.array([n for n, _ in res.sent_at])
    times = np.array([t for _, t in res.sent_at])
    need = np.minimum(np.asarray(context_end[:len(res.received_at)]), total)
    idx = np.minimum(np.searchsorted(sent, need, side="left"), len(sent) - 1)
    return res.received_at - times[idx]


def _run_streams(target: str, streams: int, seconds: float, paced: bool, context_end: list[int]) -> list[dict]:
    from a2f_jax.serve.client import stream_pcm

    audio = [_speech(seconds, seed) for seed in range(streams)]
    results: list[Any] = [None] * streams
    errors: list[BaseException] = []
    barrier = threading.Barrier(streams)

    def one(i: int) -> None:
        try:
            barrier.wait(30)
            results[i] = stream_pcm(target, audio[i], 16000, chunk_seconds=CHUNK_SECONDS, realtime=paced, timeout=600)
        except BaseException as err:  # reported, the other streams finish
            errors.append(err)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise RuntimeError(f"{len(errors)} stream(s) failed: {errors[0]!r}")
    out = []
    for res, pcm in zip(results, audio):
        lat = _latencies(res, context_end, len(pcm))
        out.append({"frames": int(len(res.times)), "wall_s": res.finished - res.started, "audio_s": len(pcm) / 16000,
                    "lat": lat})
    return out


def _bench(kind: str, quick: bool) -> dict:
    from a2f_jax.serve.session import ServeModel

    seconds = 1.0 if quick else 10.0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"a2f_serve_bench_{kind}_") as tmp:
        base = pathlib.Path(tmp)
        bundle = _tiny_bundle(kind, base) if quick else _demo_bundle(kind, base)
        setup_s = time.perf_counter() - t0
        model = ServeModel.load(bundle)
        total = int(seconds * 16000)
        context_end = [model.context_end(i) for i in range(model.num_frames(total) + 1)]
        out: dict[str, Any] = {"bundle": "tiny stand-in" if quick else f"demo ({TRAIN_STEPS} training steps)",
                               "fps": model.fps, "blendshapes": len(model.pose_names), "audio_s_per_stream": seconds,
                               "chunk_s": CHUNK_SECONDS, "setup_s": round(setup_s, 1), "loadavg_1m_start": os.getloadavg()[0]}
        with _server(bundle, base / "server.log") as target:
            _run_streams(target, 1, 1.0, False, context_end)  # warm-up: first calls, page-ins
            for n in CONCURRENCY:
                paced = _run_streams(target, n, seconds, True, context_end)
                fast = _run_streams(target, n, seconds, False, context_end)
                lat = np.concatenate([s["lat"] for s in paced])
                out[f"streams_{n}"] = {
                    "first_frame_ms": [round(1e3 * float(s["lat"][0]), 1) for s in paced],
                    "latency_p50_ms": round(1e3 * float(np.percentile(lat, 50)), 1),
                    "latency_p95_ms": round(1e3 * float(np.percentile(lat, 95)), 1),
                    "rtf": [round(s["wall_s"] / s["audio_s"], 3) for s in fast],
                    "frames": [s["frames"] for s in paced],
                }
        out["loadavg_1m_end"] = os.getloadavg()[0]
    return out


def regression_streams(quick: bool) -> dict:
    return _bench("regression", quick)


def diffusion_streams(quick: bool) -> dict:
    return _bench("diffusion", quick)


BENCHMARKS = {"regression_streams": regression_streams, "diffusion_streams": diffusion_streams}
