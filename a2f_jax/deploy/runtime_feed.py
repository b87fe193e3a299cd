"""Feed a deployed `network.onnx` the way the Audio2Face-3D SDK does (docs/bundle_contract.md "ONNX tensors").

Regression: one 8320-sample window per output frame, centred on the frame time. Diffusion: 16000-sample
windows with an 8000-sample hop starting at -padding_left, GRU latents carried from call to call, and only
the center frames of each call kept. Audio outside the clip is zero. Used by the bundle checker, the
deploy benchmark and the onnxruntime inference backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

# A session-like callable: feeds -> {output name: array}. `ort_runner` adapts an onnxruntime session
# (`a2f_jax.deploy.onnx_utils.ort_session`).
Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def ort_runner(session: Any) -> Runner:
    names = [o.name for o in session.get_outputs()]

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, feeds)))

    return run


def window_at(audio: np.ndarray, start: int, size: int) -> np.ndarray:
    """audio[start : start+size] with zeros where the range leaves the clip. -> [size] float32."""
    out = np.zeros(size, np.float32)
    lo, hi = max(start, 0), min(start + size, len(audio))
    if hi > lo:
        out[lo - start : hi - start] = audio[lo:hi]
    return out


# ---------------------------------------------------------------------------------------------- regression


def regression_num_frames(num_samples: int, fps: float, samplerate: int = 16000) -> int:
    """Frames whose time k/fps lies inside the clip."""
    return int(np.ceil(num_samples * fps / samplerate - 1e-9))


def regression_windows(
    audio: np.ndarray, fps: float, buffer_len: int = 8320, buffer_ofs: int = 4160, samplerate: int = 16000
) -> np.ndarray:
    """Windows centred on the frame times: frame k starts at floor(k*samplerate/fps) - buffer_ofs. -> [T, buffer_len]."""
    audio = np.asarray(audio, np.float32)
    t = regression_num_frames(len(audio), fps, samplerate)
    starts = np.floor(np.arange(t) * samplerate / fps).astype(np.int64) - buffer_ofs
    return np.stack([window_at(audio, int(s), buffer_len) for s in starts]) if t else np.zeros((0, buffer_len), np.float32)


def run_regression(
    run: Runner,
    audio: np.ndarray,
    emotion: np.ndarray,
    fps: float = 30.0,
    input_strength: float = 1.0,
    buffer_len: int = 8320,
    buffer_ofs: int = 4160,
    batch: int = 16,
) -> np.ndarray:
    """Regression network over a clip. emotion: [16+E] (constant) or [T, 16+E]. -> result rows [T, R]."""
    windows = regression_windows(audio, fps, buffer_len, buffer_ofs) * np.float32(input_strength)
    emotion = np.asarray(emotion, np.float32)
    if emotion.ndim == 1:
        emotion = np.broadcast_to(emotion, (len(windows), emotion.shape[0]))
    rows = []
    for i in range(0, len(windows), batch):  # batch axis = independent rows (tracks in the SDK)
        x = np.ascontiguousarray(windows[i : i + batch, None, :])
        e = np.ascontiguousarray(emotion[i : i + batch, None, :])
        rows.append(run({"input": x, "emotion": e})["result"][:, 0, :])
    return np.concatenate(rows, 0) if rows else np.zeros((0, 0), np.float32)


# ----------------------------------------------------------------------------------------------- diffusion


@dataclass(frozen=True)
class DiffusionStream:
    """Streaming geometry of a diffusion bundle, derived from network_info.json."""

    buffer_len: int
    padding_left: int
    left: int
    center: int
    right: int
    steps: int
    gru_layers: int
    latent_dim: int
    out_dim: int
    num_emotions: int
    num_identities: int
    samplerate: int = 16000

    @classmethod
    def from_network_info(cls, info: Mapping[str, Any]) -> "DiffusionStream":
        p, a = info["params"], info["audio_params"]
        return cls(
            buffer_len=int(a["buffer_len"]),
            padding_left=int(a["padding_left"]),
            left=int(p["num_frames_left_truncate"]),
            center=int(p["num_frames_center"]),
            right=int(p["num_frames_right_truncate"]),
            steps=int(p["num_diffusion_steps"]),
            gru_layers=int(p["num_gru_layers"]),
            latent_dim=int(p["gru_latent_dim"]),
            out_dim=int(p["skin_size"] + p["tongue_size"] + p["jaw_size"] + p["eyes_size"]),
            num_emotions=len(p["emotions"]),
            num_identities=len(p["identities"]),
            samplerate=int(a["samplerate"]),
        )

    @property
    def frames(self) -> int:
        return self.left + self.center + self.right

    @property
    def fps(self) -> float:
        return self.frames * self.samplerate / self.buffer_len

    @property
    def stride(self) -> int:
        return self.buffer_len * self.center // self.frames

    def center_targets(self, k: int) -> np.ndarray:
        """Target sample of each center frame of window k (SDK WindowProgress arithmetic)."""
        start = -self.padding_left + k * self.stride
        offset = self.buffer_len * self.left // self.frames
        return start + offset + np.arange(self.center) * self.stride / self.center

    def zero_latents(self, batch: int = 1) -> np.ndarray:
        return np.zeros((self.steps, self.gru_layers, batch, self.latent_dim), np.float32)


def run_diffusion(
    run: Runner,
    audio: np.ndarray,
    stream: DiffusionStream,
    identity: np.ndarray,
    emotion: np.ndarray,
    noise: np.ndarray,
    input_strength: float = 1.0,
) -> np.ndarray:
    """One track through the diffusion network, SDK style, constant noise. -> [T, D] frames at stream.fps.

    identity: [I]; emotion: [E] (constant); noise: [S+1, F, D] reused for every call (constantNoise).
    Emits the center frames whose target sample lies in [0, len(audio)).
    """
    audio = np.asarray(audio, np.float32)
    latents = stream.zero_latents(1)
    ident = np.asarray(identity, np.float32)[None]
    emo = np.ascontiguousarray(np.broadcast_to(np.asarray(emotion, np.float32), (1, stream.center, stream.num_emotions)))
    nz = np.asarray(noise, np.float32)[None]
    frames = []
    k = 0
    while True:
        targets = stream.center_targets(k)
        if targets[0] >= len(audio):
            break
        start = -stream.padding_left + k * stream.stride
        window = window_at(audio, start, stream.buffer_len)[None] * np.float32(input_strength)
        out = run({"window": window, "identity": ident, "emotion": emo, "input_latents": latents, "noise": nz})
        latents = out["output_latents"]
        keep = (targets >= 0) & (targets < len(audio))
        center = out["prediction"][0, stream.left : stream.left + stream.center]
        frames.append(center[keep])
        k += 1
    return np.concatenate(frames, 0) if frames else np.zeros((0, stream.out_dim), np.float32)
