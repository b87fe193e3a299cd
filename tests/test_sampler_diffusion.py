"""Diffusion sampling: 30 -> 60 fps resampling, inclusive audio range, subsegments, buckets, determinism."""

import numpy as np
import pytest
import soundfile as sf
from ml_collections import ConfigDict

from a2f_jax.config import deep_merge, train_diffusion
from a2f_jax.train.dataset import Clip, Shot, TrainingData
from a2f_jax.train.sampler_diffusion import (
    DiffusionSampler,
    DiffusionSamplerSettings,
    bucket_for,
    resample_target,
    resample_target_range,
    sampling_buckets,
)

SR = 16000
FPS = 30.0
D = 5


def torch_linear_upsample(y: np.ndarray, out_len: int) -> np.ndarray:
    """NumPy transcription of torch's F.interpolate(mode="linear", align_corners=False) on [T, D]."""
    n = len(y)
    scale = n / out_len
    out = np.empty((out_len, y.shape[1]), np.float64)
    for j in range(out_len):
        src = max(scale * (j + 0.5) - 0.5, 0.0)  # torch clamps negative source coordinates to 0
        i0 = min(int(np.floor(src)), n - 1)
        i1 = i0 + 1 if i0 < n - 1 else i0
        lam = src - i0
        out[j] = (1 - lam) * y[i0] + lam * y[i1]
    return out


def test_resample_matches_torch_linear():
    y = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    for factor in (2, 3):
        np.testing.assert_allclose(resample_target(y, factor), torch_linear_upsample(y, factor * 7), atol=1e-6)
    assert resample_target(y, 1) is y


def test_bucket_for():
    assert bucket_for(1, [240, 120]) == 120
    assert bucket_for(120, [120, 240]) == 120
    assert bucket_for(121, [120, 240]) == 240
    assert bucket_for(300, [120, 240]) == 300  # longer than every bucket: its own length


def test_settings_from_the_base_and_sampling_buckets():
    """The settings read the base's keys (LENGTH_BUCKETS the one bucket list); offline sampling adds two
    doublings of the largest bucket (the base: 1200 and 2400 frames)."""
    settings = DiffusionSamplerSettings.from_train_config(ConfigDict(train_diffusion.base_dict()))
    assert settings.length_buckets == (120, 240, 360, 600) and settings.target_fps == 60.0
    assert settings.pitch_shift_p == 0.2 and settings.pitch_shift_range == (-2.0, 2.0)
    assert (settings.subsegment_min, settings.subsegment_max, settings.noise_type) == (30, 600, "mic")
    assert sampling_buckets(settings.length_buckets) == (120, 240, 360, 600, 1200, 2400)
    assert sampling_buckets([32, 16]) == (16, 32, 64, 128)


def _data(tmp_path, lengths=(40, 25)):
    """Two 30 fps shots whose targets encode (shot, frame) and whose audio is a ramp of the sample index."""
    shots, clips, targets = [], [], []
    start = 0
    for si, n in enumerate(lengths):
        name = f"s{si}"
        samples = int(round(n / FPS * SR)) + 400
        path = tmp_path / f"{name}.wav"
        sf.write(path, (np.arange(samples) / 2**20 + si).astype(np.float32), SR, subtype="FLOAT")
        shots.append(Shot("a", name, n, FPS, "joy" if si else "neutral", start))
        start += n
        clips.append(Clip("a", name, 2, n - 3, "a", "en", path, 0.0, si))
        frames = np.arange(n, dtype=np.float32)
        targets.append(np.stack([frames + 1000 * si + k for k in range(D)], axis=1))
    return TrainingData(actors=["a"], artifacts={}, shots=shots, clips=clips, channels=["skin_pose"],
                        channel_sizes={"skin_pose": D}, explicit_emotions=["joy"], targets=targets, shot_fps=FPS)


def _cfg(**kw):
    """The diffusion train base with short subsegments and buckets, no pitch shift, then `kw` (merged)."""
    small = {"TARGET_FPS": 60.0, "TRAIN_ON_RANDOM_SUBSEGMENT": True, "SUBSEGMENT_MIN_FRAME": 10,
             "SUBSEGMENT_MAX_FRAME": 30, "LENGTH_BUCKETS": [16, 32], "AUGMENT": {"pitch_shift": {"p": 0.0}},
             "AUDIO_PREPROC_METHOD": "w2v"}
    return ConfigDict(deep_merge(deep_merge(train_diffusion.base_dict(), small), kw))


@pytest.fixture()
def data(tmp_path):
    return _data(tmp_path)


