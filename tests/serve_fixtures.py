"""Tiny regression and diffusion bundles with skin blendshapes, and the offline reference the server must match
(the same bundle through `infer.regression` / `infer.diffusion` on the whole clip, the bundle's post-processing
and the blendshape solver), for tests/test_serve.py."""

from __future__ import annotations

import json
import pathlib
from typing import Any, Mapping

import numpy as np

import bundle_fixtures as F

POSES = ["jawOpen", "mouthClose", "smileLeft", "smileRight", "browUp", "browDown"]


def write_blendshapes(folder: pathlib.Path, neutral: np.ndarray, scale: float, seed: int = 0) -> tuple[pathlib.Path, pathlib.Path]:
    """bs_skin.npz over the bundle's skin neutral + a config with every SDK term on (L1, L2, temporal, symmetry,
    a cancel pair), so the streamed solve must carry its temporal state across chunks."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, Any] = {"poseNames": np.array([b"neutral"] + [p.encode() for p in POSES]),
                              "neutral": np.asarray(neutral, np.float32)}
    a, b, c = (scale * rng.standard_normal((3,) + neutral.shape)).astype(np.float32)
    noise = lambda: (0.2 * scale * rng.standard_normal(neutral.shape)).astype(np.float32)  # noqa: E731
    # opposite pairs (cancel pairs), a near-symmetric pair: most motion is reachable with weights in [0, 1]
    for name, delta in zip(POSES, (a, -a + noise(), b, b + noise(), c, -c + noise())):
        arrays[name] = delta
    npz, cfg = folder / "bs_skin.npz", folder / "bs_skin_config.json"
    np.savez(npz, **arrays)
    n = len(POSES)
    cfg.write_text(json.dumps({"blendshape_params": {
        "strengthL1regularization": 0.2, "strengthL2regularization": 0.1, "strengthTemporalSmoothing": 2.0,
        "strengthSymmetry": 1.0, "numPoses": n, "bsSolveActivePoses": [1] * n, "bsSolveCancelPoses": [0, 0, -1, -1, 1, 1],
        "bsSolveSymmetryPoses": [-1, -1, 0, 0, -1, -1], "bsWeightMultipliers": [1.0, 0.8, 1.0, 1.0, 1.2, 1.0],
        "bsWeightOffsets": [0.0, 0.0, 0.05, 0.0, 0.0, 0.0]}}))
    return npz, cfg


def make_bundle(folder: pathlib.Path, kind: str) -> pathlib.Path:
    """A checked bundle (stand-in networks of bundle_fixtures) with skin blendshapes for its first identity."""
    from a2f_jax.deploy import bundle

    folder.mkdir(parents=True, exist_ok=True)
    identities = ("claire",) if kind == "regression" else ("claire", "mark")
    kw = F.bundle_kwargs(folder, kind, identities)
    # pose deltas sized to the stand-in networks' skin motion, so the weights mostly lie inside (0, 1)
    npz, cfg = write_blendshapes(folder, F.model_data(0)["shapes_mean_skin"], 4.0 if kind == "regression" else 0.3)
    kw["blendshapes"] = {"claire": {"skin": (npz, cfg)}}
    kw["inference_config"] = {"input_strength": 1.0, "upper_face_smoothing": 0.01, "lower_face_smoothing": 0.02}
    return bundle.write_bundle(folder / "bundle", **kw)


def speech_like(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """int16 mono: a few gliding tones with a syllable-rate envelope, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    x = sum(np.sin(2 * np.pi * (f + 40 * np.sin(2 * np.pi * 0.7 * t)) * t) for f in (180.0, 420.0, 1100.0)) / 3
    x = 0.5 * env * x + 0.02 * rng.standard_normal(len(t))
    return np.clip(np.rint(x * 32768), -32768, 32767).astype(np.int16)


def offline_weights(bundle: pathlib.Path, kind: str, pcm: np.ndarray, emotion: Any = None,
                    face: Mapping[str, Any] | None = None, actor: str = "claire") -> dict[str, np.ndarray]:
    """Offline inference of the whole clip + post-processing + blendshape solve.

    emotion: {name: weight} for the whole clip, or per-frame explicit weights [T, E]."""
    from a2f_jax import blendshapes as bs
    from a2f_jax.infer import diffusion as D
    from a2f_jax.infer import postprocess as pp
    from a2f_jax.infer import regression as R

    audio = pcm.astype(np.float32) / np.float32(32768.0)
    if kind == "regression":
        pred = R.from_bundle(bundle)
        fps = 30.0
        if isinstance(emotion, np.ndarray):  # per-frame emotions: the predictor's windows, one row each
            from a2f_jax.data.audio import frame_windows

            n = pred.num_frames(len(audio), fps)
            w = frame_windows(audio, n, fps, size=R.WINDOW)
            e = np.concatenate([np.broadcast_to(pred.implicit(None), (n, 16)), emotion[:n]], 1).astype(np.float32)
            rows = np.asarray(pred.run_fn(w[:, None], e[:, None]), np.float32)[:, 0]
        else:
            rows = pred.predict_rows(audio, fps=fps, emotion=emotion)
        data_path, cfg_path = bundle / "model_data.npz", bundle / "model_config.json"
    else:
        engine = D.from_bundle(bundle, {"CONDITION": actor, "ACTOR_NAME": actor})
        fps = engine.fps
        rows = engine.predict(audio, emotion=emotion).raw
        data_path, cfg_path = bundle / f"model_data_{actor}.npz", bundle / f"model_config_{actor}.json"
    data = pp.ModelData.load(data_path, kind)
    config = json.loads(cfg_path.read_text())["config"] | dict(face or {})
    deltas = pp.deltas_from_regression(rows, data) if kind == "regression" else pp.deltas_from_diffusion(rows, data)
    out = pp.PostProcessor(data, config, fps).process(deltas)
    solver = bs.from_files(bundle / f"bs_skin_{actor}.npz", bundle / f"bs_skin_config_{actor}.json")
    return {"weights": solver.solve(out["skin"]), "raw": solver.solve_active(out["skin"]), "jaw": out["jaw"],
            "eyes": out["eyes"], "fps": np.float64(fps), "active": solver.active_index,
            "mult": solver.config.multipliers, "off": solver.config.offsets}
