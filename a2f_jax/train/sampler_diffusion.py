"""Diffusion sampling (docs/training.md "Diffusion samples"), with batch > 1 by padding to length buckets.

One item per clip: the clip's target resampled to TARGET_FPS (integer factor, linear, align_corners
False), its audio (inclusive sample range, so length + 1), pitch shift ±2 semitones with p = 0.2 for
real clips, mic noise for muted clips, then a random subsegment of SUBSEGMENT_MIN..MAX frames.

Batch > 1 (beyond the original): items of one batch are zero-padded to the smallest bucket of
LENGTH_BUCKETS that holds the longest, with a frame mask; XLA compiles one program per bucket.
BATCH_SIZE = 1 keeps the original's behaviour (the item's own length, no padding).
Every draw is a pure function of (seed, step), so a resumed run replays the same batches.

A batch is built in two passes. `plan` makes every random draw of the step from one sequential stream
(clip ids, pitch shifts, muted-clip noise, subsegments) and knows each item's length without touching
audio or targets; the rows asked for are then built from their plans. So each process of a multi-host
run builds only its own rows (`batch(step, rows)`), padded to the bucket of the *global* batch: exactly
those rows of the batch a single process builds. Targets are resampled over the subsegment's frames only.
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import Executor
from typing import Any, Sequence

import numpy as np

from a2f_jax.data import audio as audio_io
from a2f_jax.train import batching
from a2f_jax.train.dataset import Clip, TrainingData

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000


def resample_target(y: np.ndarray, factor: int) -> np.ndarray:
    """Linear upsampling by an integer factor as torch's interpolate(align_corners=False): [T, D] -> [f·T, D]."""
    if factor == 1:
        return y
    return resample_target_range(y, factor, 0, factor * len(y))


