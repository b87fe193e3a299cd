"""Live streaming inference for one deploy bundle, independent of gRPC (the server in `serve.server` wraps it).

`ServeModel.load(bundle)` reads everything once per server: the network (onnxruntime), the post-processing
data and `model_config` of the served identity, and its skin blendshape solver. `ServeModel.open(settings)`
starts one stream (`StreamSession`): `push(pcm)` takes 16-bit PCM of any length and returns the frames whose
audio context is now complete; `finish()` returns the rest (audio past the end is zeros, as offline).

Per stream, in order: PCM → float (x / 32768, as soundfile reads WAVs) → 16 kHz (soxr stream resampler when
the client's rate differs) → × input_strength (1 unless the client sets it) → the network:
- regression: one 8320-sample window per frame centred at (i + 0.5)/fps (`data.audio.frame_windows`), so frame
  i is final once 4160 samples past its centre have arrived; T = int(N/16000·fps) frames;
- diffusion: the project's `infer.diffusion.Stream` (16000-sample windows every 8000 samples, GRU latents
  carried, centre block kept), frames at the network's rate;
→ the bundle's post-processing (`infer.postprocess.PostProcessor`, stateful, with the client's face
parameters overriding the matching `model_config` fields) → the skin blendshape solver (causal temporal term
carried from chunk to chunk) → multipliers / offsets (the bundle's, with the client's replacing them by pose
name; an unknown name at the neutral 1 / 0 is ignored) → clamped to [0, 1] on request.
Every stage carries its state, so the frames equal one offline pass over the whole clip (see tests/test_serve.py).

Emotions: the header's beginning emotion holds from t = 0; each time-coded emotion of an audio chunk is a
full emotion state (names it omits are 0) from its time code on, applied to frames not yet computed. Names
match the bundle's explicit emotions ignoring case, "_", "-" and spaces; an unknown name with a weight other
than 0 is refused (clients such as Maya-ACE 1.x always send their ten names, most at 0).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import re
from typing import Any, Mapping, Sequence

import numpy as np
import soxr

from a2f_jax import blendshapes as bs
from a2f_jax.data.audio import padded_windows, sec_to_sample
from a2f_jax.deploy.contract import MODEL_CONFIG_INT_KEYS, MODEL_CONFIG_RANGES
from a2f_jax.deploy.onnx_utils import ort_session
from a2f_jax.errors import DataError, describe
from a2f_jax.infer import diffusion as D
from a2f_jax.infer import postprocess as pp
from a2f_jax.infer import regression as R
from a2f_jax.runs import Bundle

SAMPLE_RATE = 16000
REGRESSION_FPS = 30.0  # default output rate of a regression bundle (the SDK's and Maya-ACE's)
PCM_SCALE = 32768.0
MAX_BATCH = 64  # regression frames per network call
JOINTS = ("jaw", "right_eye", "left_eye")


class StreamError(Exception):
    """A request the server refuses: `code` is the gRPC status code name, `message` says what was wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> StreamError:
    return StreamError("INVALID_ARGUMENT", message)


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


# Face parameter name (the gRPC API's camelCase, or the model_config's snake_case) -> model_config key.
FACE_PARAMS: dict[str, str] = {**{k: k for k in MODEL_CONFIG_RANGES}, **{_camel(k): k for k in MODEL_CONFIG_RANGES}}


