"""Regression inference in Python (the original has none): audio → per-frame skin, tongue, jaw, eyes.

Two sources, same outputs:
- a training run (JAX backend): `model_def.json` + `params.msgpack` + the preprocessing artifacts it used;
- a deploy bundle (onnxruntime backend): `network.onnx` + `model_data_<actor>.npz` + `implicit_emo_db.npz`.
Frames are centred at (i + 0.5)/fps as in training, so predictions line up with ground-truth caches.
Memory does not grow with the clip beyond its audio: the windows of each network call (BATCH_FRAMES frames) are
cut when it runs, and `iter_geometry` yields the decoded frames chunk by chunk (`infer.outputs` writes them).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from a2f_jax.data.audio import frame_windows
from a2f_jax.data.npz import load_arrays
from a2f_jax.deploy.onnx_utils import ort_session
from a2f_jax.errors import ConfigError, DataError, describe
from a2f_jax.infer import outputs
from a2f_jax.models.emotion_db import ImplicitEmotionDB
from a2f_jax.networks import regression as regression_network
from a2f_jax.runs import Bundle, PreprocRun, TrainingRun
from a2f_jax.train.dataset import emotion_vector

WINDOW = 8320
SAMPLE_RATE = 16000
BATCH_FRAMES = 64  # frames per network call: the windows of one call are all that is held at a time


def check_weight(name: str, value: Any) -> float:
    """An explicit emotion weight: a number in [0, 1] (the range the network was trained on)."""
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise ConfigError(describe("emotion", name, "a weight in [0, 1]", repr(value)))
    return v


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

            return emotion_vector(emotion, self.explicit_emotions)
        if isinstance(emotion, dict):
            for k, v in emotion.items():
                if k not in self.explicit_emotions:
                    raise ConfigError(describe("emotion", k, f"one of {self.explicit_emotions}", repr(k)))
                e[self.explicit_emotions.index(k)] = check_weight(k, v)
            return e
        arr = np.asarray(emotion, np.float32)
        if arr.shape != e.shape:
            raise ConfigError(describe("emotion", None, f"{len(e)} weights", f"{arr.shape}"))
        for k, v in zip(self.explicit_emotions, arr.tolist()):
            check_weight(k, v)
        return arr

    def num_frames(self, num_samples: int, fps: float) -> int:
        """Frames of a clip: int(N/16000·fps), centred at (i + 0.5)/fps."""
        return int(num_samples / SAMPLE_RATE * fps)

    def iter_rows(self, audio: np.ndarray, fps: float = 30.0, emotion: Any = None, source: tuple[str, int] | None = None,
                  num_frames: int | None = None, batch: int = BATCH_FRAMES) -> Iterator[np.ndarray]:
        """Network rows in consecutive blocks [<=batch, D]; each block's windows are cut from the audio when it
        runs, so memory does not grow with the clip (the rows equal one pass over all windows)."""
        if not fps > 0:
            raise ConfigError(describe("predict", "fps", "a positive frame rate", repr(fps)))
        audio = np.asarray(audio, np.float32)
        n = int(num_frames if num_frames is not None else self.num_frames(len(audio), fps))
        emo = np.concatenate([self.implicit(source), self.explicit(emotion)])[None, None].astype(np.float32)
        emo = np.repeat(emo, batch, axis=0)
        for i in range(0, n, batch):
            b = min(batch, n - i)
            w = np.zeros((batch, 1, WINDOW), np.float32)  # constant batch: one compiled program / one ORT shape
            w[:b, 0] = frame_windows(audio, b, fps, size=WINDOW, first_frame=i)
            yield np.asarray(self.run_fn(w, emo), np.float32)[:b, 0]

    def predict_rows(self, audio: np.ndarray, fps: float = 30.0, emotion: Any = None, source: tuple[str, int] | None = None,
                     num_frames: int | None = None, batch: int = BATCH_FRAMES) -> np.ndarray:
        """Network rows [T, D] of a clip (T = num_frames or int(N/16000·fps))."""
        blocks = list(self.iter_rows(audio, fps, emotion, source, num_frames, batch))
        return np.concatenate(blocks) if blocks else np.zeros((0, self.output_size), np.float32)

    def iter_geometry(self, audio: np.ndarray, fps: float = 30.0, emotion: Any = None, source: tuple[str, int] | None = None,
                      num_frames: int | None = None, batch: int = BATCH_FRAMES) -> Iterator[Geometry]:
        """`predict` in consecutive Geometry chunks of `batch` frames (bounded memory for any clip length)."""
        for rows in self.iter_rows(audio, fps, emotion, source, num_frames, batch):
            yield self.decode(rows, fps)

    def predict(self, audio: np.ndarray, fps: float = 30.0, emotion: Any = None, source: tuple[str, int] | None = None,
                num_frames: int | None = None, batch: int = BATCH_FRAMES) -> Geometry:
        return self.decode(self.predict_rows(audio, fps, emotion, source, num_frames, batch), fps)

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
    run = TrainingRun(run_dir)
    run.require(TrainingRun.MODEL_DEF, TrainingRun.PARAMS, TrainingRun.EMO_DB_NPZ, TrainingRun.NETWORK_INFO)
    model = regression_network.from_model_def(run.model_def())
    params = jax.tree_util.tree_map(jnp.asarray, run.params())
    apply = jax.jit(lambda a, e: model.apply_eval(params["net"], a, e, None))
    preproc = _preproc_run(run)
    pca_keys = ("shapes_matrix", "shapes_mean")
    skin = load_arrays(preproc.pca_shapes("skin"), pca_keys, "the skin PCA of the preprocessing run")
    tongue = load_arrays(preproc.pca_shapes("tongue"), pca_keys, "the tongue PCA of the preprocessing run")
    info = read_json(run.file(TrainingRun.NETWORK_INFO), "the network_info.json of a training run").get("params", {})
    return RegressionPredictor(
        run_fn=lambda w, e: np.asarray(apply(w, e)),
        shapes_skin=skin["shapes_matrix"], mean_skin=skin["shapes_mean"].reshape(-1, 3),
        shapes_tongue=tongue["shapes_matrix"], mean_tongue=tongue["shapes_mean"].reshape(-1, 3),
        explicit_emotions=list(info["explicit_emotions"]),
        emo_db=ImplicitEmotionDB.load_npz(run.file(TrainingRun.EMO_DB_NPZ)),
        jaw_size=int(info["result_jaw_size"]), eye_size=int(info["result_eyes_size"]),
    )


def _preproc_run(run: TrainingRun) -> PreprocRun:
    """The preprocessing run a training run used (recorded in its configs)."""
    actor = next(iter(run.preproc_runs()), None)
    preproc = run.preproc_run(actor)
    if not preproc.path.is_dir():
        raise DataError(describe(preproc.path, "PREPROC_ROOT", f"the preprocessing run of {actor} used by this training run",
                                 "no such directory"))
    return preproc


def from_bundle(bundle_dir: str | pathlib.Path, actor: str | None = None) -> RegressionPredictor:
    """onnxruntime backend from a deploy bundle."""
    bundle = Bundle(bundle_dir)
    info_path = bundle.file(Bundle.NETWORK_INFO)
    info = read_json(info_path, "the network_info.json of a regression deploy bundle")
    p = info.get("params", {}) if isinstance(info, dict) else {}
    for key in ("explicit_emotions", "result_jaw_size", "result_eyes_size"):
        if key not in p:
            raise DataError(describe(info_path, f"params.{key}", "a value (regression network_info)", "missing"))
    actor = actor or info.get("id", {}).get("actor")
    data = load_arrays(bundle.model_data("regression", actor), ("shapes_matrix_skin", "shapes_mean_skin", "shapes_matrix_tongue", "shapes_mean_tongue"),
                       "the model data of a regression bundle")
    emo_path = bundle.file(Bundle.EMO_DB)
    load_arrays(emo_path, ("emo_db", "emo_spec_names", "emo_spec_start", "emo_spec_size"), "the implicit emotion database")
    emo_db = ImplicitEmotionDB.load_npz(emo_path)
    onnx_path = bundle.file(Bundle.NETWORK_ONNX)
    sess = ort_session(onnx_path, threads=0)  # 0: onnxruntime's default (all cores) for offline batches
    cfg_path = bundle.model_config("regression", actor)  # regression bundles carry no actor tag
    source = None
    if cfg_path.is_file():
        c = read_json(cfg_path, "the model_config.json of a deploy bundle").get("config", {})
        if "source_shot" in c:
            source = (c["source_shot"], int(c.get("source_frame", 0)))
    return RegressionPredictor(
        run_fn=lambda w, e: run_session(sess, onnx_path, ["result"], {"input": w, "emotion": e})[0],
        shapes_skin=data["shapes_matrix_skin"], mean_skin=data["shapes_mean_skin"].reshape(-1, 3),
        shapes_tongue=data["shapes_matrix_tongue"], mean_tongue=data["shapes_mean_tongue"].reshape(-1, 3),
        explicit_emotions=list(p["explicit_emotions"]), emo_db=emo_db,
        jaw_size=int(p["result_jaw_size"]), eye_size=int(p["result_eyes_size"]), default_source=source,
    )


def read_json(path: pathlib.Path, what: str) -> Any:
    """A JSON file of a bundle or run; missing or malformed is a DataError naming it."""
    if not path.is_file():
        raise DataError(describe(path, None, what, "no such file"))
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(describe(path, None, f"valid JSON ({what})", f"{type(exc).__name__}: {exc}")) from exc


def run_session(sess: Any, onnx_path: pathlib.Path, outputs: Sequence[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """`sess.run`, with onnxruntime's own errors (a graph that does not fit its network_info) as a DataError."""
    try:
        return sess.run(list(outputs), feeds)
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidArgument, ...)
        shapes = {k: list(np.shape(v)) for k, v in feeds.items()}
        raise DataError(describe(onnx_path, "run", f"a graph accepting the inputs {shapes}",
                                 f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")) from exc


def write_outputs(geom: Geometry, out_dir: str | pathlib.Path, name: str, npy: bool = True, maya_cache: bool = True) -> list[pathlib.Path]:
    """`<name>_{skin,tongue,jaw,eye}.npy` and Maya caches `<name>_{skin,tongue}.xml/.mc` of a whole clip
    (atomic; `infer.outputs.write_chunks` writes a clip chunk by chunk)."""
    return outputs.write_chunks(outputs.split(geom), out_dir, name, len(geom.skin), geom.fps, npy=npy, maya_cache=maya_cache)
