"""Diffusion inference in Python (docs/training.md, docs/bundle_contract.md): audio → skin, tongue, jaw, eyes per frame.

Two sources:
- a training run (JAX backend, `from_run`): `model_def.json` + `params.msgpack`; offline (whole clip in one
  pass, T = int(N/16000·fps)) or streaming;
- a deploy bundle (onnxruntime backend, `from_bundle`): `network.onnx` fed exactly as the SDK feeds it
  (streaming only: the graph is the streaming sampler).

Streaming (STREAMING_CFG, docs/training.md "Streaming"): the clip is padded with `padding_left` zeros on the left (and zeros past
its end), 16000-sample windows start every 8000 samples, the GRU latents of each diffusion step are carried
from window to window, the centre block of each window is kept, and the first
int(pad_left/sr·fps) − left_truncate frames (targets before the clip start) are dropped. One noise block
[1, S+1, F, D] is reused for every window, as the original and the SDK's constantNoise. `Stream` runs the
same windows incrementally (`push` / `flush`).

Units (`Geometry`): absolute positions as the original writes its Maya caches (JAX: x̂0·scale + translate of
ACTOR_NAME; bundle: neutral + delta as the SDK), or deltas in original units when `delta=True`
((x̂0 − mean)·scale, the export's "output_delta"). Jaw [T, 5, 3] and eyes [T, 4] are always x̂0·scale.

Memory (`iter_geometry`): streaming pushes the clip STREAM_CHUNK_SECONDS at a time and yields each chunk's
frames, bit-identical to one push of the whole clip; offline samples the whole clip in one pass (HuBERT attends
over all of it, so it cannot be cut exactly) and only its decoding is chunked.

Difference to the original: its streaming mode keeps frames up to the end of the right padding (1 s of audio
→ 105 frames); here every mode returns T = int(N/16000·fps) frames (the SDK stops at the clip end too).
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from a2f_jax import runs
from a2f_jax.data.npz import load_arrays
from a2f_jax.deploy.onnx_utils import ort_session
from a2f_jax.errors import ConfigError, DataError, describe
from a2f_jax.infer.regression import Geometry, check_weight, run_session, write_outputs  # noqa: F401
from a2f_jax.models import diffusion_sampling as sampling
from a2f_jax.models import gaussian_diffusion as gd
from a2f_jax.networks.diffusion import load_run

SAMPLE_RATE = 16000
STREAM_CHUNK_SECONDS = 4.0  # audio pushed into a stream at a time by iter_geometry (memory bound, not results)
OFFLINE_DECODE_FRAMES = 256  # frames decoded at once from the offline sampler's rows
STREAMING_MODES = ("streaming", "streaming_stateless", "streaming_stateless_output_delta")
OFFLINE_LONG_SECONDS = 300.0  # offline clips longer than this get a memory warning

log = logging.getLogger(__name__)

# (window [1, W], identity [1, A], emotion [1, C, E], latents [S, L, 1, H], noise [1, S+1, F, D])
#   -> (rows [1, F, D], latents [S, L, 1, H])
WindowFn = Callable[..., tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class StreamGeometry:
    """Window layout of the streaming graph (STREAMING_CFG and the bundle's audio_params)."""

    left: int
    center: int
    right: int
    steps: int  # S, spaced diffusion steps
    gru_layers: int
    latent_dim: int
    window: int = 16000
    padding_left: int = 16000
    samplerate: int = SAMPLE_RATE

    @property
    def frames(self) -> int:
        return self.left + self.center + self.right

    @property
    def hop(self) -> int:
        return self.window * self.center // self.frames  # 8000: the original hard-codes W/2

    @property
    def fps(self) -> float:
        return self.frames * self.samplerate / self.window

    @property
    def dropped(self) -> int:
        """Frames emitted before the clip start: int(pad_left/sr·fps) − left (45 at 60 fps)."""
        return int(self.padding_left / self.samplerate * self.fps) - self.left

    def zero_latents(self) -> np.ndarray:
        return np.zeros((self.steps, self.gru_layers, 1, self.latent_dim), np.float32)


@dataclasses.dataclass
class DiffusionEngine:
    """A diffusion network ready for inference. Build with `from_run` or `from_bundle`.

    `window_fn` runs one streaming window; `offline_fn(audio [1, N], identity [1, A], emotion [1, E] or
    [1, T, E], noise) -> rows [1, T, D]` is the whole-clip sampler (JAX backend only). Rows are x̂0 in
    rescaled units (`rows_are_delta` False, JAX) or deltas in original units (True, the bundle graph).
    """

    backend: str
    actors: list[str]
    emotions: list[str]
    sizes: tuple[int, int, int, int]  # skin, tongue, jaw, eye channels of a row
    stream_geom: StreamGeometry
    window_fn: WindowFn
    offline_fn: Callable[..., np.ndarray] | None
    rows_are_delta: bool
    fps: float
    # per actor: {"scale_skin", ..., "translate_skin", "translate_tongue", "mean" [D]} (JAX) or
    # {"neutral_skin", "neutral_tongue"} (bundle)
    actor_data: dict[str, dict[str, np.ndarray]]
    condition: str | None = None  # identity fed to the network (CONDITION)
    actor_name: str | None = None  # whose data de-normalises (ACTOR_NAME)
    mode: str = "offline"
    skip_steps: int = 0
    use_ddim: bool = False
    delta: bool = False
    noise_path: str | None = None
    default_emotion: Any = None
    source: str = ""

    # -- conditioning -------------------------------------------------------------------------------------

    @property
    def output_dim(self) -> int:
        return sum(self.sizes)

    def identity(self, condition: str | None = None) -> np.ndarray:
        name = condition or self.condition or self.actors[0]
        if name not in self.actors:
            raise ConfigError(describe("config_inference", "CONDITION", f"one of {self.actors}", repr(name)))
        return np.eye(len(self.actors), dtype=np.float32)[self.actors.index(name)][None]

    def emotion_vector(self, emotion: Any) -> np.ndarray:
        """Name, {name: weight}, weights [E] → [E]; per-frame weights [T, E] → [T, E]. Unknown names raise.

        A name outside the explicit emotions is accepted only as "neutral" (the all-zeros emotion, as the
        original's one-hot at SHOT_EMOTION_NAMES.index − 1 with index 0 the zero row).
        """
        e = np.zeros(len(self.emotions), np.float32)
        if emotion is None:
            emotion = self.default_emotion
        if emotion is None:
            return e
        if isinstance(emotion, str):
            if emotion == "neutral" and emotion not in self.emotions:
                return e
            emotion = {emotion: 1.0}
        if isinstance(emotion, Mapping):
            for k, v in emotion.items():
                if k not in self.emotions:
                    raise ConfigError(describe("emotion", k, f"one of {self.emotions} (or 'neutral')", repr(k)))
                e[self.emotions.index(k)] = check_weight(k, v)
            return e
        arr = np.asarray(emotion, np.float32)
        if arr.ndim not in (1, 2) or arr.shape[-1] != len(e):
            raise ConfigError(describe("emotion", None, f"[{len(e)}] or per-frame [T, {len(e)}] weights", f"shape {arr.shape}"))
        bad = np.argwhere(~((arr >= 0) & (arr <= 1)))  # NaN too
        if len(bad):
            where = tuple(int(i) for i in bad[0])
            name = self.emotions[where[-1]] + (f" (frame {where[0]})" if arr.ndim == 2 else "")
            raise ConfigError(describe("emotion", name, "a weight in [0, 1]", repr(float(arr[where]))))
        return arr

    # -- noise ----------------------------------------------------------------------------------------------

    def noise(self, frames: int, seed: int | None = None) -> np.ndarray:
        """[1, S+1, frames, D] i.i.d. N(0, 1): from DETERMINISTIC_NOISE_PATH when set, else from `seed` (default 0).

        A file with more frames than needed is cut (its first frames are used), one with fewer raises.
        """
        s = self.stream_geom.steps
        want = (1, s + 1, frames, self.output_dim)
        if self.noise_path and seed is None:
            arr = np.load(self.noise_path).astype(np.float32)
            if arr.ndim == 3:
                arr = arr[None]
            if arr.ndim != 4 or arr.shape[:2] != want[:2] or arr.shape[3] != want[3] or arr.shape[2] < frames:
                raise DataError(describe(self.noise_path, "DETERMINISTIC_NOISE_PATH", f"noise of shape {list(want)}",
                                         f"shape {list(arr.shape)}"))
            return np.ascontiguousarray(arr[:, :, :frames])
        rng = np.random.default_rng(0 if seed is None else seed)
        return rng.standard_normal(want, dtype=np.float32)

    # -- inference ------------------------------------------------------------------------------------------

    def num_frames(self, num_samples: int, fps: float | None = None) -> int:
        return int(num_samples / SAMPLE_RATE * (fps or self.fps))

    def predict(self, audio: np.ndarray, fps: float | None = None, emotion: Any = None, num_frames: int | None = None,
                *, mode: str | None = None, seed: int | None = None, condition: str | None = None,
                delta: bool | None = None) -> Geometry:
        """Whole clip → Geometry [T, ...] with T = num_frames or int(N/16000·fps). fps must be the network's."""
        blocks = list(self.iter_rows(audio, fps, emotion, num_frames, mode=mode, seed=seed, condition=condition))
        return self.decode(np.concatenate(blocks, 0), condition=condition, delta=delta)

    def iter_geometry(self, audio: np.ndarray, fps: float | None = None, emotion: Any = None, num_frames: int | None = None,
                      *, mode: str | None = None, seed: int | None = None, condition: str | None = None,
                      delta: bool | None = None, chunk_seconds: float = STREAM_CHUNK_SECONDS) -> Iterator[Geometry]:
        """`predict` as consecutive Geometry chunks. Streaming modes hold one chunk of audio's frames at a time
        (memory bounded for any clip length); offline samples the whole clip in one pass (as the original;
        HuBERT attends over the whole clip, so it cannot be cut exactly) and decodes it chunk by chunk."""
        for rows in self.iter_rows(audio, fps, emotion, num_frames, mode=mode, seed=seed, condition=condition,
                                   chunk_seconds=chunk_seconds):
            yield self.decode(rows, condition=condition, delta=delta)

    def iter_rows(self, audio: np.ndarray, fps: float | None = None, emotion: Any = None, num_frames: int | None = None,
                  *, mode: str | None = None, seed: int | None = None, condition: str | None = None,
                  chunk_seconds: float = STREAM_CHUNK_SECONDS) -> Iterator[np.ndarray]:
        """Rows [<=chunk, D] of consecutive frames, T in all (see `predict`)."""
        if fps is not None and abs(float(fps) - self.fps) > 1e-6:
            raise ConfigError(describe("predict", "fps", f"the network's frame rate {self.fps}", repr(fps)))
        audio = _mono(audio)
        n = self.num_frames(len(audio)) if num_frames is None else int(num_frames)
        if n < 1:
            raise DataError(describe("audio", None, f"at least one frame ({SAMPLE_RATE / self.fps:.0f} samples at "
                                     f"{self.fps:g} fps)", f"{len(audio)} samples"))
        mode = mode or self.mode
        if mode == "offline":
            rows = self.offline_rows(audio, emotion, n, seed=seed, condition=condition)
            for i in range(0, n, OFFLINE_DECODE_FRAMES):
                yield rows[i:i + OFFLINE_DECODE_FRAMES]
        elif mode in STREAMING_MODES or mode.startswith("streaming"):
            stream = self.stream(emotion=emotion, seed=seed, condition=condition)
            yield from _fit_blocks(_stream_blocks(stream, audio, max(int(chunk_seconds * SAMPLE_RATE), 1)), n)
        else:
            raise ConfigError(describe("config_inference", "INFERENCE_MODE", f"'offline' or one of {STREAMING_MODES}", repr(mode)))

    def offline_rows(self, audio: np.ndarray, emotion: Any, frames: int, *, seed: int | None = None,
                     condition: str | None = None, noise: np.ndarray | None = None) -> np.ndarray:
        """x̂0 or delta rows [frames, D] of the whole-clip sampler; `noise` [1, S+1, frames, D] overrides the seed/file."""
        if self.offline_fn is None:
            raise ConfigError(describe(self.source, "INFERENCE_MODE", "a streaming mode for a deploy bundle (its graph is the "
                                       "streaming sampler)", "'offline'"))
        if len(audio) > OFFLINE_LONG_SECONDS * SAMPLE_RATE:
            log.warning("offline diffusion samples the whole %.0f s clip in one pass (HuBERT attends over all of it), so "
                        "its memory grows with the clip; INFERENCE_MODE 'streaming' (--mode streaming) runs in bounded "
                        "memory", len(audio) / SAMPLE_RATE)
        emo = self.emotion_vector(emotion)
        if emo.ndim == 2:
            emo = _fit(emo, frames)
        noise = self.noise(frames, seed) if noise is None else np.asarray(noise, np.float32)
        out = self.offline_fn(audio[None], self.identity(condition), emo[None], noise)
        return np.asarray(out, np.float32)[0]

    def stream(self, emotion: Any = None, seed: int | None = None, condition: str | None = None,
               noise: np.ndarray | None = None) -> "Stream":
        """A streaming session: `push(chunk)` yields Geometry chunks as frames become final, `flush()` ends it.

        One noise block [1, S+1, F, D] (seed, DETERMINISTIC_NOISE_PATH or `noise`) is reused for every window.
        """
        nz = self.noise(self.stream_geom.frames, seed) if noise is None else np.asarray(noise, np.float32)
        return Stream(self, self.identity(condition), self.emotion_vector(emotion), nz, condition)

    # -- units ----------------------------------------------------------------------------------------------

    def decode(self, rows: np.ndarray, condition: str | None = None, delta: bool | None = None) -> Geometry:
        """Rows [T, D] → Geometry in original units (absolute, or deltas with `delta`)."""
        delta = self.delta if delta is None else delta
        rows = np.asarray(rows, np.float32).reshape(-1, self.output_dim)
        s, tg, j, _ = self.sizes
        t = len(rows)
        ident = self.identity(condition)[0]
        if self.rows_are_delta:
            d = rows
        else:
            d = _to_delta(rows, ident, self.sizes, self._table("mean"), *(self._table(f"scale_{k}") for k in ("skin", "tongue", "jaw", "eye")))
        name = self.actor_name or self.condition or self.actors[0]
        if name not in self.actor_data:
            raise ConfigError(describe("config_inference", "ACTOR_NAME", f"one of {self.actors}", repr(name)))
        data = self.actor_data[name]
        skin, tongue = d[:, :s].reshape(t, -1, 3), d[:, s:s + tg].reshape(t, -1, 3)
        jaw, eye = d[:, s + tg:s + tg + j], d[:, s + tg + j:]
        if not delta:
            if self.rows_are_delta:  # SDK convention: neutral pose + delta
                skin, tongue = skin + data["neutral_skin"], tongue + data["neutral_tongue"]
            else:  # the original: x̂0·scale + translate of ACTOR_NAME
                x = rows
                skin = x[:, :s].reshape(t, -1, 3) * data["scale_skin"] + data["translate_skin"]
                tongue = x[:, s:s + tg].reshape(t, -1, 3) * data["scale_tongue"] + data["translate_tongue"]
                jaw, eye = x[:, s + tg:s + tg + j] * data["scale_jaw"], x[:, s + tg + j:] * data["scale_eye"]
        return Geometry(skin.astype(np.float32), tongue.astype(np.float32), jaw.reshape(t, -1, 3).astype(np.float32),
                        eye.astype(np.float32), rows, self.fps)

    def _table(self, key: str) -> np.ndarray:
        return np.stack([np.asarray(self.actor_data[a][key], np.float32) for a in self.actors])

    def output_name(self, audio_path: str | pathlib.Path, emotion_label: str | None = None) -> str:
        """`<audio basename up to the first '.'>_<ACTOR_NAME>_<CONDITION>_<EMOTION_LABEL>_<INFERENCE_MODE>` (docs/bundle_contract.md)."""
        base = pathlib.Path(audio_path).name.split(".")[0]
        actor = self.actor_name or self.actors[0]
        return f"{base}_{actor}_{self.condition or actor}_{emotion_label or 'neutral'}_{self.mode}"


class Stream:
    """Incremental streaming over one track: same windows, latents and noise as `predict(mode="streaming")`.

    `push(chunk)` runs every window whose audio is complete and yields the new final frames as Geometry;
    `flush()` runs the windows that reach past the end (zeros there) and returns the last frames.
    Frames are those with a target time in [0, clip length), numbered from 0 at the clip start.
    """

    def __init__(self, engine: DiffusionEngine, identity: np.ndarray, emotion: np.ndarray, noise: np.ndarray,
                 condition: str | None = None) -> None:
        self.engine, self.identity, self.noise, self.condition = engine, identity, noise, condition
        self.emotion = emotion  # [E] or per-frame [T, E] at the output frame rate
        self.g = engine.stream_geom
        self.latents = self.g.zero_latents()
        self.k = 0  # next window
        self.total = 0  # samples received
        self.base = -self.g.padding_left  # clip sample index of buf[0]
        self.buf = np.zeros(self.g.padding_left, np.float32)  # the left padding is zeros
        self.closed = False

    def _window_emotion(self, k: int) -> np.ndarray:
        e = self.emotion
        if e.ndim == 1:
            return np.broadcast_to(e, (1, self.g.center, e.shape[0])).astype(np.float32)
        idx = k * self.g.center + np.arange(self.g.center) - self.g.dropped  # output frame index of each centre frame
        return e[np.clip(idx, 0, len(e) - 1)][None].astype(np.float32)

    def _run(self, k: int) -> np.ndarray:
        g = self.g
        start = -g.padding_left + k * g.hop
        win = np.zeros(g.window, np.float32)
        lo, hi = start - self.base, min(start + g.window - self.base, len(self.buf))
        win[: max(hi - lo, 0)] = self.buf[lo:hi]
        rows, self.latents = self.engine.window_fn(win[None], self.identity, self._window_emotion(k), self.latents, self.noise)
        rows = np.asarray(rows, np.float32)[0, g.left:g.left + g.center]
        first = k * g.center - g.dropped  # output index of the first centre frame
        keep = np.arange(g.center) + first >= 0
        if self.closed:
            last = int(self.total / g.samplerate * g.fps)  # T = int(N/16000·fps) frames in all
            keep &= np.arange(g.center) + first < last
        # drop consumed audio: the next window starts one hop later
        cut = start + g.hop - self.base
        if cut > 0:
            self.buf, self.base = self.buf[cut:], self.base + cut
        return rows[keep]

    def push_rows(self, chunk: np.ndarray) -> np.ndarray:
        if self.closed:
            raise DataError(describe("stream", "push", "audio before flush()", "a push after flush()"))
        chunk = _mono(chunk)
        self.buf = np.concatenate([self.buf, chunk])
        self.total += len(chunk)
        out = []
        while -self.g.padding_left + self.k * self.g.hop + self.g.window <= self.total:
            out.append(self._run(self.k))
            self.k += 1
        return np.concatenate(out, 0) if out else np.zeros((0, self.engine.output_dim), np.float32)

    def flush_rows(self) -> np.ndarray:
        self.closed = True
        last = int(self.total / self.g.samplerate * self.g.fps)
        out = []
        while self.k * self.g.center - self.g.dropped < last:
            out.append(self._run(self.k))
            self.k += 1
        return np.concatenate(out, 0) if out else np.zeros((0, self.engine.output_dim), np.float32)

    def push(self, chunk: np.ndarray) -> Iterator[Geometry]:
        rows = self.push_rows(chunk)
        if len(rows):
            yield self.engine.decode(rows, self.condition)

    def flush(self) -> Geometry:
        return self.engine.decode(self.flush_rows(), self.condition)


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------


def _mono(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio, np.float32)
    if a.ndim != 1:
        raise DataError(describe("audio", None, "mono samples [N] at 16 kHz", f"shape {a.shape}"))
    return a


def _fit(rows: np.ndarray, n: int) -> np.ndarray:
    """First n rows, the last row repeated when there are fewer."""
    if len(rows) >= n:
        return rows[:n]
    if len(rows) == 0:
        raise DataError(describe("audio", None, f"audio for {n} frames", "no frames"))
    return np.concatenate([rows, np.repeat(rows[-1:], n - len(rows), 0)], 0)


def _stream_blocks(stream: "Stream", audio: np.ndarray, step: int) -> Iterator[np.ndarray]:
    """The rows of a whole clip pushed `step` samples at a time, then flushed (same windows as one push)."""
    for i in range(0, len(audio), step):
        yield stream.push_rows(audio[i:i + step])
    yield stream.flush_rows()


def _fit_blocks(blocks: Iterable[np.ndarray], n: int) -> Iterator[np.ndarray]:
    """`_fit` over consecutive row blocks: the first n rows, the last row repeated when there are fewer."""
    emitted, last = 0, None
    for rows in blocks:
        rows = rows[: n - emitted]
        if len(rows):
            emitted, last = emitted + len(rows), rows[-1:]
            yield rows
    if emitted < n:
        if last is None:
            raise DataError(describe("audio", None, f"audio for {n} frames", "no frames"))
        for i in range(emitted, n, OFFLINE_DECODE_FRAMES):
            yield np.repeat(last, min(OFFLINE_DECODE_FRAMES, n - i), 0)


def _to_delta(rows: np.ndarray, ident: np.ndarray, sizes: Sequence[int], mean: np.ndarray, sc_skin: np.ndarray,
              sc_tongue: np.ndarray, sc_jaw: np.ndarray, sc_eye: np.ndarray) -> np.ndarray:
    """NumPy `diffusion_rnn.to_delta` for one identity row [A]: (x̂0 − mean)·scale (skin/tongue), x̂0·scale (jaw/eye)."""
    s, tg, j, _ = sizes
    mg = ident @ mean
    out = rows.copy()
    out[:, :s] = (rows[:, :s] - mg[:s]) * (ident @ sc_skin)
    out[:, s:s + tg] = (rows[:, s:s + tg] - mg[s:s + tg]) * (ident @ sc_tongue)
    out[:, s + tg:s + tg + j] = rows[:, s + tg:s + tg + j] * (ident @ sc_jaw)
    out[:, s + tg + j:] = rows[:, s + tg + j:] * (ident @ sc_eye)
    return out


def _cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
    if cfg is None:
        return default
    v = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
    return default if v is None else v


def respacing(inference_cfg: Any) -> str:
    """TIMESTEP_RESPACING, or NUM_DIFFUSION_STEPS when it is unset (2 by default)."""
    r = _cfg_get(inference_cfg, "TIMESTEP_RESPACING")
    return str(r) if r not in (None, "") else str(int(_cfg_get(inference_cfg, "NUM_DIFFUSION_STEPS", 2)))


# ---------------------------------------------------------------------------------------------------------
# Constructors
# ---------------------------------------------------------------------------------------------------------


def engine_from_network(net: Any, params: Any, model_def: Mapping[str, Any], inference_cfg: Any = None,
                        source: str = "network") -> DiffusionEngine:
    """JAX backend from a DiffusionRNN, its params and the run's model_def (actors, emotions, scales, translates,
    the noise schedule it was trained with)."""
    cfg = net.cfg
    diff = gd.create_diffusion(cfg.diffusion_steps, runs.noise_schedule(model_def), respacing(inference_cfg))
    skip = int(_cfg_get(inference_cfg, "SKIP_STEPS", 0))
    use_ddim = bool(_cfg_get(inference_cfg, "USE_DDIM", False))
    if not 0 <= skip < diff.num_timesteps:
        raise ConfigError(describe("config_inference", "SKIP_STEPS", f"an integer in [0, {diff.num_timesteps - 1}]", repr(skip)))
    left, center, right = cfg.streaming
    geom = StreamGeometry(left, center, right, diff.num_timesteps, cfg.num_gru_layers, cfg.gru_feature_dim)
    if abs(geom.fps - cfg.target_fps) > 1e-6:
        raise ConfigError(describe("config_train", "STREAMING_CFG", f"{cfg.target_fps} frames per 16000-sample window "
                                   "(TARGET_FPS)", f"{geom.frames}"))

    # x̂0 of the centre block only (the left/right frames never reach it); the rows are decoded on the host
    window_jit = sampling.streaming_sampler(net, diff, skip_steps=skip, delta_output=False, centre_only=True)

    def window_fn(w, i, e, lat, nz):
        centre, lat = window_jit(params, w, i, e, lat, nz)
        pred = np.zeros((centre.shape[0], geom.frames, centre.shape[2]), np.float32)  # the graph's layout
        pred[:, left:left + center] = np.asarray(centre)
        return pred, np.asarray(lat)

    offline_jit = sampling.offline_sampler(net, diff, skip_steps=skip, use_ddim=use_ddim)  # DDIM reads x_K = noise[:, -1]

    def offline_fn(audio, ident, emo, noise):
        return np.asarray(offline_jit(params, jnp.asarray(audio), jnp.asarray(ident), jnp.asarray(emo), jnp.asarray(noise)))

    actors = list(model_def["actors"])
    mean = np.asarray(model_def["mean_geometry"], np.float32)
    sc, tr = model_def["scales"], model_def.get("translates", {})
    data = {}
    for i, a in enumerate(actors):
        data[a] = {"mean": mean[i], **{f"scale_{k}": np.float32(sc[k][i]) for k in ("skin", "tongue", "jaw", "eye")},
                   **{f"translate_{k}": np.asarray(tr[k][i] if k in tr else [0.0, 0.0, 0.0], np.float32).reshape(-1)[:3]
                      for k in ("skin", "tongue")}}
    mode = str(_cfg_get(inference_cfg, "INFERENCE_MODE", "offline"))
    return DiffusionEngine(
        backend="jax", actors=actors, emotions=list(model_def["explicit_emotions"]),
        sizes=(cfg.skin_dim, cfg.tongue_dim, cfg.jaw_dim, cfg.eye_dim), stream_geom=geom, window_fn=window_fn,
        offline_fn=offline_fn, rows_are_delta=False, fps=float(cfg.target_fps), actor_data=data,
        condition=_cfg_get(inference_cfg, "CONDITION"), actor_name=_cfg_get(inference_cfg, "ACTOR_NAME"),
        mode=mode, skip_steps=skip, use_ddim=use_ddim, delta=mode.endswith("output_delta"),
        noise_path=_cfg_get(inference_cfg, "DETERMINISTIC_NOISE_PATH"),
        default_emotion=_cfg_get(inference_cfg, "EMOTION_LABEL"), source=source,
    )


def from_run(run_dir: str | pathlib.Path, inference_cfg: Any = None) -> DiffusionEngine:
    """JAX backend from a diffusion training run (`model_def.json`, `params.msgpack`)."""
    run = runs.TrainingRun(run_dir)
    run.require(runs.TrainingRun.MODEL_DEF, runs.TrainingRun.PARAMS, what="a file of a finished diffusion training run")
    network, params, model_def = load_run(run.path)
    net = network.net
    if model_def.get("network") not in (None, runs.DIFFUSION_NETWORK):
        raise DataError(describe(run.file(runs.TrainingRun.MODEL_DEF), "network", repr(runs.DIFFUSION_NETWORK),
                                 repr(model_def.get("network"))))
    params = params.get("net", params) if isinstance(params, dict) and "net" in params else params
    return engine_from_network(net, params, model_def, inference_cfg, source=str(run.path))


def from_bundle(bundle_dir: str | pathlib.Path, inference_cfg: Any = None, threads: int = 1) -> DiffusionEngine:
    """onnxruntime backend from a diffusion deploy bundle (streaming modes only; deltas from the graph)."""
    bundle = runs.Bundle(bundle_dir)
    info_path, onnx_path = bundle.file(bundle.NETWORK_INFO), bundle.file(bundle.NETWORK_ONNX)
    if not info_path.is_file() or not onnx_path.is_file():
        raise DataError(describe(bundle.path, None, f"a deploy bundle with {bundle.NETWORK_INFO} and {bundle.NETWORK_ONNX}",
                                 "missing files"))
    info = bundle.network_info()
    if info.get("id", {}).get("type") != "diffusion":
        raise DataError(describe(info_path, "id.type", "'diffusion'", repr(info.get("id", {}).get("type"))))
    p, a = info["params"], info["audio_params"]
    geom = StreamGeometry(int(p["num_frames_left_truncate"]), int(p["num_frames_center"]), int(p["num_frames_right_truncate"]),
                          int(p["num_diffusion_steps"]), int(p["num_gru_layers"]), int(p["gru_latent_dim"]),
                          window=int(a["buffer_len"]), padding_left=int(a["padding_left"]), samplerate=int(a["samplerate"]))
    sess = ort_session(onnx_path, threads=threads)

    def window_fn(w, i, e, lat, nz):
        feeds = {"window": w, "identity": i, "emotion": np.ascontiguousarray(e), "input_latents": lat, "noise": nz}
        pred, lat = run_session(sess, onnx_path, ["prediction", "output_latents"], feeds)
        return pred, lat

    actors = list(p["identities"])
    data = {}
    for act in actors:
        path = bundle.model_data("diffusion", act)
        if not path.is_file():
            raise DataError(describe(path, None, "the model data of each identity", "no such file"))
        z = load_arrays(path, ("neutral_skin", "neutral_tongue"), f"the model data of identity {act!r}")
        data[act] = {k: v.reshape(-1, 3).astype(np.float32) for k, v in z.items()}
    mode = str(_cfg_get(inference_cfg, "INFERENCE_MODE", "streaming"))
    if mode == "offline":
        mode = "streaming"  # the bundle graph only streams
    return DiffusionEngine(
        backend="onnx", actors=actors, emotions=list(p["emotions"]),
        sizes=(int(p["skin_size"]), int(p["tongue_size"]), int(p["jaw_size"]), int(p["eyes_size"])), stream_geom=geom,
        window_fn=window_fn, offline_fn=None, rows_are_delta=True, fps=geom.fps, actor_data=data,
        condition=_cfg_get(inference_cfg, "CONDITION"), actor_name=_cfg_get(inference_cfg, "ACTOR_NAME"), mode=mode,
        delta=mode.endswith("output_delta"), noise_path=_cfg_get(inference_cfg, "DETERMINISTIC_NOISE_PATH"),
        default_emotion=_cfg_get(inference_cfg, "EMOTION_LABEL"), source=str(bundle.path),
    )
