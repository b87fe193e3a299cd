"""Regression inference in Python (the original has none): audio → per-frame skin, tongue, jaw, eyes.

Two sources, same outputs:
- a training run (JAX backend): `model_def.json` + `params.msgpack` + the preprocessing artifacts it used;
- a deploy bundle (onnxruntime backend): `network.onnx` + `model_data_<actor>.npz` + `implicit_emo_db.npz`.
Frames are centred at (i + 0.5)/fps as in training, so predictions line up with ground-truth caches.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Callable, Sequence

import numpy as np

from a2f_jax.errors import ConfigError, DataError, describe

WINDOW = 8320
SAMPLE_RATE = 16000


@dataclasses.dataclass
class Geometry:
    """Per-frame outputs in original units: skin [T, V, 3], tongue [T, Vt, 3], jaw [T, 5, 3] deltas, eye [T, 4]."""

    skin: np.ndarray
    tongue: np.ndarray
    jaw: np.ndarray
    eye: np.ndarray
    raw: np.ndarray  # the network rows [T, Ks + Kt + jaw + eye]
    fps: float


@dataclasses.dataclass
class RegressionPredictor:
    run_fn: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (windows [B,1,8320], emotion [B,1,16+E]) -> [B,1,D]
    shapes_skin: np.ndarray  # [Ks, V, 3]
    mean_skin: np.ndarray  # [V, 3]
    shapes_tongue: np.ndarray
    mean_tongue: np.ndarray
    explicit_emotions: list[str]
    emo_db: Any  # a2f_jax.models.emotion_db.ImplicitEmotionDB
    jaw_size: int = 15
    eye_size: int = 4
    default_source: tuple[str, int] | None = None

    def implicit(self, source: tuple[str, int] | None) -> np.ndarray:
        source = source or self.default_source
        if source is None:
            return np.zeros(self.emo_db.emo_db.shape[1], np.float32)
        shot, frame = source
        return np.asarray(self.emo_db.vector(shot, int(frame)), np.float32)

    def explicit(self, emotion: str | dict[str, float] | Sequence[float] | None) -> np.ndarray:
        e = np.zeros(len(self.explicit_emotions), np.float32)
        if emotion is None:
            return e
        if isinstance(emotion, str):  # as in training: a name outside the explicit emotions is the zero vector
            from a2f_jax.train.dataset import emotion_vector

            return emotion_vector(emotion, self.explicit_emotions)
        if isinstance(emotion, dict):
            for k, v in emotion.items():
                if k not in self.explicit_emotions:
                    raise ConfigError(describe("emotion", k, f"one of {self.explicit_emotions}", repr(k)))
                e[self.explicit_emotions.index(k)] = float(v)
            return e
        arr = np.asarray(emotion, np.float32)
        if arr.shape != e.shape:
            raise ConfigError(describe("emotion", None, f"{len(e)} weights", f"{arr.shape}"))
        return arr

    def predict(self, audio: np.ndarray, fps: float = 30.0, emotion: Any = None, source: tuple[str, int] | None = None,
                num_frames: int | None = None, batch: int = 64) -> Geometry:
        from a2f_jax.data.audio import frame_windows

        n = int(num_frames if num_frames is not None else len(audio) / SAMPLE_RATE * fps)
        windows = frame_windows(np.asarray(audio, np.float32), n, fps, size=WINDOW).astype(np.float32)
        emo = np.concatenate([self.implicit(source), self.explicit(emotion)])[None, None].astype(np.float32)
        rows = []
        for i in range(0, n, batch):
            w = windows[i:i + batch]
            pad = batch - len(w)  # constant batch: one compiled program / one ORT shape
            w = np.concatenate([w, np.zeros((pad, WINDOW), np.float32)]) if pad else w
            out = self.run_fn(w[:, None], np.repeat(emo, batch, axis=0))
            rows.append(np.asarray(out)[: batch - pad, 0])
        raw = np.concatenate(rows) if rows else np.zeros((0, self.output_size), np.float32)
        return self.decode(raw, fps)

    @property
    def output_size(self) -> int:
        return self.shapes_skin.shape[0] + self.shapes_tongue.shape[0] + self.jaw_size + self.eye_size

    def decode(self, raw: np.ndarray, fps: float) -> Geometry:
        ks, kt = self.shapes_skin.shape[0], self.shapes_tongue.shape[0]
        skin = (raw[:, :ks] @ self.shapes_skin.reshape(ks, -1)).reshape(len(raw), -1, 3) + self.mean_skin
        tongue = (raw[:, ks:ks + kt] @ self.shapes_tongue.reshape(kt, -1)).reshape(len(raw), -1, 3) + self.mean_tongue
        jaw = raw[:, ks + kt:ks + kt + self.jaw_size].reshape(len(raw), -1, 3)
        eye = raw[:, ks + kt + self.jaw_size:]
        return Geometry(skin.astype(np.float32), tongue.astype(np.float32), jaw, eye, raw, fps)


def from_run(run_dir: str | pathlib.Path) -> RegressionPredictor:
    """JAX backend from a training run directory."""
    import jax
    import jax.numpy as jnp

    from a2f_jax.models.emotion_db import ImplicitEmotionDB
    from a2f_jax.train import regression_model
    from a2f_jax.train.trainer_regression import PARAMS_FILE, load_params

    run_dir = pathlib.Path(run_dir)
    for name in ("model_def.json", PARAMS_FILE, "deploy/implicit_emo_db.npz", "deploy/network_info.json"):
        if not (run_dir / name).is_file():
            raise DataError(describe(run_dir / name, None, "a file of a finished training run", "no such file"))
    model_def = json.loads((run_dir / "model_def.json").read_text())
    model = regression_model.from_model_def(model_def)
    params = jax.tree_util.tree_map(jnp.asarray, load_params(run_dir / PARAMS_FILE))
    apply = jax.jit(lambda a, e: model.apply_eval(params["net"], a, e, None))
    preproc = _preproc_dir(run_dir)
    skin = np.load(preproc / "pca/skin/skin_pca_shapes.npz")
    tongue = np.load(preproc / "pca/tongue/tongue_pca_shapes.npz")
    info = json.loads((run_dir / "deploy/network_info.json").read_text())["params"]
    return RegressionPredictor(
        run_fn=lambda w, e: np.asarray(apply(w, e)),
        shapes_skin=skin["shapes_matrix"], mean_skin=skin["shapes_mean"].reshape(-1, 3),
        shapes_tongue=tongue["shapes_matrix"], mean_tongue=tongue["shapes_mean"].reshape(-1, 3),
        explicit_emotions=list(info["explicit_emotions"]),
        emo_db=ImplicitEmotionDB.load_npz(run_dir / "deploy/implicit_emo_db.npz"),
        jaw_size=int(info["result_jaw_size"]), eye_size=int(info["result_eyes_size"]),
    )


def _preproc_dir(run_dir: pathlib.Path) -> pathlib.Path:
    """The preprocessing run a training run used (recorded in its configs)."""
    names = json.loads((run_dir / "configs/preproc_info.json").read_text())["preproc_run_name_full"]
    full = json.loads((run_dir / "configs/config_train_full.json").read_text())
    actor, name = next(iter(names.items()))
    path = pathlib.Path(full["PREPROC_ROOT"]) / name
    if not path.is_dir():
        raise DataError(describe(path, "PREPROC_ROOT", f"the preprocessing run of {actor} used by this training run", "no such directory"))
    return path


def from_bundle(bundle_dir: str | pathlib.Path, actor: str | None = None) -> RegressionPredictor:
    """onnxruntime backend from a deploy bundle."""
    import onnxruntime as ort

    from a2f_jax.models.emotion_db import ImplicitEmotionDB

    bundle_dir = pathlib.Path(bundle_dir)
    info = json.loads((bundle_dir / "network_info.json").read_text())
    actor = actor or info["id"]["actor"]
    data_path = bundle_dir / f"model_data_{actor}.npz"
    if not data_path.is_file():
        data_path = bundle_dir / "model_data.npz"
    data = np.load(data_path)
    sess = ort.InferenceSession(str(bundle_dir / "network.onnx"), providers=["CPUExecutionProvider"])
    cfg_path = bundle_dir / f"model_config_{actor}.json"
    if not cfg_path.is_file():
        cfg_path = bundle_dir / "model_config.json"  # regression bundles carry no actor tag (spec §1.2)
    source = None
    if cfg_path.is_file():
        c = json.loads(cfg_path.read_text()).get("config", {})
        if "source_shot" in c:
            source = (c["source_shot"], int(c.get("source_frame", 0)))
    p = info["params"]
    return RegressionPredictor(
        run_fn=lambda w, e: sess.run(["result"], {"input": w, "emotion": e})[0],
        shapes_skin=data["shapes_matrix_skin"], mean_skin=data["shapes_mean_skin"].reshape(-1, 3),
        shapes_tongue=data["shapes_matrix_tongue"], mean_tongue=data["shapes_mean_tongue"].reshape(-1, 3),
        explicit_emotions=list(p["explicit_emotions"]),
        emo_db=ImplicitEmotionDB.load_npz(bundle_dir / "implicit_emo_db.npz"),
        jaw_size=int(p["result_jaw_size"]), eye_size=int(p["result_eyes_size"]), default_source=source,
    )


def write_outputs(geom: Geometry, out_dir: str | pathlib.Path, name: str, npy: bool = True, maya_cache: bool = True) -> list[pathlib.Path]:
    """`<name>_{skin,tongue,jaw,eye}.npy` and Maya caches `<name>_{skin,tongue}.xml/.mc` (atomic writes)."""
    from a2f_jax.data.caches import write_maya_cache
    from a2f_jax.io_utils import atomic_save_npy

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if npy:
        for ch in ("skin", "tongue", "jaw", "eye"):
            path = out_dir / f"{name}_{ch}.npy"
            atomic_save_npy(path, getattr(geom, ch))
            written.append(path)
    if maya_cache:
        for ch in ("skin", "tongue"):
            path = out_dir / f"{name}_{ch}.xml"
            write_maya_cache(path, getattr(geom, ch), geom.fps)
            written.append(path)
    return written
