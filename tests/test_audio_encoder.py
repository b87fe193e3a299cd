"""AudioEncoder train-mode behaviour (dropout, LayerDrop, SpecAugment), determinism, and freezing with optax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from a2f_jax.models.audio_encoder import AudioEncoder, EncoderConfig, spec_augment_time_mask
from a2f_jax.models.encoder_weights import random_init
from a2f_jax.models.freeze import FROZEN, TRAINABLE, encoder_frozen, freeze_encoder, param_labels

TINY = dict(
    model_type="hubert", hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=48,
    conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4, mask_time_length=3,
)
AUDIO = np.random.default_rng(0).standard_normal((2, 1200)).astype(np.float32) * 0.1  # 119 frames


def _setup(**changes):
    cfg = EncoderConfig(**dict(TINY, **changes))
    params = random_init(cfg, jax.random.key(0))
    model = AudioEncoder(cfg)
    fwd = jax.jit(lambda p, a, kd, km: model.apply({"params": p}, a, train=True, rngs={"dropout": kd, "mask": km}))
    return cfg, params, model, fwd


def test_eval_is_deterministic_and_needs_no_rng() -> None:
    _, params, model, _ = _setup()
    a = model.apply({"params": params}, AUDIO, train=False)
    b = model.apply({"params": params}, AUDIO, train=False)
    np.testing.assert_array_equal(np.asarray(a.last_hidden_state), np.asarray(b.last_hidden_state))
    assert len(a.hidden_states) == 4 and a.last_hidden_state.shape == (2, 119, 32)


def test_train_mode_depends_on_keys_and_is_reproducible() -> None:
    _, params, model, fwd = _setup()
    k = jax.random.key
    evl = np.asarray(model.apply({"params": params}, AUDIO, train=False).last_hidden_state)
    a = np.asarray(fwd(params, AUDIO, k(1), k(2)).last_hidden_state)
    b = np.asarray(fwd(params, AUDIO, k(1), k(2)).last_hidden_state)
    c = np.asarray(fwd(params, AUDIO, k(3), k(2)).last_hidden_state)
    d = np.asarray(fwd(params, AUDIO, k(1), k(4)).last_hidden_state)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - evl).max() > 1e-3 and np.abs(a - c).max() > 1e-3 and np.abs(a - d).max() > 1e-3


def test_dropout_alone_changes_outputs() -> None:
    _, params, model, fwd = _setup(layerdrop=0.0, mask_time_prob=0.0)
    a = np.asarray(fwd(params, AUDIO, jax.random.key(1), jax.random.key(0)).last_hidden_state)
    b = np.asarray(fwd(params, AUDIO, jax.random.key(2), jax.random.key(0)).last_hidden_state)
    assert np.abs(a - b).max() > 1e-3


def test_layerdrop_skips_whole_blocks() -> None:
    no_drop = dict(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, mask_time_prob=0.0)
    _, params, model, fwd = _setup(layerdrop=1.0, **no_drop)
    out = fwd(params, AUDIO, jax.random.key(1), jax.random.key(2))
    for h in out.hidden_states[1:]:
        np.testing.assert_array_equal(np.asarray(h), np.asarray(out.hidden_states[0]))
    # with p=0.5 and 3 blocks, some keys skip a block and others do not; the choice is per block for the batch
    _, params, model, fwd = _setup(layerdrop=0.5, **no_drop)
    evl = model.apply({"params": params}, AUDIO, train=False)
    patterns = set()
    for seed in range(12):
        out = fwd(params, AUDIO, jax.random.key(seed), jax.random.key(0))
        skipped = tuple(bool(np.array_equal(np.asarray(out.hidden_states[i + 1]), np.asarray(out.hidden_states[i]))) for i in range(3))
        patterns.add(skipped)
        if not any(skipped):
            np.testing.assert_allclose(np.asarray(out.last_hidden_state), np.asarray(evl.last_hidden_state), atol=1e-5)
    assert len(patterns) > 2


def test_spec_augment_replaces_frames_with_masked_spec_embed() -> None:
    no_drop = dict(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0)
    cfg, params, model, fwd = _setup(mask_time_prob=0.3, num_hidden_layers=0, **no_drop)
    # Silence the positional conv (gelu(-30) = 0), so hidden_states[0] = LN(projected features or the embed).
    params["encoder"]["pos_conv_embed"]["weight_g"] = jnp.zeros_like(params["encoder"]["pos_conv_embed"]["weight_g"])
    params["encoder"]["pos_conv_embed"]["bias"] = jnp.full_like(params["encoder"]["pos_conv_embed"]["bias"], -30.0)
    train = np.asarray(fwd(params, AUDIO, jax.random.key(0), jax.random.key(5)).hidden_states[0])
    evl = np.asarray(model.apply({"params": params}, AUDIO, train=False).hidden_states[0])
    changed = np.abs(train - evl).max(axis=-1) > 1e-5  # [B, T]
    # at least min_masks=2 spans of 3 frames per row, not everything
    assert (changed.sum(1) >= 3).all() and (~changed).any()
    # every masked frame holds the same vector, LN(masked_spec_embed)
    assert np.abs(train[changed] - train[changed][:1]).max() < 1e-5
    # apply_spec_augment=False turns it off
    cfg_off = cfg.replace(apply_spec_augment=False)
    off = AudioEncoder(cfg_off).apply({"params": params}, AUDIO, train=True, rngs={"dropout": jax.random.key(0), "mask": jax.random.key(5)})
    np.testing.assert_allclose(np.asarray(off.hidden_states[0]), evl, atol=1e-6)


def _hf_mask_numpy(rng: np.random.Generator, batch: int, length: int, prob: float, span: int, min_masks: int) -> np.ndarray:
    """Transformers' _compute_mask_indices (no padding), written out with NumPy, as the distribution reference."""
    eps = rng.random()
    n = max(int(prob * length / span + eps), min_masks)
    n = min(n, length // span, length - span + 1)
    mask = np.zeros((batch, length), bool)
    for b in range(batch):
        for s in rng.choice(length - span + 1, n, replace=False):
            mask[b, s : s + span] = True
    return mask


@pytest.mark.parametrize("length,prob,span,min_masks", [(49, 0.05, 10, 2), (100, 0.37, 4, 2), (30, 0.9, 10, 1)])
def test_time_mask_distribution_matches_transformers(length: int, prob: float, span: int, min_masks: int) -> None:
    rng = np.random.default_rng(0)
    ref = np.stack([_hf_mask_numpy(rng, 1, length, prob, span, min_masks)[0] for _ in range(3000)])
    ours = np.asarray(jax.vmap(lambda k: spec_augment_time_mask(k, 1, length, prob, span, min_masks)[0])(
        jax.random.split(jax.random.key(0), 3000)))
    # masked fraction overall and per frame position (edges are masked less often)
    assert abs(ours.mean() - ref.mean()) < 0.02
    np.testing.assert_allclose(ours.mean(0), ref.mean(0), atol=0.06)
    # the number of masked frames per row has the same support
    assert set(np.unique(ours.sum(1))) <= set(range(min_masks and span, length + 1))


def test_frozen_params_get_zero_updates_and_no_optimizer_state() -> None:
    cfg = EncoderConfig(**TINY)
    enc = random_init(cfg, jax.random.key(0))
    params = {"hubert": enc, "head": {"w": jnp.ones((3,))}}
    labels = param_labels(params, encoder_frozen("front_and_first_two", ("hubert",)))
    assert labels["hubert"]["feature_extractor"]["conv_layers_0"]["kernel"] == FROZEN
    assert labels["hubert"]["feature_projection"]["projection"]["kernel"] == FROZEN
    assert labels["hubert"]["encoder"]["layers_1"]["attention"]["q_proj"]["kernel"] == FROZEN
    for trainable in (("encoder", "layers_2", "final_layer_norm", "scale"), ("encoder", "pos_conv_embed", "weight_v"),
                      ("encoder", "layer_norm", "bias"), ("masked_spec_embed",)):
        node = labels["hubert"]
        for k in trainable:
            node = node[k]
        assert node == TRAINABLE, trainable
    assert labels["head"]["w"] == TRAINABLE

    for scheme in ("front_and_first_two", "whole_encoder"):
        tx = freeze_encoder(optax.adam(1e-2), params, scheme, ("hubert",))
        state = tx.init(params)
        grads = jax.tree_util.tree_map(jnp.ones_like, params)
        updates, _ = tx.update(grads, state, params)
        new = optax.apply_updates(params, updates)
        lab = param_labels(params, encoder_frozen(scheme, ("hubert",)))
        n_trainable = 0
        for (path, old), newv, label in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree_util.tree_leaves(new),
                                            jax.tree_util.tree_leaves(lab)):
            if label == FROZEN:
                np.testing.assert_array_equal(np.asarray(old), np.asarray(newv), err_msg=str(path))
            else:
                n_trainable += 1
                assert np.abs(np.asarray(old) - np.asarray(newv)).max() > 0, path
        # Adam moments exist only for trainable leaves
        adam_arrays = [x for x in jax.tree_util.tree_leaves(state) if hasattr(x, "shape") and x.ndim > 0]
        assert len(adam_arrays) == 2 * n_trainable
    assert n_trainable == 1  # whole_encoder: only the head trains


