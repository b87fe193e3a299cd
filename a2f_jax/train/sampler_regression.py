"""Regression sampling (docs/training.md "Regression samples") with the dataset resident on the device.

The host only decides *which* frames a batch holds (clip, start frame, timeshift, noise choice) and
sends a few small integer/float arrays per step. All audio tracks, all targets and a bank of muted-shot
noise windows live on the device; `gather_batch` (traced inside the jitted step) cuts the 8320-sample
windows and interpolates the targets there, so a step moves kilobytes, not megabytes, host→device.

Every draw is a pure function of (seed, step): resuming at step k replays exactly the batches an
uninterrupted run would have seen.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from a2f_jax.data import audio as audio_io
from a2f_jax.train import batching
from a2f_jax.train.dataset import TrainingData
from a2f_jax.train.phonemes import EDGE_SECONDS, FEATURE_FPS, track_key

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000


@dataclasses.dataclass
class DeviceDataset:
    """Arrays kept on the device for the whole run."""

    audio: jax.Array  # [N_audio] all clip tracks back to back (float32, not normalised)
    targets: jax.Array  # [F_total, D] rows in global frame order (shot.start_global + frame)
    noise_bank: jax.Array  # [Nb, window] muted-shot noise windows (scale applied later)
    phonemes: jax.Array | None = None  # [N_ph + 1, Pmax] 50 fps phoneme tracks back to back (docs/training.md), or None


def _tree_flatten(d: DeviceDataset):
    return (d.audio, d.targets, d.noise_bank, d.phonemes), None


jax.tree_util.register_pytree_node(DeviceDataset, _tree_flatten, lambda _, c: DeviceDataset(*c))


def gather_phonemes(dev: DeviceDataset, idx: dict[str, jax.Array], window: int) -> jax.Array:
    """Phoneme targets [B, S, window, Pmax] (docs/training.md): rows ph_ofs + k of each clip's 50 fps track, one-hot
    [SIL] (ph_sil) outside it; muted clips have ph_len 0 (all [SIL]); unsupported ones ph_lang -1 (zeros)."""
    local = idx["ph_ofs"][..., None] + jnp.arange(window, dtype=jnp.int32)  # [B,S,W]
    valid = (local >= 0) & (local < idx["ph_len"][:, None, None])
    flat = jnp.clip(idx["ph_start"][:, None, None] + local, 0, dev.phonemes.shape[0] - 1)
    sil = jax.nn.one_hot(idx["ph_sil"], dev.phonemes.shape[1], dtype=dev.phonemes.dtype)[:, None, None, :]
    out = jnp.where(valid[..., None], dev.phonemes[flat], sil)
    return jnp.where((idx["ph_lang"] >= 0)[:, None, None, None], out, 0.0)


def gather_batch(dev: DeviceDataset, idx: dict[str, jax.Array], window: int, phoneme_window: int = 25) -> dict[str, jax.Array]:
    """Batch arrays from the device dataset and a host-made index (all shapes static).

    idx: track_start [B], track_len [B], sample_start [B,S], muted [B], noise_idx [B,S],
    noise_scale [B], tgt_i0/tgt_i1 [B,S], tgt_w [B,S] (+ ph_* when phonemes are on).
    Returns x [B,S,window], y [B,S,D] (+ phonemes [B,S,phoneme_window,Pmax]).
    """
    local = idx["sample_start"][..., None] + jnp.arange(window, dtype=jnp.int32)  # [B,S,W]
    valid = (local >= 0) & (local < idx["track_len"][:, None, None])
    flat = jnp.clip(idx["track_start"][:, None, None] + local, 0, dev.audio.shape[0] - 1)
    speech = jnp.where(valid, dev.audio[flat], 0.0)
    noise = dev.noise_bank[idx["noise_idx"]] * idx["noise_scale"][:, None, None]
    x = jnp.where(idx["muted"][:, None, None], noise, speech)
    w = idx["tgt_w"][..., None]
    y = (1.0 - w) * dev.targets[idx["tgt_i0"]] + w * dev.targets[idx["tgt_i1"]]
    out = {"x": x, "y": y}
    if dev.phonemes is not None and "ph_ofs" in idx:
        out["phonemes"] = gather_phonemes(dev, idx, phoneme_window)
    return out


@dataclasses.dataclass(frozen=True)
class RegressionSamplerSettings:
    """What the regression sampler reads from config_train (docs/config_reference.md)."""

    seq_len: int  # SEQ_LEN: frames per sample
    seq_stride: int  # SEQ_STRIDE
    window: int  # AUDIO_PARAMS.buffer_len: samples of audio per frame
    window_ofs: int  # AUDIO_PARAMS.buffer_ofs: samples of the window before the frame's time
    timeshift: float  # AUGMENT.timeshift: range of the random shift, in frames (training batches only)
    noise_type: str | None  # AUG_MUTED_AUDIO_NOISE_TYPE: "gauss", "mic" or None (silence)
    noise_scale: float  # AUG_MUTED_AUDIO_NOISE_SCALE
    local_scale_range: tuple[float, float]  # AUG_MUTED_AUDIO_NOISE_LOCAL_SCALE_RANGE
    audio_method: str  # AUDIO_PREPROC_METHOD

    @classmethod
    def from_train_config(cls, train: Any) -> "RegressionSamplerSettings":
        lo, hi = train.AUG_MUTED_AUDIO_NOISE_LOCAL_SCALE_RANGE
        return cls(
            seq_len=int(train.SEQ_LEN),
            seq_stride=int(train.SEQ_STRIDE),
            window=int(train.AUDIO_PARAMS["buffer_len"]),
            window_ofs=int(train.AUDIO_PARAMS["buffer_ofs"]),
            timeshift=float(train.AUGMENT["timeshift"]),
            noise_type=train.AUG_MUTED_AUDIO_NOISE_TYPE,
            noise_scale=float(train.AUG_MUTED_AUDIO_NOISE_SCALE),
            local_scale_range=(float(lo), float(hi)),
            audio_method=str(train.AUDIO_PREPROC_METHOD),
        )


class RegressionSampler:
    """Maps a global step to the sample indices, timeshifts and noise draws of its batch."""

    def __init__(self, data: TrainingData, settings: RegressionSamplerSettings, batch_size: int, seed: int,
                 clips: list | None = None, shuffle: bool = True, noise_bank_size: int = 512,
                 phonemes: Any | None = None):
        """phonemes: a `phonemes.PhonemeSetup` to add phoneme windows (docs/training.md) to every batch, or None."""

        self.data = data
        self.settings = settings
        self.clips = list(data.clips if clips is None else clips)
        self.seq_len = settings.seq_len
        self.seq_stride = settings.seq_stride
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.window = settings.window
        self.window_ofs = settings.window_ofs
        self.timeshift = settings.timeshift if shuffle else 0.0
        self.local_scale_range = settings.local_scale_range
        method = settings.audio_method

        counts = [max((c.length - self.seq_len) // self.seq_stride + 1, 0) for c in self.clips]
        self.cum = np.cumsum(counts)
        self.num_samples = int(self.cum[-1]) if len(self.cum) else 0
        if self.num_samples == 0:
            raise ValueError(f"no training samples: every clip is shorter than SEQ_LEN={self.seq_len}")

        # Audio tracks: one per distinct audio file, back to back.
        tracks: dict[str, int] = {}
        pieces, offset = [], 0
        self.clip_track = np.zeros((len(self.clips), 2), np.int64)  # (start, length)
        self.clip_norm = np.ones(len(self.clips), np.float32)
        norms: dict[str, float] = {}
        for ci, clip in enumerate(self.clips):
            if clip.muted:
                continue
            key = str(clip.audio_path)
            if key not in tracks:
                track = audio_io.load_audio(clip.audio_path, method=method)
                tracks[key] = offset
                pieces.append(track)
                norms[key] = audio_io.norm_factor(track)
                offset += len(track)
            self.clip_track[ci] = (tracks[key], len(pieces[list(tracks).index(key)]))
            self.clip_norm[ci] = norms[key]
        audio = np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(1, np.float32)

        targets = np.concatenate(data.targets, axis=0).astype(np.float32)
        noise_type, noise_scale = settings.noise_type, settings.noise_scale
        bank_rng = np.random.default_rng([self.seed, 0x6E6F697365])
        if noise_type is None:
            bank = np.zeros((1, self.window), np.float32)
        else:
            bank = np.stack([audio_io.muted_noise(noise_type, self.window, noise_scale, bank_rng) for _ in range(noise_bank_size)])
        self.phonemes = phonemes
        ph_data = self._pack_phonemes() if phonemes is not None else None
        self.host_bytes = audio.nbytes + targets.nbytes + bank.nbytes + (0 if ph_data is None else ph_data.nbytes)
        self.device = DeviceDataset(jnp.asarray(audio), jnp.asarray(targets), jnp.asarray(bank.astype(np.float32)),
                                    None if ph_data is None else jnp.asarray(ph_data))
        self.noise_bank_size = len(bank)
        self.shot_lengths = np.array([s.length for s in data.shots])
        self.shot_starts = np.array([s.start_global for s in data.shots])
        self.shot_fps = np.array([s.fps for s in data.shots])
        self.emotions = np.stack([data.emotion_vector(i) for i in range(len(data.shots))]) if data.shots else np.zeros((0, 0))
        self.emotion_names = [s.emotion for s in data.shots]

    def _pack_phonemes(self) -> np.ndarray:
        """All phoneme tracks of the clips back to back, zero-padded to Pmax; per-clip (start, len, n50,
        lang index, [SIL] index) in `self.clip_ph`. Muted: len 0 with the first language's [SIL]."""
        ph = self.phonemes
        pmax = ph.max_phonemes
        starts: dict[tuple, int] = {}
        pieces, offset = [], 0
        self.clip_ph = np.zeros((len(self.clips), 5), np.int64)
        self.clip_ph[:, 3] = -1
        for ci, clip in enumerate(self.clips):
            if clip.muted:
                self.clip_ph[ci] = (0, 0, 1, 0, ph.sil_index(ph.muted_lang))
                continue
            track = ph.track(clip)
            if track is None:  # language not enabled: "unsupported", all-zero target
                continue
            key = track_key(clip)
            if key not in starts:
                starts[key] = offset
                pieces.append(np.pad(track, [(0, 0), (0, pmax - track.shape[1])]))
                offset += len(track)
            self.clip_ph[ci] = (starts[key], len(track), len(track), ph.langs.index(clip.lang), ph.sil_index(clip.lang))
        pieces.append(np.zeros((1, pmax), np.float32))  # never empty
        return np.concatenate(pieces).astype(np.float32)

    @property
    def batches_per_epoch(self) -> int:
        return batching.batches_per_epoch(self.num_samples, self.batch_size)

    def sample_ids(self, step: int) -> np.ndarray:
        """Global sample indices of batch `step` (see `batching.batch_ids`)."""
        return batching.batch_ids(self.seed, step, self.num_samples, self.batch_size, self.shuffle)

    def batch_index(self, step: int, ids: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Host-side index arrays of one batch (small; see `gather_batch`)."""
        ids = self.sample_ids(step) if ids is None else np.asarray(ids)
        rng = np.random.default_rng([self.seed, 1, int(step)])
        B, S = len(ids), self.seq_len
        clip_idx = np.searchsorted(self.cum, ids + 1)
        prev = np.where(clip_idx > 0, self.cum[np.maximum(clip_idx - 1, 0)], 0)
        starts = (ids - prev) * self.seq_stride
        shift = (rng.uniform(size=B) - 0.5) * self.timeshift  # frames, one per sample
        local_scale = rng.uniform(*self.local_scale_range, size=B)
        noise_idx = rng.integers(0, self.noise_bank_size, size=(B, S))

        first = np.array([self.clips[c].first for c in clip_idx])
        shot = np.array([self.clips[c].shot_index for c in clip_idx])
        muted = np.array([self.clips[c].muted for c in clip_idx])
        offset = np.array([self.clips[c].offset_frames for c in clip_idx])
        frames = first[:, None] + starts[:, None] + np.arange(S)[None]  # [B,S] frame within shot
        fps = self.shot_fps[shot][:, None]
        t = (frames + 0.5) / fps + (shift[:, None] + offset[:, None]) / fps
        sample_start = np.array([[int(round(v * SAMPLE_RATE)) for v in row] for row in t]) - self.window_ofs

        last = (self.shot_lengths[shot] - 1)[:, None]
        neg = shift[:, None] < 0
        i0 = np.clip(frames - neg.astype(np.int64), 0, last)
        i1 = np.clip(np.where(neg, frames, frames + 1), 0, last)
        w = np.where(neg, 1.0 + shift[:, None], shift[:, None]) * np.ones((1, S))
        base = self.shot_starts[shot][:, None]
        out = {
            "track_start": self.clip_track[clip_idx, 0].astype(np.int32),
            "track_len": self.clip_track[clip_idx, 1].astype(np.int32),
            "sample_start": sample_start.astype(np.int32),
            "muted": muted,
            "noise_idx": noise_idx.astype(np.int32),
            "noise_scale": np.where(muted, local_scale, 0.0).astype(np.float32),
            "tgt_i0": (base + i0).astype(np.int32),
            "tgt_i1": (base + i1).astype(np.int32),
            "tgt_w": w.astype(np.float32),
            "global_frame_idx": (base + frames).astype(np.int32),
            "explicit_emo": np.repeat(self.emotions[shot][:, None], S, axis=1).astype(np.float32),
            "x_norm_factor": np.where(muted, 1.0, self.clip_norm[clip_idx]).astype(np.float32),
            "shot_index": shot.astype(np.int32),
        }
        if self.phonemes is not None:
            out.update(self._phoneme_index(clip_idx, t))
        return out

    def _phoneme_index(self, clip_idx: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Window offsets floor(t·r') − W//2 with the audio's time t (timeshift and offset included)."""
        cp = self.clip_ph[clip_idx]
        n = cp[:, 2].astype(np.float64)[:, None]
        rate = n / (n / FEATURE_FPS + EDGE_SECONDS)
        ofs = np.floor(t * rate).astype(np.int64) - self.phonemes.window // 2
        return {
            "ph_ofs": ofs.astype(np.int32),
            "ph_start": cp[:, 0].astype(np.int32),
            "ph_len": cp[:, 1].astype(np.int32),
            "ph_lang": cp[:, 3].astype(np.int32),
            "ph_sil": cp[:, 4].astype(np.int32),
        }
