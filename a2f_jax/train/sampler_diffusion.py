"""Diffusion sampling (spec_networks_training §4.5), with batch > 1 by padding to length buckets.

One item per clip: the clip's target resampled to TARGET_FPS (integer factor, linear, align_corners
False), its audio (inclusive sample range, so length + 1), pitch shift ±2 semitones with p = 0.2 for
real clips, mic noise for muted clips, then a random subsegment of SUBSEGMENT_MIN..MAX frames.

Batch > 1 (beyond the original): items of one batch are zero-padded to the smallest bucket of
LENGTH_BUCKETS that holds the longest, with a frame mask; XLA compiles one program per bucket.
BATCH_SIZE = 1 keeps the original's behaviour (the item's own length, no padding).
Every draw is a pure function of (seed, step), so a resumed run replays the same batches.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from a2f_jax.train import batching
from a2f_jax.train.dataset import Clip, TrainingData

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000


def resample_target(y: np.ndarray, factor: int) -> np.ndarray:
    """Linear upsampling by an integer factor as torch's interpolate(align_corners=False): [T, D] -> [f·T, D]."""
    if factor == 1:
        return y
    n = len(y)
    src = (np.arange(factor * n) + 0.5) / factor - 0.5
    src = np.clip(src, 0, n - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = (src - lo)[:, None].astype(np.float32)
    return (1 - w) * y[lo] + w * y[hi]


def fps_factor(target_fps: float, cache_fps: float) -> int:
    f = target_fps / cache_fps
    k = max(int(round(f)), 1)
    if abs(f - k) > 1e-6:
        log.warning("TARGET_FPS %.3f is not an integer multiple of the cache fps %.3f; using factor %d", target_fps, cache_fps, k)
    return k


def bucket_for(length: int, buckets: list[int]) -> int:
    for b in sorted(buckets):
        if length <= b:
            return int(b)
    return int(length)  # longer than every bucket: its own length (one more compiled program)


class DiffusionSampler:
    """Maps a global step to a batch {audio [B, N], y [B, T, D], mask [B, T], actor [B, A], emotion [B, E]}."""

    def __init__(self, data: TrainingData, train_cfg: Any, dataset_cfg: Any, batch_size: int, seed: int,
                 clips: list[Clip] | None = None, augment: bool = True):
        from a2f_jax.data import audio as audio_io

        self.audio_io = audio_io
        self.data = data
        self.clips = list(data.clips if clips is None else clips)
        if not self.clips:
            raise ValueError("no diffusion training clips")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.augment = augment
        self.target_fps = float(train_cfg.get("TARGET_FPS", 60.0))
        self.random_subsegment = bool(train_cfg.get("TRAIN_ON_RANDOM_SUBSEGMENT", True)) and augment
        self.sub_min = int(train_cfg.get("SUBSEGMENT_MIN_FRAME", 30))
        self.sub_max = int(train_cfg.get("SUBSEGMENT_MAX_FRAME", 600))
        self.buckets = [int(b) for b in (train_cfg.get("LENGTH_BUCKETS", None) or [120, 240, 360, 600])]
        aug = dict(train_cfg.get("AUGMENT", None) or {})
        ps = dict(aug.get("pitch_shift", None) or {})
        self.pitch_p = float(ps.get("p", 0.0)) if augment else 0.0
        self.pitch_range = (float(ps.get("min_semitones", -2.0)), float(ps.get("max_semitones", 2.0)))
        self.noise_type = train_cfg.get("AUG_MUTED_AUDIO_NOISE_TYPE", "mic")
        self.noise_scale = float(train_cfg.get("AUG_MUTED_AUDIO_NOISE_SCALE", 0.1))
        lo, hi = train_cfg.get("AUG_MUTED_AUDIO_NOISE_LOCAL_SCALE_RANGE", (0.0, 1.0))
        self.local_scale_range = (float(lo), float(hi))
        self.method = train_cfg.get("AUDIO_PREPROC_METHOD", "w2v")
        self._tracks: dict[str, np.ndarray] = {}
        self.actor_vecs = {a: np.eye(len(data.actors), dtype=np.float32)[i] for i, a in enumerate(data.actors)}

    @property
    def batches_per_epoch(self) -> int:
        return batching.batches_per_epoch(len(self.clips), self.batch_size)

    def _track(self, clip: Clip) -> np.ndarray:
        key = str(clip.audio_path)
        if key not in self._tracks:
            self._tracks[key] = self.audio_io.load_audio(clip.audio_path, method=self.method)
        return self._tracks[key]

    def clip_item(self, clip: Clip, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        """(audio [N], target [T, D]) of a whole clip at TARGET_FPS, with augmentation when rng is given."""
        shot = self.data.shots[clip.shot_index]
        f = fps_factor(self.target_fps, shot.fps)
        y = resample_target(self.data.targets[clip.shot_index][clip.first:clip.last + 1], f)
        t0 = clip.first / shot.fps + clip.offset_frames / shot.fps
        t1 = (clip.last + 1) / shot.fps + clip.offset_frames / shot.fps
        s0, s1 = int(round(t0 * SAMPLE_RATE)), int(round(t1 * SAMPLE_RATE))
        n = s1 - s0 + 1  # inclusive range, as the original
        if clip.muted:
            scale = self.noise_scale * (rng.uniform(*self.local_scale_range) if rng is not None else 1.0)
            if self.noise_type is None:
                return np.zeros(n, np.float32), y
            r = rng if rng is not None else np.random.default_rng(0)
            return self.audio_io.muted_noise(self.noise_type, n, scale, r).astype(np.float32), y
        track = self._track(clip)
        audio = np.zeros(n, np.float32)
        a, b = max(s0, 0), min(s1 + 1, len(track))
        if a < b:
            audio[a - s0:b - s0] = track[a:b]
        if rng is not None and self.pitch_p > 0 and rng.uniform() < self.pitch_p:
            import librosa

            steps = rng.uniform(*self.pitch_range)
            audio = librosa.effects.pitch_shift(audio, sr=SAMPLE_RATE, n_steps=steps).astype(np.float32)
        return audio, y

    def subsegment(self, audio: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        T = len(y)
        n = min(int(rng.integers(self.sub_min, self.sub_max + 1)), T)
        start = int(rng.integers(0, T - n + 1))
        a0 = int(start * SAMPLE_RATE / self.target_fps)
        length = int(n / self.target_fps * SAMPLE_RATE)
        seg = np.zeros(length, np.float32)
        piece = audio[a0:a0 + length]
        seg[:len(piece)] = piece
        return seg, y[start:start + n]

    def clip_ids(self, step: int) -> np.ndarray:
        return batching.batch_ids(self.seed, step, len(self.clips), self.batch_size, self.augment)

    def batch(self, step: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, 2, int(step)])
        items = []
        for ci in self.clip_ids(step):
            clip = self.clips[int(ci)]
            audio, y = self.clip_item(clip, rng if self.augment else None)
            if self.random_subsegment:
                audio, y = self.subsegment(audio, y, rng)
            items.append((clip, audio, y))
        return self.collate(items, rng)

    def collate(self, items: list, rng: np.random.Generator) -> dict[str, np.ndarray]:
        longest = max(len(y) for _, _, y in items)
        T = longest if self.batch_size == 1 else bucket_for(longest, self.buckets)
        N = int(round(T / self.target_fps * SAMPLE_RATE)) if self.batch_size > 1 else max(len(a) for _, a, _ in items)
        D = items[0][2].shape[1]
        out = {
            "audio": np.zeros((len(items), N), np.float32),
            "y": np.zeros((len(items), T, D), np.float32),
            "mask": np.zeros((len(items), T), np.float32),
            "actor": np.stack([self.actor_vecs[c.actor] for c, _, _ in items]),
            "emotion": np.stack([self.data.emotion_vector(c.shot_index) for c, _, _ in items]),
            "shot_index": np.array([c.shot_index for c, _, _ in items], np.int32),
            "audio_len": np.array([min(len(a), N) for _, a, _ in items], np.int32),
        }
        for b, (_, audio, y) in enumerate(items):
            out["audio"][b, :min(len(audio), N)] = audio[:N]
            out["y"][b, :len(y)] = y
            out["mask"][b, :len(y)] = 1.0
        return out
