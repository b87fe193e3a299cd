"""Phoneme supervision (docs/training.md): windows against a NumPy reference of the original's indexing, muted and
unsupported clips, enabling rule, training steps with the phoneme losses, and nothing changed when off."""

import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from a2f_jax.errors import ConfigError, DataError
from a2f_jax.networks import regression as N
from a2f_jax.train import losses, phonemes
from a2f_jax.train.dataset import load_training_data
from a2f_jax.train.loop import LoopSettings, run_loop
from a2f_jax.train.sampler_regression import RegressionSampler, RegressionSamplerSettings, gather_batch
from test_regression_net import HYPER, TINY_ENCODER
from test_sampler_regression import FPS, _write_dataset

VOCAB = {"zh": ["[SIL]", "a", "o"], "en": ["AA", "B", "[SIL]", "K", "IY"]}  # [SIL] at different indices


def _posteriors(tmp_path, shots, langs):
    """Random [T100, P] probability files for each (shot, lang)."""
    rng = np.random.default_rng(7)
    root = tmp_path / "post"
    tracks = {}
    for (name, n, _fps), lang in zip(shots, langs):
        if lang not in VOCAB:
            continue  # unsupported language: no posteriors exist
        t100 = int(round(n / FPS * 100))
        p = rng.dirichlet(np.ones(len(VOCAB[lang])), size=t100).astype(np.float32)
        (root / lang).mkdir(parents=True, exist_ok=True)
        np.save(root / lang / f"{name}.npy", p)
        tracks[name] = p
    return root, tracks


def _setup(tmp_path, langs=("en", "zh"), forcing=("zh", "en")):
    train, dataset, shots = _write_dataset(tmp_path)
    clips = [list(c) for c in train.CLIPS]
    for c, lang in zip(clips, langs):
        c[4] = lang
    train.CLIPS = [tuple(c) for c in clips]
    root, tracks = _posteriors(tmp_path, [(s[1], s[2], s[3]) for s in shots[:2]], langs)
    train.PHONEME_FORCING_LANGS = list(forcing)
    train.LOSS_PHONEME_ALPHA = 0.1
    train.PHONEME_POSTERIORS_ROOT = {"a": str(root)}
    train.PHONEME_VOCAB = {k: v for k, v in VOCAB.items()}
    return train, dataset, tracks


def _reference(track100, sec, sil, pmax):
    """The original: keep every 2nd frame, floor(sec·n/(n/50+0.02)), window [i−12, i+13), [SIL] outside."""
    data = track100[::2]
    n = len(data)
    idx = int(math.floor(sec * (n / (n / 50.0 + 0.02))))
    out = np.zeros((25, pmax), np.float32)
    for k in range(25):
        j = idx - 12 + k
        if 0 <= j < n:
            out[k, : data.shape[1]] = data[j]
        else:
            out[k, sil] = 1.0
    return out


def _epoch(sampler):
    gather = jax.jit(lambda dev, idx: gather_batch(dev, idx, sampler.window))
    for step in range(sampler.batches_per_epoch):
        idx = sampler.batch_index(step)
        yield step, idx, jax.device_get(gather(sampler.device, idx))


def test_windows_match_reference_at_fractional_timeshift(tmp_path):
    train, dataset, tracks = _setup(tmp_path)
    data = load_training_data(train, dataset)
    ph = phonemes.build_phoneme_setup(train, data.clips)
    assert ph.num_phonemes == {"zh": 3, "en": 5} and ph.max_phonemes == 5 and ph.window == 25
    s = RegressionSampler(data, RegressionSamplerSettings.from_train_config(train), batch_size=8, seed=43, phonemes=ph)
    checked = filled = 0
    for step, idx, batch in _epoch(s):
        shift = (np.random.default_rng([43, 1, step]).uniform(size=8) - 0.5) * 1.0
        assert batch["phonemes"].shape == (8, 2, 25, 5)
        for b in range(8):
            shot = int(idx["shot_index"][b])
            if shot == 2:
                continue  # muted, below
            lang = ("en", "zh")[shot]
            clip = [c for c in data.clips if c.shot_index == shot][0]
            for si in range(2):
                frame = int(idx["global_frame_idx"][b, si]) - data.shots[shot].start_global
                sec = (frame + 0.5) / FPS + shift[b] / FPS + clip.offset_frames / FPS
                track = tracks[clip.audio_path.stem]
                ref = _reference(track, sec, VOCAB[lang].index("[SIL]"), 5)
                np.testing.assert_allclose(batch["phonemes"][b, si], ref, atol=1e-7)
                np.testing.assert_array_equal(phonemes.reference_window(track[::2], sec, VOCAB[lang].index("[SIL]"), 25, 5), ref)
                assert int(idx["ph_lang"][b]) == ph.langs.index(lang)
                filled += int(np.any(ref[:, VOCAB[lang].index("[SIL]")] == 1.0))
                checked += 1
    assert checked > 100 and filled > 0  # edges with [SIL] fill were among them
    # The shift really is fractional (not whole frames).
    assert np.any(np.abs(np.random.default_rng([43, 1, 0]).uniform(size=8) - 0.5) % 1 > 0.01)