def emotion_key(name: str) -> str:
    """Names compare ignoring case and separators: "out_of_breath" == "OutOfBreath" == "outofbreath"."""
    return re.sub(r"[\s_\-]", "", name).lower()


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """What a client's stream header asks for, as plain Python (`serve.protocol` builds it from the proto)."""

    sample_rate: int = SAMPLE_RATE
    face_params: Mapping[str, float] = dataclasses.field(default_factory=dict)
    bs_multipliers: Mapping[str, float] = dataclasses.field(default_factory=dict)
    bs_offsets: Mapping[str, float] = dataclasses.field(default_factory=dict)
    clamp: bool = False
    emotion: Mapping[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Frame:
    """One output frame: weights of every skin pose, jaw transform (column-major 4x4), eye angles (degrees:
    right x, y, z, left x, y, z), and the client's own PCM of this frame's time span."""

    index: int
    time: float
    weights: np.ndarray
    jaw: np.ndarray
    eyes: np.ndarray
    audio: bytes
    audio_time: float


def _pick(bundle: pathlib.Path, stem: str, actor: str, ext: str) -> pathlib.Path:
    """`<stem>_<actor>.<ext>` (diffusion bundles tag files with the actor), else `<stem>.<ext>` (regression)."""
    tagged = bundle / f"{stem}_{actor}.{ext}"
    return tagged if tagged.is_file() else bundle / f"{stem}.{ext}"


@dataclasses.dataclass
class ServeModel:
    """A bundle loaded for serving; shared (read-only) by all streams."""

    kind: str
    bundle: pathlib.Path
    actor: str
    fps: float
    emotions: list[str]
    data: pp.ModelData
    config: dict[str, Any]
    solver: bs.BlendshapeSolver
    predictor: R.RegressionPredictor | None = None
    engine: D.DiffusionEngine | None = None

    @property
    def pose_names(self) -> tuple[str, ...]:
        return self.solver.pose_names

    @classmethod
    def load(cls, bundle: str | pathlib.Path, identity: str | None = None, fps: float | None = None,
             threads: int = 1) -> "ServeModel":
        """Load a regression or diffusion bundle. identity: the actor to serve (default: the bundle's first);
        fps: regression output rate (default 30; a diffusion bundle runs at its network's rate only);
        threads: onnxruntime intra-op threads per network call (streams run in parallel on their own threads)."""
        bundle = pathlib.Path(bundle)
        info = R.read_json(bundle / Bundle.NETWORK_INFO, "the network_info.json of a deploy bundle")
        kind = info.get("id", {}).get("type") if isinstance(info, dict) else None
        if kind not in ("regression", "diffusion"):
            raise DataError(describe(bundle / Bundle.NETWORK_INFO, "id.type", "'regression' or 'diffusion'", repr(kind)))
        predictor = engine = None
        if kind == "regression":
            actors = [info["id"].get("actor")]
            actor = identity or actors[0]
            if actor not in actors:
                raise DataError(describe(bundle, "--identity", f"the bundle's actor {actors[0]!r}", repr(actor)))
            out_fps = REGRESSION_FPS if fps is None else float(fps)
            if not (math.isfinite(out_fps) and 1.0 <= out_fps <= 240.0):
                raise DataError(describe("--fps", None, "a frame rate in [1, 240]", repr(fps)))
            predictor = R.from_bundle(bundle, actor)
            onnx_path = bundle / Bundle.NETWORK_ONNX
            sess = ort_session(onnx_path, threads=threads)  # per-call threads; concurrent streams share it
            predictor = dataclasses.replace(
                predictor, run_fn=lambda w, e: R.run_session(sess, onnx_path, ["result"], {"input": w, "emotion": e})[0])
            emotions = list(predictor.explicit_emotions)
        else:
            actors = list(info["params"]["identities"])
            actor = identity or actors[0]
            if actor not in actors:
                raise DataError(describe(bundle, "--identity", f"one of the bundle's identities {actors}", repr(actor)))
            engine = D.from_bundle(bundle, {"CONDITION": actor, "ACTOR_NAME": actor}, threads=threads)
            out_fps = engine.fps
            if fps is not None and abs(float(fps) - out_fps) > 1e-6:
                raise DataError(describe("--fps", None, f"the diffusion network's frame rate {out_fps:g}", repr(fps)))
            emotions = list(engine.emotions)
        data = pp.ModelData.load(_pick(bundle, "model_data", actor, "npz"), kind)
        config = dict(R.read_json(_pick(bundle, "model_config", actor, "json"), "the model_config.json of a deploy bundle")
                      .get("config", {}))
        skin_npz, skin_cfg = bundle / f"bs_skin_{actor}.npz", bundle / f"bs_skin_config_{actor}.json"
        for path in (skin_npz, skin_cfg):
            if not path.is_file():
                raise DataError(describe(path, None, f"the skin blendshapes of {actor!r} (the stream carries blendshape "
                                         "weights; deploy the bundle with them)", "no such file"))
        solver = bs.from_files(skin_npz, skin_cfg)
        if solver.data.num_vertices != len(data.neutral_skin):
            raise DataError(describe(skin_npz, "neutral", f"{len(data.neutral_skin)} vertices (the bundle's skin)",
                                     f"{solver.data.num_vertices}"))
        return cls(kind, bundle, actor, out_fps, emotions, data, config, solver, predictor, engine)

    # -- stream geometry ---------------------------------------------------------------------------------

    def num_frames(self, num_samples: int) -> int:
        """Frames of a clip of `num_samples` at 16 kHz: int(N/16000·fps), as offline inference."""
        return int(num_samples / SAMPLE_RATE * self.fps)

    def context_end(self, frame: int) -> int:
        """The 16 kHz sample count after which `frame` is final (its last window is complete)."""
        if self.kind == "regression":
            centre = int(sec_to_sample((np.float64(frame) + 0.5) / self.fps))
            return centre - R.WINDOW // 2 + R.WINDOW
        g = self.engine.stream_geom
        k = (frame + g.dropped) // g.center  # the window whose centre block holds it
        return -g.padding_left + k * g.hop + g.window

    def open(self, settings: StreamSettings) -> "StreamSession":
        return StreamSession(self, settings)


class StreamSession:
    """One client's stream: push PCM chunks, get final frames back (see the module docstring)."""

    def __init__(self, model: ServeModel, settings: StreamSettings) -> None:
        self.model = model
        rate = settings.sample_rate
        if not isinstance(rate, int) or rate <= 0:
            raise invalid(f"audio_header.samples_per_second must be a positive sample rate, got {rate}")
        if rate < 8000 or rate > 192000:
            raise invalid(f"audio_header.samples_per_second must be in [8000, 192000] Hz, got {rate}")
        self.rate = rate
        self.config, self.gain = self._face_config(settings.face_params)
        self.post = pp.PostProcessor(model.data, self.config, model.fps)
        self.mult, self.offset = self._bs_params(settings.bs_multipliers, settings.bs_offsets)
        self.clamp = bool(settings.clamp)
        self.keys: list[tuple[float, np.ndarray]] = [(0.0, self.emotion_vector(settings.emotion, "emotion_params"))]
        self.resampler = None
        if rate != SAMPLE_RATE:
            self.resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")
        self.n_in = 0  # client samples received
        self.n16 = 0  # 16 kHz samples fed to the network
        self.emitted = 0  # frames returned
        self.odd = b""  # half a sample left over from a chunk of odd byte length
        self.echo = np.zeros(0, np.int16)  # client PCM from sample echo_base on
        self.echo_base = 0
        self.prev_raw: np.ndarray | None = None  # solver state: raw weights of the last frame
        self.finished = False
        if model.kind == "regression":
            self.buf = np.zeros(0, np.float32)  # 16 kHz audio from sample `base` on
            self.base = 0
            self.implicit = model.predictor.implicit(None)
        else:
            self.stream = model.engine.stream(emotion=self.keys[0][1], condition=model.actor)
            self.last_row: np.ndarray | None = None

    # -- request parameters --------------------------------------------------------------------------------

    def _face_config(self, params: Mapping[str, float]) -> tuple[dict[str, Any], float]:
        config = dict(self.model.config)
        gain = 1.0
        for name, value in params.items():
            key = FACE_PARAMS.get(name)
            if key is None:
                raise invalid(f"unknown face parameter {name!r}; known: {sorted(_camel(k) for k in MODEL_CONFIG_RANGES)}")
            v = float(value)
            bounds = MODEL_CONFIG_RANGES[key]
            if not math.isfinite(v) or (bounds is not None and not bounds[0] <= v <= bounds[1]):
                allowed = f"in [{bounds[0]:g}, {bounds[1]:g}]" if bounds else "finite"
                raise invalid(f"face parameter {name!r} must be {allowed}, got {value}")
            if key == "input_strength":
                gain = v
            config[key] = int(v) if key in MODEL_CONFIG_INT_KEYS else v
        return config, gain

    def _bs_params(self, mult: Mapping[str, float], off: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.model.solver.config
        m, o = cfg.multipliers.copy(), cfg.offsets.copy()
        names = list(self.model.pose_names)
        for what, table, arr, neutral in (("bs_weight_multipliers", mult, m, 1.0), ("bs_weight_offsets", off, o, 0.0)):
            for name, value in table.items():
                if name not in names:
                    if float(value) == neutral:  # Maya-ACE 1.x sends all 52 ARKit names, at 1 / 0 by default
                        continue
                    raise invalid(f"blendshape_params.{what}: unknown blendshape {name!r} (value {value:g}); "
                                  f"the bundle's: {names}")
                if not math.isfinite(float(value)):
                    raise invalid(f"blendshape_params.{what}[{name!r}] must be finite, got {value}")
                arr[names.index(name)] = float(value)
        return m, o

    def emotion_vector(self, weights: Mapping[str, float], where: str) -> np.ndarray:
        """{name: weight} -> the bundle's explicit emotion vector (see the module docstring)."""
        names = self.model.emotions
        index = {emotion_key(n): i for i, n in enumerate(names)}
        e = np.zeros(len(names), np.float32)
        for name, value in weights.items():
            v = float(value)
            i = index.get(emotion_key(name))
            if i is None:
                if v != 0.0:
                    raise invalid(f"{where}: unknown emotion {name!r} (weight {v:g}); the bundle's emotions: {names}")
                continue
            if not 0.0 <= v <= 1.0:
                raise invalid(f"{where}: emotion {name!r} must be a weight in [0, 1], got {value}")
            e[i] = v
        return e

    def add_emotions(self, keyframes: Sequence[tuple[float, Mapping[str, float]]]) -> None:
        """Time-coded emotion states (seconds from the stream start), applied to frames not yet computed."""
        for t, weights in keyframes:
            t = float(t)
            if not (math.isfinite(t) and t >= 0.0):
                raise invalid(f"audio_with_emotion.emotions: time_code must be a time >= 0 s, got {t}")
            vec = self.emotion_vector(weights, f"audio_with_emotion.emotions (time_code {t:g})")
            self.keys = [k for k in self.keys if k[0] != t] + [(t, vec)]
            self.keys.sort(key=lambda k: k[0])

    def _emotions_at(self, frames: np.ndarray) -> np.ndarray:
        """[len(frames), E]: the emotion state in force at each frame's time i/fps."""
        times = np.asarray(frames, np.float64) / self.model.fps
        starts = np.array([k[0] for k in self.keys])
        idx = np.searchsorted(starts, times, side="right") - 1
        table = np.stack([k[1] for k in self.keys])
        return table[np.clip(idx, 0, len(table) - 1)]

    # -- audio in, frames out ------------------------------------------------------------------------------

    def push(self, pcm: bytes) -> list[Frame]:
        """One chunk of 16-bit little-endian mono PCM (any length) -> the frames it completes."""
        if self.finished:
            raise invalid("audio after the end of the stream")
        data = self.odd + bytes(pcm)
        cut = len(data) - len(data) % 2
        self.odd = data[cut:]
        samples = np.frombuffer(data[:cut], "<i2")
        if not len(samples):
            return []
        self.n_in += len(samples)
        self.echo = np.concatenate([self.echo, samples])
        x = samples.astype(np.float32) / np.float32(PCM_SCALE)
        if self.resampler is not None:
            x = self.resampler.resample_chunk(x, last=False).astype(np.float32, copy=False)
        return self._feed(x, final=False)

    def finish(self) -> list[Frame]:
        """End of audio: the remaining frames (T = int(N/16000·fps) in all)."""
        if self.finished:
            return []
        self.finished = True
        x = np.zeros(0, np.float32)
        if self.resampler is not None:
            x = self.resampler.resample_chunk(np.zeros(0, np.float32), last=True).astype(np.float32, copy=False)
        return self._feed(x, final=True)

    def _feed(self, x: np.ndarray, final: bool) -> list[Frame]:
        if self.gain != 1.0:
            x = x * np.float32(self.gain)
        self.n16 += len(x)
        rows = self._regression(x, final) if self.model.kind == "regression" else self._diffusion(x, final)
        return self._frames(rows, final)

    def _regression(self, x: np.ndarray, final: bool) -> np.ndarray:
        m = self.model
        self.buf = np.concatenate([self.buf, x])
        if final:
            stop = m.num_frames(self.n16)
        else:  # frames whose window [centre - 4160, centre + 4160) lies inside the audio received so far
            cand = np.arange(self.emitted, max(m.num_frames(self.n16), self.emitted) + 1, dtype=np.float64)
            ends = sec_to_sample((cand + 0.5) / m.fps) + R.WINDOW - R.WINDOW // 2
            stop = self.emitted + int(np.count_nonzero(ends <= self.n16))
        if stop <= self.emitted:
            return np.zeros((0, m.predictor.output_size), np.float32)
        frames = np.arange(self.emitted, stop, dtype=np.float64)
        starts = sec_to_sample((frames + 0.5) / m.fps + 0.0) - R.WINDOW // 2  # as data.audio.frame_windows
        explicit = self._emotions_at(frames)
        out = []
        for i in range(0, len(frames), MAX_BATCH):
            w = padded_windows(self.buf, starts[i:i + MAX_BATCH] - self.base, R.WINDOW)
            e = np.concatenate([np.broadcast_to(self.implicit, (len(w), len(self.implicit))), explicit[i:i + MAX_BATCH]], 1)
            out.append(np.asarray(m.predictor.run_fn(w[:, None], e[:, None].astype(np.float32)), np.float32)[:, 0])
        nxt = int(sec_to_sample((np.float64(stop) + 0.5) / m.fps)) - R.WINDOW // 2
        drop = min(max(nxt - self.base, 0), len(self.buf))
        self.buf, self.base = self.buf[drop:], self.base + drop
        return np.concatenate(out, 0)

    def _diffusion(self, x: np.ndarray, final: bool) -> np.ndarray:
        m, st = self.model, self.stream
        g = m.engine.stream_geom
        if len(self.keys) > 1:  # per-frame emotions up to the last frame the next windows can reach
            upto = m.num_frames(self.n16 + g.window) + g.center + 1
            st.emotion = self._emotions_at(np.arange(upto))
        rows = [st.push_rows(x)] if len(x) else []
        if final:
            rows.append(st.flush_rows())
        rows = np.concatenate(rows, 0) if rows else np.zeros((0, m.engine.output_dim), np.float32)
        if final:  # offline keeps exactly T frames, repeating the last when the windows fall short
            want = m.num_frames(self.n16) - self.emitted
            rows = rows[:max(want, 0)]
            last = rows[-1:] if len(rows) else self.last_row
            if len(rows) < want and last is not None:
                rows = np.concatenate([rows, np.repeat(last, want - len(rows), 0)], 0)
        if len(rows):
            self.last_row = rows[-1:]
        return rows

    def _frames(self, rows: np.ndarray, final: bool) -> list[Frame]:
        m = self.model
        t = len(rows)
        if t == 0:
            return []
        deltas = pp.deltas_from_regression(rows, m.data) if m.kind == "regression" else pp.deltas_from_diffusion(rows, m.data)
        out = self.post.process(deltas)
        raw = m.solver.solve_active(out["skin"], prev_weights=self.prev_raw)
        self.prev_raw = raw[-1]
        full = np.zeros((t, m.solver.config.num_poses))
        full[:, m.solver.active_index] = raw
        weights = (full * self.mult + self.offset).astype(np.float32)
        if self.clamp:
            weights = np.clip(weights, 0.0, 1.0)
        first = self.emitted
        self.emitted += t
        bounds = np.rint(np.arange(first, self.emitted + 1, dtype=np.float64) * self.rate / m.fps).astype(np.int64)
        if final:
            bounds[-1] = self.n_in  # the last frame carries the rest of the audio
        bounds = np.minimum(bounds, self.n_in)
        frames = []
        for j in range(t):
            a, b = int(bounds[j]) - self.echo_base, int(bounds[j + 1]) - self.echo_base
            frames.append(Frame(first + j, (first + j) / m.fps, weights[j], out["jaw"][j], out["eyes"][j],
                                self.echo[max(a, 0):max(b, 0)].tobytes(), float(bounds[j]) / self.rate))
        drop = max(int(bounds[-1]) - self.echo_base, 0)
        self.echo, self.echo_base = self.echo[drop:], self.echo_base + drop
        return frames


def describe_model(model: ServeModel) -> dict[str, Any]:
    """What the server announces at start (and `--describe` prints)."""
    return {"bundle": str(model.bundle), "network": model.kind, "identity": model.actor, "fps": model.fps,
            "blendshapes": len(model.pose_names), "emotions": model.emotions, "joints": list(JOINTS)}