def test_clip_item_range_and_target(data):
    s = DiffusionSampler(data, DiffusionSamplerSettings.from_train_config(_cfg()), 1, 0, augment=False)
    clip = data.clips[1]
    audio, y = s.clip_item(clip, None)
    # Frames 2..22 of the shot at 60 fps: 42 frames, linear (align_corners=False).
    assert (clip.first, clip.last) == (2, 22)
    src = data.targets[1][2:23]
    np.testing.assert_allclose(y, torch_linear_upsample(src, 42), atol=1e-4)
    # Samples round(2/30 s) .. round(23/30 s) inclusive: one more than the span.
    s0, s1 = round(2 / FPS * SR), round(23 / FPS * SR)
    assert len(audio) == s1 - s0 + 1
    np.testing.assert_allclose(audio, np.arange(s0, s1 + 1) / 2**20 + 1, atol=1e-6)


def test_subsegment_alignment(data):
    s = DiffusionSampler(data, DiffusionSamplerSettings.from_train_config(_cfg()), 1, 0, augment=False)
    audio, y = s.clip_item(data.clips[0], None)
    rng = np.random.default_rng(5)
    for _ in range(20):
        state = rng.bit_generator.state
        seg_a, seg_y = s.subsegment(audio, y, rng)
        ref = np.random.default_rng()
        ref.bit_generator.state = state
        n = min(int(ref.integers(10, 31)), len(y))
        start = int(ref.integers(0, len(y) - n + 1))
        assert 10 <= len(seg_y) <= 30
        np.testing.assert_array_equal(seg_y, y[start:start + n])
        # Audio from sample int(start·16000/60), length int(n/60·16000): the same time span as the frames.
        a0 = int(start * SR / 60.0)
        assert len(seg_a) == int(n / 60.0 * SR)
        np.testing.assert_array_equal(seg_a, audio[a0:a0 + len(seg_a)])


def test_buckets_padding_and_masks(data):
    s = DiffusionSampler(data, DiffusionSamplerSettings.from_train_config(_cfg()), 2, 7)
    for step in range(6):
        b = s.batch(step)
        T = b["y"].shape[1]
        lengths = b["mask"].sum(1).astype(int)
        assert T == bucket_for(int(lengths.max()), [16, 32]) and T in (16, 32)
        assert b["audio"].shape == (2, int(round(T / 60 * SR)))
        for i, n in enumerate(lengths):
            assert np.all(b["mask"][i, :n] == 1) and np.all(b["mask"][i, n:] == 0)
            assert np.all(b["y"][i, n:] == 0) and np.all(b["audio"][i, b["audio_len"][i]:] == 0)
            assert b["audio_len"][i] == int(n / 60.0 * SR)
            # The real frames are consecutive 60 fps frames of the item's shot (its value encodes the shot).
            shot = int(b["shot_index"][i])
            assert np.all((b["y"][i, :n, 0] >= 1000 * shot) & (b["y"][i, :n, 0] < 1000 * shot + 1000))
            np.testing.assert_allclose(np.diff(b["y"][i, :n, 0]), 0.5, atol=1e-4)
        np.testing.assert_array_equal(b["emotion"][:, 0], (b["shot_index"] == 1).astype(np.float32))
    # Batch 1 keeps the original's behaviour: the item's own length, no padding.
    one = DiffusionSampler(data, DiffusionSamplerSettings.from_train_config(_cfg()), 1, 7).batch(0)
    assert one["mask"].all() and one["y"].shape[1] == int(one["mask"].sum())


def test_determinism_by_seed_and_step(data):
    cfg = _cfg(AUGMENT={"pitch_shift": {"p": 0.5}})
    a = DiffusionSampler(data, DiffusionSamplerSettings.from_train_config(cfg), 2, 3)
    b = DiffusionSampler(data, DiffusionSamplerSettings.from_train_config(cfg), 2, 3)
    for step in (4, 0, 4):  # order of calls does not matter: a pure function of (seed, step)
        x, y = a.batch(step), b.batch(step)
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    other = DiffusionSampler(data, DiffusionSamplerSettings.from_train_config(cfg), 2, 4).batch(4)
    assert not np.array_equal(other["y"], a.batch(4)["y"]) or not np.array_equal(other["audio"], a.batch(4)["audio"])
    # An epoch visits every clip once.
    ids = np.concatenate([a.clip_ids(k) for k in range(a.batches_per_epoch)])
    assert sorted(ids.tolist()) == [0, 1]