def test_muted_clip_is_one_hot_sil_of_first_language(tmp_path):
    train, dataset, _ = _setup(tmp_path)
    data = load_training_data(train, dataset)
    s = RegressionSampler(data, RegressionSamplerSettings.from_train_config(train), batch_size=8, seed=43,
                          phonemes=phonemes.build_phoneme_setup(train, data.clips))
    seen = 0
    for _, idx, batch in _epoch(s):
        for b in np.flatnonzero(idx["muted"]):
            expect = np.zeros((2, 25, 5), np.float32)
            expect[..., 0] = 1.0  # "zh" is first; its [SIL] is class 0
            np.testing.assert_array_equal(batch["phonemes"][b], expect)
            assert idx["ph_lang"][b] == 0
            seen += 1
    assert seen > 0


def test_unsupported_language_is_zero_and_excluded_from_loss(tmp_path):
    train, dataset, _ = _setup(tmp_path, langs=("en", "fr"), forcing=("en",))
    data = load_training_data(train, dataset)
    ph = phonemes.build_phoneme_setup(train, data.clips)
    assert set(k[1] for k in ph.tracks) == {"en"}  # no file is needed for "fr"
    s = RegressionSampler(data, RegressionSamplerSettings.from_train_config(train), batch_size=8, seed=43, phonemes=ph)
    idx = next(i for _, i, _ in _epoch(s) if np.any((i["shot_index"] == 1)))
    batch = jax.device_get(gather_batch(s.device, idx, s.window))
    fr = idx["shot_index"] == 1
    assert np.all(idx["ph_lang"][fr] == -1) and np.all(batch["phonemes"][fr] == 0.0)
    assert np.all(batch["phonemes"][~fr].sum(-1) > 0.99)
    masks = [jnp.asarray(idx["ph_lang"] == 0)]
    logits = jax.random.normal(jax.random.PRNGKey(0), (8, 2, 25, 5))
    targets = jnp.asarray(batch["phonemes"])

    def loss(z):
        return losses.phoneme_loss([z], [targets], masks) + losses.phoneme_motion_loss([z], [targets], masks)

    g = np.asarray(jax.grad(loss)(logits))
    assert np.all(g[fr] == 0.0) and np.any(g[~fr] != 0.0)
    # Only the supported samples count in the mean.
    keep = ~fr
    manual = -np.mean(np.sum(np.asarray(targets)[keep] * np.asarray(jax.nn.log_softmax(logits))[keep], -1))
    np.testing.assert_allclose(float(losses.phoneme_loss([logits], [targets], masks)), manual, rtol=1e-5)


def test_enabling_rule_and_config_errors(tmp_path, caplog):
    train, dataset, _ = _setup(tmp_path)
    data = load_training_data(train, dataset)
    off = ConfigDict(train.to_dict())
    off.PHONEME_POSTERIORS_ROOT = {}
    with caplog.at_level(logging.WARNING):
        assert phonemes.build_phoneme_setup(off, data.clips) is None
    assert "phoneme supervision is off" in caplog.text and "PHONEME_POSTERIORS_ROOT" in caplog.text
    off.PHONEME_POSTERIORS_ROOT = train.PHONEME_POSTERIORS_ROOT
    off.LOSS_PHONEME_ALPHA = None
    assert phonemes.build_phoneme_setup(off, data.clips) is None
    off.LOSS_PHONEME_ALPHA, off.PHONEME_FORCING_LANGS = 0.1, []
    assert phonemes.build_phoneme_setup(off, data.clips) is None
    bad = ConfigDict(train.to_dict())
    bad.PHONEME_VOCAB = {"zh": ["a", "o", "e"], "en": VOCAB["en"]}
    with pytest.raises(ConfigError, match=r"\[SIL\]"):
        phonemes.build_phoneme_setup(bad, data.clips)
    bad.PHONEME_VOCAB = {"zh": VOCAB["zh"], "en": VOCAB["en"] + ["EXTRA"]}
    with pytest.raises(DataError, match="T100, 6"):
        phonemes.build_phoneme_setup(bad, data.clips)


def test_timeline_posteriors():
    vocab = ["[SIL]", "a", "b"]
    p = phonemes.posteriors_from_timeline([[0.0, 0.05, "sil"], [0.05, 0.1, "a"], [0.1, 0.2, "b"]], 20, vocab)
    assert p.shape == (20, 3)
    np.testing.assert_array_equal(p.argmax(1), [0] * 5 + [1] * 5 + [2] * 10)
    q = phonemes.posteriors_from_timeline([[0.0, 0.05, "sil"], [0.05, 0.2, "a"]], 20, vocab, smooth_frames=1.0)
    np.testing.assert_allclose(q.sum(1), 1.0, rtol=1e-6)
    assert 0.0 < q[4, 1] < 1.0


