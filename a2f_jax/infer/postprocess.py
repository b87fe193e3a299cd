"""Runtime post-processing of network output into animated geometry, as the Audio2Face-3D SDK does it
(docs/bundle_contract.md), driven by a bundle's `model_config` and `model_data`.

Per frame: skin = neutral + face-masked, two-stage-smoothed, strength-scaled deltas (+ eyelid / lip-open
offsets); tongue = neutral + strength·delta + height/depth offsets; jaw = rigid (Kabsch) fit of the 5
neutral jaw key points to their offset targets as a column-major 4x4; eyes = strength·angles + offsets +
saccades. Everything is vectorised NumPy over frames; the smoothing filters and the saccade clock carry a
state, so feeding a clip in chunks gives the same result as feeding it at once (streaming).

Result layout per frame: skin [3V_s] | tongue [3V_t] | jaw transform [16] | eyes [6: right xyz, left xyz].
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Mapping

import numpy as np
from scipy.signal import lfilter

from a2f_jax.data.npz import load_arrays
from a2f_jax.errors import DataError, describe

JAW_TRANSFORM_SIZE = 16
EYES_OUT_SIZE = 6
SACCADE_FPS = 30.0  # the SDK assumes the saccade table is sampled at 30 fps


@dataclasses.dataclass(frozen=True)
class Features:
    """Switches for each post-processing feature (all on = the SDK's behaviour).

    strengths: skin/upper/lower/tongue/teeth/eyeball strength multipliers (off: 1).
    smoothing: the two-stage exponential filters (off: pass-through).
    face_mask: upper/lower blend by vertex height (off: every vertex uses the lower-face path).
    eyelid: eye-close pose term (eyelid_open_offset and blink); lip_open: lip-open pose term.
    tongue_offsets / teeth_offsets: height and depth offsets; eye_offsets: eyeball rotation offsets;
    saccades: the saccade table term.
    """

    strengths: bool = True
    smoothing: bool = True
    face_mask: bool = True
    eyelid: bool = True
    lip_open: bool = True
    tongue_offsets: bool = True
    teeth_offsets: bool = True
    eye_offsets: bool = True
    saccades: bool = True


@dataclasses.dataclass(frozen=True)
class ModelData:
    """The arrays of model_data[_<actor>].npz the runtime uses. Shapes: [V_s, 3], [V_t, 3], [J, 3], [N, 2]."""

    neutral_skin: np.ndarray
    neutral_tongue: np.ndarray
    neutral_jaw: np.ndarray
    lip_open_pose_delta: np.ndarray
    eye_close_pose_delta: np.ndarray
    saccade_rot_matrix: np.ndarray
    shapes_matrix_skin: np.ndarray | None = None  # [K_s, V_s, 3] (regression)
    shapes_matrix_tongue: np.ndarray | None = None  # [K_t, V_t, 3] (regression)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], network_type: str) -> "ModelData":
        """Regression uses shapes_mean_* as the neutral pose, diffusion neutral_* (docs/bundle_contract.md)."""
        def get(key: str) -> np.ndarray:
            if key not in arrays:
                raise DataError(describe("model_data", key, "an array", "missing"))
            return np.asarray(arrays[key], np.float64)

        reg = network_type == "regression"
        return cls(
            neutral_skin=get("shapes_mean_skin" if reg else "neutral_skin").reshape(-1, 3),
            neutral_tongue=get("shapes_mean_tongue" if reg else "neutral_tongue").reshape(-1, 3),
            neutral_jaw=get("neutral_jaw").reshape(-1, 3),
            lip_open_pose_delta=get("lip_open_pose_delta").reshape(-1, 3),
            eye_close_pose_delta=get("eye_close_pose_delta").reshape(-1, 3),
            saccade_rot_matrix=get("saccade_rot_matrix").reshape(-1, 2),
            shapes_matrix_skin=get("shapes_matrix_skin") if reg else None,
            shapes_matrix_tongue=get("shapes_matrix_tongue") if reg else None,
        )

    @classmethod
    def load(cls, path: str | pathlib.Path, network_type: str) -> "ModelData":
        keys = ["neutral_jaw", "lip_open_pose_delta", "eye_close_pose_delta", "saccade_rot_matrix"]
        keys += (["shapes_mean_skin", "shapes_mean_tongue", "shapes_matrix_skin", "shapes_matrix_tongue"]
                 if network_type == "regression" else ["neutral_skin", "neutral_tongue"])
        return cls.from_arrays(load_arrays(path, keys, f"the model data of a {network_type} bundle"), network_type)


@dataclasses.dataclass
class Deltas:
    """Network output per frame, split: skin [T, V_s, 3], tongue [T, V_t, 3], jaw [T, J, 3], eyes [T, 4]."""

    skin: np.ndarray
    tongue: np.ndarray
    jaw: np.ndarray
    eyes: np.ndarray


def deltas_from_regression(rows: np.ndarray, data: ModelData) -> Deltas:
    """Regression result rows [T, K_s+K_t+J*3+4] -> deltas; PCA basis without the mean (docs/bundle_contract.md)."""
    rows = np.asarray(rows, np.float64)
    ks, kt = data.shapes_matrix_skin.shape[0], data.shapes_matrix_tongue.shape[0]
    j = data.neutral_jaw.size
    if rows.ndim != 2 or rows.shape[1] != ks + kt + j + 4:
        raise DataError(describe("regression result", None, f"[T, {ks + kt + j + 4}]", str(rows.shape)))
    t = rows.shape[0]
    skin = rows[:, :ks] @ data.shapes_matrix_skin.reshape(ks, -1)
    tongue = rows[:, ks : ks + kt] @ data.shapes_matrix_tongue.reshape(kt, -1)
    return Deltas(skin.reshape(t, -1, 3), tongue.reshape(t, -1, 3), rows[:, ks + kt : ks + kt + j].reshape(t, -1, 3), rows[:, ks + kt + j :])


def deltas_from_diffusion(pred: np.ndarray, data: ModelData) -> Deltas:
    """Diffusion center frames [T, 3V_s+3V_t+J*3+4] (delta output, original units) -> deltas."""
    pred = np.asarray(pred, np.float64)
    vs, vt, j = data.neutral_skin.size, data.neutral_tongue.size, data.neutral_jaw.size
    if pred.ndim != 2 or pred.shape[1] != vs + vt + j + 4:
        raise DataError(describe("diffusion prediction", None, f"[T, {vs + vt + j + 4}]", str(pred.shape)))
    t = pred.shape[0]
    return Deltas(pred[:, :vs].reshape(t, -1, 3), pred[:, vs : vs + vt].reshape(t, -1, 3),
                  pred[:, vs + vt : vs + vt + j].reshape(t, -1, 3), pred[:, vs + vt + j :])


# ------------------------------------------------------------------------------------------- primitives


def smoothing_alpha(smoothing: float, dt: float) -> float:
    """α = 1 − 0.5^(dt/smoothing) (smoothing ≈ half-life in seconds); 1 (pass-through) if smoothing ≤ 0."""
    return 1.0 if smoothing <= 0 else 1.0 - 0.5 ** (dt / smoothing)


def two_stage_smooth(d: np.ndarray, alpha: float, state: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Cascade s1 += (d − s1)·α, s2 += (s1 − s2)·α over axis 0 of d [T, ...]; returns (s2 [T, ...], (s1, s2) last).

    state None (after reset): both stages start at d[0], so the first output equals d[0].
    """
    if len(d) == 0:
        return d, state  # type: ignore[return-value]
    if state is None:
        state = (d[0], d[0])
    b, a = [alpha], [1.0, alpha - 1.0]  # y[t] = α x[t] + (1 − α) y[t−1]
    s1, _ = lfilter(b, a, d, axis=0, zi=((1.0 - alpha) * state[0])[None])
    s2, _ = lfilter(b, a, s1, axis=0, zi=((1.0 - alpha) * state[1])[None])
    return s2, (s1[-1], s2[-1])


def face_mask(neutral_skin: np.ndarray, level: float, softness: float) -> np.ndarray:
    """m_v = 1 / (1 + exp(−(level − ŷ_v)/softness)), ŷ = neutral y normalised to [0, 1]; ≈1 on the lower face. -> [V_s]."""
    y = neutral_skin[:, 1]
    span = y.max() - y.min()
    if not span > 0:
        raise DataError(describe("model_data", "neutral skin", "a positive Y range (face mask)", f"{span}"))
    z = -(level - (y - y.min()) / span) / softness
    return 1.0 / (1.0 + np.exp(np.clip(z, -700, 700)))


def kabsch(source: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rigid fits source [P, 3] -> targets [T, P, 3]; column-major 4x4 per frame [T, 16] (12–14 translation)."""
    src_mean = source.mean(0)
    tgt_mean = targets.mean(1)  # [T, 3]
    h = np.einsum("pi,tpj->tij", source - src_mean, targets - tgt_mean[:, None])  # cross-covariance [T, 3, 3]
    u, _, vt = np.linalg.svd(h)
    v = np.swapaxes(vt, 1, 2)
    sign = np.sign(np.linalg.det(v @ np.swapaxes(u, 1, 2)))
    sign[sign == 0] = 1.0
    v = v.copy()
    v[:, :, 2] *= sign[:, None]  # reflection fix on the third column
    r = v @ np.swapaxes(u, 1, 2)  # [T, 3, 3]
    t = tgt_mean - np.einsum("tij,j->ti", r, src_mean)
    m = np.zeros((len(targets), 4, 4))
    m[:, :3, :3] = r
    m[:, :3, 3] = t
    m[:, 3, 3] = 1.0
    return np.swapaxes(m, 1, 2).reshape(len(targets), 16)  # column-major


# ------------------------------------------------------------------------------------------ the processor


class PostProcessor:
    """Stateful (streaming) post-processing of one track.

    config: the `config` dict of model_config[_<actor>].json (or the whole file). fps: the executor frame rate
    (diffusion 60; regression chosen by the caller). Call `process` on consecutive chunks; `reset` restarts.
    """

    def __init__(self, data: ModelData, config: Mapping[str, Any], fps: float, features: Features = Features()) -> None:
        self.data = data
        self.cfg = dict(config.get("config", config))
        self.dt = 1.0 / float(fps)
        self.features = features
        f, c = features, self.cfg
        self.mask = face_mask(data.neutral_skin, c["face_mask_level"], c["face_mask_softness"]) if f.face_mask else np.ones(len(data.neutral_skin))
        self.alpha_upper = smoothing_alpha(c["upper_face_smoothing"], self.dt) if f.smoothing else 1.0
        self.alpha_lower = smoothing_alpha(c["lower_face_smoothing"], self.dt) if f.smoothing else 1.0
        self.reset()

    def reset(self) -> None:
        self._upper: tuple[np.ndarray, np.ndarray] | None = None
        self._lower: tuple[np.ndarray, np.ndarray] | None = None
        self._live_time = 0.0  # the saccade clock (liveTime), in saccade-table frames

    def _strength(self, key: str) -> float:
        return float(self.cfg[key]) if self.features.strengths else 1.0

    def skin(self, delta: np.ndarray, blink_offset: np.ndarray | float = 0.0) -> np.ndarray:
        """delta [T, V_s, 3] -> absolute skin positions [T, V_s, 3]."""
        c, f, data = self.cfg, self.features, self.data
        t = len(delta)
        d = self._strength("skin_strength") * delta
        if f.eyelid:
            blink = np.broadcast_to(np.asarray(blink_offset, np.float64), (t,))
            eye_w = -float(c["eyelid_open_offset"]) + blink * float(c["blink_strength"])  # [T]
            d = d + eye_w[:, None, None] * data.eye_close_pose_delta
        if f.lip_open:
            d = d + float(c["lip_open_offset"]) * data.lip_open_pose_delta
        upper, self._upper = two_stage_smooth(d, self.alpha_upper, self._upper)
        lower, self._lower = two_stage_smooth(d, self.alpha_lower, self._lower)
        m = self.mask[None, :, None]
        return (data.neutral_skin + upper * self._strength("upper_face_strength") * (1.0 - m)
                + lower * self._strength("lower_face_strength") * m)

    def tongue(self, delta: np.ndarray) -> np.ndarray:
        """delta [T, V_t, 3] -> tongue positions [T, V_t, 3]."""
        out = self.data.neutral_tongue + delta * self._strength("tongue_strength")
        if self.features.tongue_offsets:
            out = out + np.array([0.0, self.cfg["tongue_height_offset"], self.cfg["tongue_depth_offset"]])
        return out

    def jaw(self, delta: np.ndarray) -> np.ndarray:
        """key-point deltas [T, J, 3] -> lower-teeth rigid transform, column-major 4x4 [T, 16]."""
        target = self.data.neutral_jaw + delta * self._strength("lower_teeth_strength")
        if self.features.teeth_offsets:
            target = target + np.array([0.0, self.cfg["lower_teeth_height_offset"], self.cfg["lower_teeth_depth_offset"]])
        return kabsch(self.data.neutral_jaw, target)

    def eyes(self, angles: np.ndarray) -> np.ndarray:
        """[T, 4] (r_x, r_y, l_x, l_y, degrees) -> [T, 6] (right xyz, left xyz), advancing the saccade clock."""
        c, f = self.cfg, self.features
        t = len(angles)
        out = np.zeros((t, EYES_OUT_SIZE))
        s = self._strength("eyeballs_strength")
        out[:, [0, 1, 3, 4]] = s * angles
        if f.eye_offsets:
            out[:, [0, 1, 3, 4]] += np.array([c["right_eye_rot_x_offset"], c["right_eye_rot_y_offset"],
                                              c["left_eye_rot_x_offset"], c["left_eye_rot_y_offset"]], np.float64)
        if f.saccades:
            table = self.data.saccade_rot_matrix
            n = len(table)
            live = np.empty(t)
            clock = self._live_time
            for i in range(t):  # the SDK accumulates and wraps liveTime frame by frame; keep its rounding
                live[i] = clock
                clock = (clock + self.dt * SACCADE_FPS) % n
            self._live_time = clock
            idx = np.floor(np.mod(float(c["eye_saccade_seed"]) + live, n)).astype(np.int64) % n
            sac = float(c["saccade_strength"]) * table[idx]  # [T, 2]
            out[:, [0, 1]] += sac
            out[:, [3, 4]] += sac
        return out

    def process(self, deltas: Deltas, blink_offset: np.ndarray | float = 0.0) -> dict[str, np.ndarray]:
        """One chunk of frames -> {"skin" [T,V_s,3], "tongue" [T,V_t,3], "jaw" [T,16], "eyes" [T,6]}."""
        return {"skin": self.skin(deltas.skin, blink_offset), "tongue": self.tongue(deltas.tongue),
                "jaw": self.jaw(deltas.jaw), "eyes": self.eyes(deltas.eyes)}


def flatten_result(result: Mapping[str, np.ndarray]) -> np.ndarray:
    """The SDK's per-frame result layout [T, 3V_s + 3V_t + 16 + 6]."""
    t = len(result["jaw"])
    return np.concatenate([result["skin"].reshape(t, -1), result["tongue"].reshape(t, -1), result["jaw"], result["eyes"]], 1)