def _data_with_muted(tmp_path):
    """`_data` plus a muted shot (noise audio from the batch stream) and a clip with an audio offset."""
    data = _data(tmp_path, lengths=(40, 25, 33))
    c = data.clips[2]
    data.clips[2] = Clip(c.actor, c.shot, c.first, c.last, c.speaker, c.lang, c.audio_path, 1.5, c.shot_index)
    start = data.shots[-1].start_global + data.shots[-1].length
    data.shots.append(Shot("a", "muted_0", 20, FPS, "joy", start, muted=True, source=("s0", 3)))
    data.targets.append(np.repeat(data.targets[0][3:4], 20, axis=0))
    data.clips.append(Clip("a", "muted_0", 0, 19, "muted", "en", None, 0.0, len(data.shots) - 1, muted=True))
    return data


# Pitch shift on half the items, mic noise for the muted clip: every kind of draw of the batch stream.
AUG = dict(AUGMENT={"pitch_shift": {"p": 0.5}}, AUG_MUTED_AUDIO_NOISE_TYPE="mic", AUG_MUTED_AUDIO_NOISE_SCALE=0.1,
           AUG_MUTED_AUDIO_NOISE_LOCAL_SCALE_RANGE=(0.0, 1.0))


def _sequential_batch(s: DiffusionSampler, step: int) -> dict[str, np.ndarray]:
    """The batch as built item by item from one stream (whole-clip items, then subsegments), padded to the bucket."""
    rng = np.random.default_rng([s.seed, 2, step])
    items = []
    for ci in s.clip_ids(step):
        clip = s.clips[int(ci)]
        audio, y = s.subsegment(*s.clip_item(clip, rng), rng)
        items.append((clip, audio, y))
    T = bucket_for(max(len(y) for _, _, y in items), s.buckets)
    N = int(round(T / 60.0 * SR))
    out = {k: np.zeros(shape, np.float32) for k, shape in
           (("audio", (len(items), N)), ("y", (len(items), T, D)), ("mask", (len(items), T)))}
    for b, (_, audio, y) in enumerate(items):
        out["audio"][b, :min(len(audio), N)] = audio[:N]
        out["y"][b, :len(y)], out["mask"][b, :len(y)] = y, 1.0
    out["shot_index"] = np.array([c.shot_index for c, _, _ in items], np.int32)
    out["audio_len"] = np.array([min(len(a), N) for _, a, _ in items], np.int32)
    return out


def test_resample_range_is_a_slice_of_the_whole(data):
    y = np.random.default_rng(1).normal(size=(9, 4)).astype(np.float32)
    for factor in (1, 2, 3):
        whole = resample_target(y, factor)
        for start, count in ((0, len(whole)), (0, 1), (2, len(whole) - 4), (len(whole) - 3, 3)):
            part = resample_target_range(y, factor, start, count)
            np.testing.assert_array_equal(part, whole[start:start + count])
            out = np.full((count, 4), np.nan, np.float32)
            assert resample_target_range(y, factor, start, count, out) is out
            np.testing.assert_array_equal(out, whole[start:start + count])


def test_planned_batch_equals_item_by_item_stream(tmp_path):
    """Planning every draw first (then building only the subsegment's frames) gives the batches of the
    item-by-item stream: the same batch for each (seed, step) as before the planning pass."""
    data = _data_with_muted(tmp_path)
    s = DiffusionSampler(data, DiffusionSamplerSettings.from_train_config(_cfg(**AUG)), 4, 11)
    seen_muted = seen_shift = False
    for step in range(6):
        got, ref = s.batch(step), _sequential_batch(s, step)
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=f"step {step} {k}")
        plans = s.plan(step)
        seen_muted |= any(p.noise is not None for p in plans)
        seen_shift |= any(p.pitch_steps is not None for p in plans)
    assert seen_muted and seen_shift


def test_process_rows_concatenate_to_the_single_process_batch(tmp_path):
    """Two processes (rows 0-1 and 2-3) each build only their rows, padded to the global batch's bucket;
    together they are the batch one process builds, also with the rows built on a thread pool."""
    from concurrent.futures import ThreadPoolExecutor

    data = _data_with_muted(tmp_path)
    cfg = _cfg(**AUG, SUBSEGMENT_MIN_FRAME=4, LENGTH_BUCKETS=[8, 16, 32])  # mixed lengths: T set by one process's rows
    s = DiffusionSampler(data, DiffusionSamplerSettings.from_train_config(cfg), 4, 5)
    differs = False
    with ThreadPoolExecutor(2) as pool:
        for step in range(8):
            whole = s.batch(step)
            parts = [s.batch(step, slice(0, 2)), s.batch(step, slice(2, 4), pool)]
            for k in whole:
                np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k], err_msg=f"{step} {k}")
            lengths = [p["mask"].sum(1).max() for p in parts]
            differs |= bucket_for(int(min(lengths)), [8, 16, 32]) != whole["y"].shape[1]
    assert differs  # some step's bucket came from the other process's rows
    with pytest.raises(ValueError, match="hold no item"):
        s.batch(0, slice(4, 6))