def test_input_validation() -> None:
    cfg = EncoderConfig(**TINY)
    params = random_init(cfg, jax.random.key(0))
    with pytest.raises(ValueError, match="at least 20 samples"):
        AudioEncoder(cfg).apply({"params": params}, np.zeros((1, 15), np.float32), train=False)
    with pytest.raises(ValueError, match=r"audio \[B, N\]"):
        AudioEncoder(cfg).apply({"params": params}, np.zeros((15,), np.float32), train=False)


def test_stop_gradient_frozen_gives_zero_grads_for_frozen_leaves() -> None:
    from a2f_jax.models.freeze import stop_gradient_frozen

    cfg = EncoderConfig(**dict(TINY, num_hidden_layers=3))
    params = {"hubert": random_init(cfg, jax.random.key(0))}
    labels = param_labels(params, encoder_frozen("front_and_first_two", ("hubert",)))
    model = AudioEncoder(cfg)

    def loss(p):
        p = stop_gradient_frozen(p, labels)
        return jnp.sum(model.apply({"params": p["hubert"]}, AUDIO[:1, :400], train=False).last_hidden_state ** 2)

    grads = jax.grad(loss)(params)
    frozen_g = [np.abs(np.asarray(g)).max() for g, lab in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(labels)) if lab == FROZEN]
    q = grads["hubert"]["encoder"]["layers_2"]["attention"]["q_proj"]["kernel"]
    assert max(frozen_g) == 0 and np.abs(np.asarray(q)).max() > 0