def test_synthetic_posterior_files_follow_the_timeline(tmp_path):
    import json

    import soundfile as sf

    from a2f_jax.data import synthetic

    ds = synthetic.generate(tmp_path / "ds", seed=0, minimal=True, num_shots=2)
    vocab = phonemes.write_synthetic_posteriors(ds, "synth", tmp_path / "post", smooth_frames=0.0)
    assert vocab[0] == "[SIL]" and len(set(vocab)) == len(vocab)
    timelines = json.loads((ds / "ground_truth/synth/phonemes.json").read_text())
    for shot, segs in timelines.items():
        p = np.load(tmp_path / "post/en" / f"{shot}.npy")
        seconds = sf.info(str(ds / "data/synth/audio" / f"{shot}.wav")).duration
        assert p.dtype == np.float32 and p.shape == (int(round(seconds * 100)), len(vocab))
        for start, end, phone in segs:
            k = int((start + end) / 2 * 100)  # a frame inside the segment
            if start + 0.02 < (k + 0.5) / 100 < end - 0.02:
                assert vocab[int(p[k].argmax())] == ("[SIL]" if phone == "sil" else phone)


# --- training steps -----------------------------------------------------------------------------------


def _regression_setup(train, dataset, ph):
    train.update({"NETWORK_HYPER_PARAMS": dict(HYPER), "LEARNING_RATE": 1e-3, "EMO_LR_MULT": 1.0,
                  "LR_STEP_GAMMA": 1.0, "REMOVE_CLOSING_EYE": False})
    data = load_training_data(train, dataset)
    num = None if ph is None else ph.num_phonemes
    params = N.network_params(train, data.channel_sizes, data.explicit_emotions, num)
    model = N.build_network(params, TINY_ENCODER)
    cfg = ConfigDict({"train": train, "dataset": dataset})
    return N.Setup(cfg, data, data.clips, [], model, losses.RegressionLossConfig.from_train_config(train),
                   {}, None, None, [], ph)


def _state(setup, steps_per_epoch):
    """(initial train state, optimizer) as the training entry builds them (seed 42)."""
    params = N.init(setup, jax.random.PRNGKey(42))
    tx = N.make_optimizer(setup, params, steps_per_epoch).tx
    return N.init_state(setup, params, tx), tx


def _losses(setup, steps):
    sampler = RegressionSampler(setup.data, RegressionSamplerSettings.from_train_config(setup.configs.train), 4, 43, phonemes=setup.phonemes)
    state, opt = _state(setup, sampler.batches_per_epoch)
    step = jax.jit(N.make_train_step(setup, opt, sampler.batches_per_epoch, num_epochs=2, seed=42))
    result = run_loop(state, 0, lambda st, b: step(st, {"dataset": sampler.device, "index": b}), sampler.batch_index,
                      LoopSettings(steps, sampler.batches_per_epoch, 1, 1000, 0, False))
    return result.history


def test_training_steps_log_finite_phoneme_losses(tmp_path):
    train, dataset, _ = _setup(tmp_path)
    data = load_training_data(train, dataset)
    ph = phonemes.build_phoneme_setup(train, data.clips)
    setup = _regression_setup(train, dataset, ph)
    assert setup.network.net.cfg.use_phoneme_forcing
    history = _losses(setup, 3)
    assert len(history) == 3
    for h in history:
        assert "losses/phoneme" in h and "losses/phoneme_motion" in h
        assert math.isfinite(h["losses/phoneme"]) and math.isfinite(h["losses/phoneme_motion"]) and h["losses/phoneme"] > 0
        assert math.isfinite(h["loss"])


def test_phonemes_off_changes_nothing(tmp_path):
    """Off (no posteriors root): the batch index, the step and the loss are those of a plain model."""
    train, dataset, _ = _setup(tmp_path)
    train.PHONEME_POSTERIORS_ROOT = {}
    data = load_training_data(train, dataset)
    assert phonemes.build_phoneme_setup(train, data.clips) is None
    setup = _regression_setup(train, dataset, None)
    assert "num_phonemes" not in N.network_params(train, data.channel_sizes, data.explicit_emotions)
    s = RegressionSampler(data, RegressionSamplerSettings.from_train_config(train), 4, 43)
    assert not any(k.startswith("ph_") for k in s.batch_index(0)) and s.device.phonemes is None
    history = _losses(setup, 2)
    assert all("losses/phoneme" not in h for h in history)
    # The same loss as the hand-written pre-phoneme step (apply_train + regression_loss, no phoneme terms).
    state, _ = _state(setup, s.batches_per_epoch)
    idx = s.batch_index(0)
    batch = gather_batch(s.device, idx, s.window)
    from a2f_jax.models import emotion_db

    implicit = emotion_db.lookup(state["params"]["emo_db"], idx["global_frame_idx"])
    emotion = jnp.concatenate([implicit, idx["explicit_emo"]], axis=-1)
    rng = jax.random.fold_in(jax.random.PRNGKey(42), 0)
    y = setup.network.apply_train(state["params"]["net"], batch["x"], emotion, idx["x_norm_factor"], rng)
    total, _ = losses.regression_loss(y, batch["y"], implicit, batch["x"], setup.loss_cfg, 4, state["norm"],
                                      losses.loss_exponent(0, s.batches_per_epoch, 2), {})
    np.testing.assert_allclose(history[0]["loss"], float(total), rtol=1e-5)