def resample_target_range(y: np.ndarray, factor: int, start: int, count: int, out: np.ndarray | None = None) -> np.ndarray:
    """Frames `start .. start + count - 1` of `resample_target(y, factor)`, bit for bit, computing only those:
    [T, D] -> [count, D]. With `out` ([count, D]) they are written there, with a single [count, D] temporary."""
    if factor == 1:
        seg = y[start:start + count]
        if out is None:
            return seg
        out[...] = seg
        return out
    n = len(y)
    src = (np.arange(start, start + count) + 0.5) / factor - 0.5
    src = np.clip(src, 0, n - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = (src - lo)[:, None].astype(np.float32)
    if out is None or out.dtype != np.result_type(y.dtype, w.dtype):
        res = (1 - w) * y[lo] + w * y[hi]
        if out is not None:
            out[...] = res
        return res if out is None else out
    # The same products and sum as above (IEEE products commute), computed in place.
    np.take(y, lo, axis=0, out=out)
    out *= 1 - w
    tmp = np.take(y, hi, axis=0)
    tmp *= w
    out += tmp
    return out


def fps_factor(target_fps: float, cache_fps: float) -> int:
    f = target_fps / cache_fps
    k = max(int(round(f)), 1)
    if abs(f - k) > 1e-6:
        log.warning("TARGET_FPS %.3f is not an integer multiple of the cache fps %.3f; using factor %d", target_fps, cache_fps, k)
    return k


def bucket_for(length: int, buckets: Sequence[int]) -> int:
    for b in sorted(buckets):
        if length <= b:
            return int(b)
    return int(length)  # longer than every bucket: its own length (one more compiled program)


def sampling_buckets(buckets: Sequence[int]) -> tuple[int, ...]:
    """Padded lengths of offline sampling (validation): LENGTH_BUCKETS and two doublings of its largest, so
    clips somewhat longer than the training items still share a compiled program."""
    largest = max(int(b) for b in buckets)
    return tuple(sorted(int(b) for b in buckets)) + (2 * largest, 4 * largest)


@dataclasses.dataclass(frozen=True)
class DiffusionSamplerSettings:
    """What the diffusion sampler reads from config_train (docs/config_reference.md)."""

    target_fps: float  # TARGET_FPS
    random_subsegment: bool  # TRAIN_ON_RANDOM_SUBSEGMENT (training batches only)
    subsegment_min: int  # SUBSEGMENT_MIN_FRAME
    subsegment_max: int  # SUBSEGMENT_MAX_FRAME
    length_buckets: tuple[int, ...]  # LENGTH_BUCKETS: padded lengths of a batch > 1
    pitch_shift_p: float  # AUGMENT.pitch_shift.p
    pitch_shift_range: tuple[float, float]  # AUGMENT.pitch_shift.min_semitones, max_semitones
    noise_type: str | None  # AUG_MUTED_AUDIO_NOISE_TYPE: "gauss", "mic" or None (silence)
    noise_scale: float  # AUG_MUTED_AUDIO_NOISE_SCALE
    local_scale_range: tuple[float, float]  # AUG_MUTED_AUDIO_NOISE_LOCAL_SCALE_RANGE
    audio_method: str  # AUDIO_PREPROC_METHOD

    @classmethod
    def from_train_config(cls, train: Any) -> "DiffusionSamplerSettings":
        pitch = train.AUGMENT["pitch_shift"]
        lo, hi = train.AUG_MUTED_AUDIO_NOISE_LOCAL_SCALE_RANGE
        return cls(
            target_fps=float(train.TARGET_FPS),
            random_subsegment=bool(train.TRAIN_ON_RANDOM_SUBSEGMENT),
            subsegment_min=int(train.SUBSEGMENT_MIN_FRAME),
            subsegment_max=int(train.SUBSEGMENT_MAX_FRAME),
            length_buckets=tuple(int(b) for b in train.LENGTH_BUCKETS),
            pitch_shift_p=float(pitch["p"]),
            pitch_shift_range=(float(pitch["min_semitones"]), float(pitch["max_semitones"])),
            noise_type=train.AUG_MUTED_AUDIO_NOISE_TYPE,
            noise_scale=float(train.AUG_MUTED_AUDIO_NOISE_SCALE),
            local_scale_range=(float(lo), float(hi)),
            audio_method=str(train.AUDIO_PREPROC_METHOD),
        )


@dataclasses.dataclass(frozen=True)
class ItemPlan:
    """Every random draw of one batch item and its lengths: enough to build the item, or to pad its batch."""

    clip: Clip
    start: int  # first frame of the item among the clip's TARGET_FPS frames
    frames: int  # frames at TARGET_FPS
    audio_start: int  # first sample of the item in the clip's audio
    audio_samples: int | None  # samples of the item's audio; None: the whole clip's (no subsegment)
    pitch_steps: float | None = None  # semitones of the pitch shift; None: none
    noise: np.ndarray | None = dataclasses.field(default=None, repr=False)  # muted clip: its noise [N]


class DiffusionSampler:
    """Maps a global step to a batch {audio [B, N], y [B, T, D], mask [B, T], actor [B, A], emotion [B, E]}."""

    def __init__(self, data: TrainingData, settings: DiffusionSamplerSettings, batch_size: int, seed: int,
                 clips: list[Clip] | None = None, augment: bool = True):

        self.audio_io = audio_io
        self.data = data
        self.settings = settings
        self.clips = list(data.clips if clips is None else clips)
        if not self.clips:
            raise ValueError("no diffusion training clips")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.augment = augment
        self.target_fps = settings.target_fps
        self.random_subsegment = settings.random_subsegment and augment
        self.sub_min = settings.subsegment_min
        self.sub_max = settings.subsegment_max
        self.buckets = list(settings.length_buckets)
        self.pitch_p = settings.pitch_shift_p if augment else 0.0
        self.pitch_range = settings.pitch_shift_range
        self.noise_type = settings.noise_type
        self.noise_scale = settings.noise_scale
        self.local_scale_range = settings.local_scale_range
        self.method = settings.audio_method
        self._tracks: dict[str, np.ndarray] = {}
        self._factors: dict[float, int] = {}
        self.actor_vecs = {a: np.eye(len(data.actors), dtype=np.float32)[i] for i, a in enumerate(data.actors)}

    @property
    def batches_per_epoch(self) -> int:
        return batching.batches_per_epoch(len(self.clips), self.batch_size)

    def _track(self, clip: Clip) -> np.ndarray:
        key = str(clip.audio_path)
        if key not in self._tracks:
            self._tracks[key] = self.audio_io.load_audio(clip.audio_path, method=self.method)
        return self._tracks[key]

    def _clip_span(self, clip: Clip) -> tuple[int, int, int, int]:
        """(fps factor, frames at TARGET_FPS, first audio sample, samples) of a whole clip; the samples are an
        inclusive range (one more than the span), as the original."""
        shot = self.data.shots[clip.shot_index]
        if shot.fps not in self._factors:  # once per cache fps (a non-integer ratio is warned about once)
            self._factors[shot.fps] = fps_factor(self.target_fps, shot.fps)
        f = self._factors[shot.fps]
        t0 = clip.first / shot.fps + clip.offset_frames / shot.fps
        t1 = (clip.last + 1) / shot.fps + clip.offset_frames / shot.fps
        s0, s1 = int(round(t0 * SAMPLE_RATE)), int(round(t1 * SAMPLE_RATE))
        return f, f * (clip.last - clip.first + 1), s0, s1 - s0 + 1

    def _draw_subsegment(self, frames: int, rng: np.random.Generator) -> tuple[int, int]:
        """(start, length) of a random subsegment of a `frames`-long item."""
        n = min(int(rng.integers(self.sub_min, self.sub_max + 1)), frames)
        return int(rng.integers(0, frames - n + 1)), n

    def plan_item(self, clip: Clip, rng: np.random.Generator | None, subsegment: bool) -> ItemPlan:
        """The draws of one item in the order it consumes `rng`: muted-clip noise or pitch shift, then the
        subsegment (rng None: no augmentation)."""
        _, frames, _, samples = self._clip_span(clip)
        noise, steps = None, None
        if clip.muted:
            scale = self.noise_scale * (rng.uniform(*self.local_scale_range) if rng is not None else 1.0)
            if self.noise_type is None:
                noise = np.zeros(samples, np.float32)
            else:
                r = rng if rng is not None else np.random.default_rng(0)
                noise = self.audio_io.muted_noise(self.noise_type, samples, scale, r).astype(np.float32)
        elif rng is not None and self.pitch_p > 0 and rng.uniform() < self.pitch_p:
            steps = float(rng.uniform(*self.pitch_range))
        if not subsegment:
            return ItemPlan(clip, 0, frames, 0, None, steps, noise)
        start, n = self._draw_subsegment(frames, rng)
        return ItemPlan(clip, start, n, int(start * SAMPLE_RATE / self.target_fps),
                        int(n / self.target_fps * SAMPLE_RATE), steps, noise)

    def plan(self, step: int) -> list[ItemPlan]:
        """Every item of batch `step`, drawn from one stream seeded by (seed, step). Cheap (no audio or targets
        are read; muted clips' noise is drawn), so every process plans the whole global batch."""
        rng = np.random.default_rng([self.seed, 2, int(step)])
        r = rng if self.augment else None
        return [self.plan_item(self.clips[int(ci)], r, self.random_subsegment) for ci in self.clip_ids(step)]

    def _clip_audio(self, plan: ItemPlan) -> np.ndarray:
        """The whole clip's audio [N] (a muted clip: its noise), pitch-shifted as planned."""
        if plan.noise is not None:
            return plan.noise
        _, _, s0, n = self._clip_span(plan.clip)
        track = self._track(plan.clip)
        audio = np.zeros(n, np.float32)
        a, b = max(s0, 0), min(s0 + n, len(track))
        if a < b:
            audio[a - s0:b - s0] = track[a:b]
        if plan.pitch_steps is not None:
            import librosa  # heavy (numba warm-up, seconds): only when a pitch shift is drawn

            audio = librosa.effects.pitch_shift(audio, sr=SAMPLE_RATE, n_steps=plan.pitch_steps).astype(np.float32)
        return audio

    def item_audio(self, plan: ItemPlan) -> np.ndarray:
        """The item's audio: [plan.audio_samples], zero past the clip's end (or the whole clip's)."""
        audio = self._clip_audio(plan)
        if plan.audio_samples is None:
            return audio
        seg = np.zeros(plan.audio_samples, np.float32)
        piece = audio[plan.audio_start:plan.audio_start + plan.audio_samples]
        seg[:len(piece)] = piece
        return seg

    def item_target(self, plan: ItemPlan, out: np.ndarray | None = None) -> np.ndarray:
        """The item's target [plan.frames, D] at TARGET_FPS (written into `out` when given)."""
        clip = plan.clip
        f = self._clip_span(clip)[0]
        src = self.data.targets[clip.shot_index][clip.first:clip.last + 1]
        return resample_target_range(src, f, plan.start, plan.frames, out)

    def clip_item(self, clip: Clip, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        """(audio [N], target [T, D]) of a whole clip at TARGET_FPS, with augmentation when rng is given."""
        plan = self.plan_item(clip, rng, subsegment=False)
        return self._clip_audio(plan), self.item_target(plan)

    def subsegment(self, audio: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A random subsegment of an item: audio from sample int(start·16000/fps), int(n/fps·16000) long."""
        start, n = self._draw_subsegment(len(y), rng)
        a0 = int(start * SAMPLE_RATE / self.target_fps)
        length = int(n / self.target_fps * SAMPLE_RATE)
        seg = np.zeros(length, np.float32)
        piece = audio[a0:a0 + length]
        seg[:len(piece)] = piece
        return seg, y[start:start + n]

    def clip_ids(self, step: int) -> np.ndarray:
        return batching.batch_ids(self.seed, step, len(self.clips), self.batch_size, self.augment)

    def padded_length(self, plans: list[ItemPlan]) -> int:
        """Frames T of a batch: the item's own length at batch 1, else the bucket of the longest item."""
        longest = max(p.frames for p in plans)
        return longest if self.batch_size == 1 else bucket_for(longest, self.buckets)

    def batch(self, step: int, rows: slice | None = None, pool: Executor | None = None) -> dict[str, np.ndarray]:
        """Batch `step`: {audio [B, N], y [B, T, D], mask [B, T], actor [B, A], emotion [B, E], shot_index [B],
        audio_len [B]}. With `rows` (a slice of the global batch, e.g. a process's own rows) only those rows,
        padded to the global batch's T and N: equal to those rows of the whole batch. With `pool` the rows'
        audio and targets are built on its threads (NumPy, soxr and FFTs release the GIL); same result."""
        plans = self.plan(step)
        mine = plans if rows is None else plans[rows]
        if not mine:
            raise ValueError(f"rows {rows} of a batch of {len(plans)} hold no item")
        each = pool.map if pool is not None and len(mine) > 1 else map
        T = self.padded_length(plans)
        audios = list(each(self.item_audio, mine))
        # Batch 1 (the original's behaviour): the item's own length. Its one row is the whole batch.
        N = int(round(T / self.target_fps * SAMPLE_RATE)) if self.batch_size > 1 else max(len(a) for a in audios)
        clips = [p.clip for p in mine]
        D = self.data.targets[clips[0].shot_index].shape[1]
        out = {
            "audio": np.zeros((len(mine), N), np.float32),
            "y": np.zeros((len(mine), T, D), np.float32),
            "mask": np.zeros((len(mine), T), np.float32),
            "actor": np.stack([self.actor_vecs[c.actor] for c in clips]),
            "emotion": np.stack([self.data.emotion_vector(c.shot_index) for c in clips]),
            "shot_index": np.array([c.shot_index for c in clips], np.int32),
            "audio_len": np.array([min(len(a), N) for a in audios], np.int32),
        }
        for b, (p, audio) in enumerate(zip(mine, audios)):
            out["audio"][b, :min(len(audio), N)] = audio[:N]
            out["mask"][b, :p.frames] = 1.0
        # Targets straight into the batch (no per-item copy): [frames, D] rows of y.
        list(each(lambda b: self.item_target(mine[b], out["y"][b, :mine[b].frames]), range(len(mine))))
        return out