def test_base_sizes_shapes_and_frozen_counts_match_spec() -> None:
    # docs/training.md "HuBERT": base has about 94.4 M params, of which about 75.6 M are fine-tuned (front end,
    # feature projection and blocks 0-1 frozen); 16000 samples give 49 frames, 8320 give 25 (docs/training.md).
    from a2f_jax.models.audio_encoder import TORCHAUDIO_WAV2VEC2_BASE, param_shapes
    from a2f_jax.models.encoder_weights import HUBERT_BASE

    shapes = param_shapes(HUBERT_BASE)
    labels = param_labels(shapes, encoder_frozen("front_and_first_two", ()))
    sizes = [(int(np.prod(s.shape)), lab) for s, lab in zip(jax.tree_util.tree_leaves(shapes), jax.tree_util.tree_leaves(labels))]
    assert round(sum(n for n, _ in sizes) / 1e6, 1) == 94.4
    assert round(sum(n for n, lab in sizes if lab == TRAINABLE) / 1e6, 1) == 75.6
    for cfg, n_samples, layers, frames in ((HUBERT_BASE, 16000, None, 49), (TORCHAUDIO_WAV2VEC2_BASE, 8320, 1, 25)):
        model = AudioEncoder(cfg, layers)
        out = jax.eval_shape(
            lambda p, a: model.apply({"params": p}, a, train=False), param_shapes(cfg, layers),
            jax.ShapeDtypeStruct((2, n_samples), jnp.float32),
        )
        assert out.last_hidden_state.shape == (2, frames, 768)
        assert len(out.hidden_states) == (12 if layers is None else layers) + 1
        assert out.conv_features.shape == (2, frames, 512)


def test_padded_batch_with_lengths_equals_unpadded_clips() -> None:
    cfg = EncoderConfig(**TINY)
    params = random_init(cfg, jax.random.key(0))
    model = AudioEncoder(cfg)
    rng = np.random.default_rng(3)
    clips = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (1200, 700, 333)]
    padded = np.zeros((3, 1200), np.float32)
    for i, c in enumerate(clips):
        padded[i, : len(c)] = c + 0.0
    padded[2, 333:] = 0.5  # padding content must not matter
    out = model.apply({"params": params}, padded, train=False, lengths=np.array([len(c) for c in clips]))
    for i, c in enumerate(clips):
        ref = model.apply({"params": params}, c[None], train=False)
        t = cfg.num_frames(len(c))
        assert ref.last_hidden_state.shape[1] == t
        for h_pad, h_ref in zip(out.hidden_states, ref.hidden_states):
            np.testing.assert_allclose(np.asarray(h_pad[i, :t]), np.asarray(h_ref[0]), atol=2e-5, rtol=0)
    # without lengths the padding changes the short clips (group norm, positional conv, attention)
    plain = model.apply({"params": params}, padded, train=False)
    assert np.abs(np.asarray(plain.last_hidden_state[1, :10]) - np.asarray(out.last_hidden_state[1, :10])).max() > 1e-3


def test_time_mask_stays_inside_valid_frames() -> None:
    valid = jnp.array([49, 20, 12])
    masks = np.asarray(jax.vmap(lambda k: spec_augment_time_mask(k, 3, 49, 0.05, 10, 2, valid))(
        jax.random.split(jax.random.key(1), 200)))  # [200, 3, 49]
    assert not masks[:, 1, 20:].any() and not masks[:, 2, 12:].any()
    assert masks[:, 1, :20].any(axis=-1).all()  # 2 spans of 10 fit into 20 frames: always masked
    # a 12-frame row fits at most 3 starts for span 10: still masked every time, full row covered sometimes
    assert masks[:, 2, :12].sum(-1).min() >= 10
