"""Weight import + numerical parity with transformers' PyTorch Wav2Vec2Model / HubertModel (eval mode).

References come from tests/fixtures/encoder/, made by scripts/make_encoder_fixtures.py with torch 2.13 +
transformers 5.24 (tiny random configs, randomised norm affines and weight-norm gains).
"""

from __future__ import annotations

import json
import logging
import pathlib
import shutil

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from a2f_jax.errors import ConfigError
from a2f_jax.models.audio_encoder import AudioEncoder, EncoderConfig
from a2f_jax.models.encoder_weights import convert_state_dict, load_pretrained, random_init

FIX = pathlib.Path(__file__).parent / "fixtures" / "encoder"
TOL = 1e-4


def _run(cfg: EncoderConfig, params: dict, audio: np.ndarray, num_layers: int | None = None):
    return AudioEncoder(cfg, num_layers).apply({"params": params}, audio, train=False)


@pytest.mark.parametrize("case,model_type", [("wav2vec2_group", "wav2vec2"), ("hubert_group", "hubert"), ("wav2vec2_layer", "wav2vec2")])
def test_parity_with_transformers_all_hidden_states(case: str, model_type: str) -> None:
    cfg, params = load_pretrained(FIX / case)
    assert cfg.model_type == model_type
    io = np.load(FIX / case / "io.npz")
    for audio_key, prefix in (("audio", "hidden_"), ("audio_short", "short_hidden_")):
        out = _run(cfg, params, io[audio_key])
        refs = [io[f"{prefix}{i}"] for i in range(cfg.num_hidden_layers + 1)]
        assert len(out.hidden_states) == len(refs)
        for i, (ours, ref) in enumerate(zip(out.hidden_states, refs)):
            assert ours.shape == ref.shape, (case, audio_key, i)
            np.testing.assert_allclose(np.asarray(ours), ref, atol=TOL, rtol=0, err_msg=f"{case} {audio_key} hidden {i}")
        np.testing.assert_allclose(np.asarray(out.last_hidden_state), refs[-1], atol=TOL, rtol=0)


def test_torchaudio_naming_matches_extract_features() -> None:
    # torchaudio's extract_features returns each block's output; with HF weights renamed to torchaudio's names
    # they equal HF hidden_states[1:] (torchaudio applies the encoder LayerNorm before the blocks for base models).
    cfg, params = load_pretrained(FIX / "torchaudio_wav2vec2", num_layers=1)
    assert cfg.apply_spec_augment is False and "masked_spec_embed" not in params
    io = np.load(FIX / "torchaudio_wav2vec2" / "io.npz")
    out = _run(cfg.extract_features_mode(), params, io["audio"], num_layers=1)
    assert len(out.hidden_states) == 2
    np.testing.assert_allclose(np.asarray(out.last_hidden_state), io["hidden_1"], atol=TOL, rtol=0)


def test_truncation_keeps_first_layers() -> None:
    cfg, full = load_pretrained(FIX / "wav2vec2_group")
    _, one = load_pretrained(FIX / "wav2vec2_group", num_layers=1)
    assert "layers_1" not in one["encoder"] and "layers_1" in full["encoder"]
    io = np.load(FIX / "wav2vec2_group" / "io.npz")
    out = _run(cfg, one, io["audio"], num_layers=1)
    np.testing.assert_allclose(np.asarray(out.last_hidden_state), io["hidden_1"], atol=TOL, rtol=0)


def test_both_weight_norm_namings_give_same_params(tmp_path: pathlib.Path) -> None:
    state = load_file(str(FIX / "wav2vec2_group" / "model.safetensors"))
    legacy = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v"): v
              for k, v in state.items()}
    assert legacy.keys() != state.keys()
    cfg = EncoderConfig.from_hf(json.loads((FIX / "wav2vec2_group" / "config.json").read_text()))
    a, b = convert_state_dict(state, cfg), convert_state_dict(legacy, cfg)
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def test_unexpected_and_missing_keys_are_listed(tmp_path: pathlib.Path) -> None:
    snap = tmp_path / "snap"
    shutil.copytree(FIX / "wav2vec2_group", snap)
    state = load_file(str(snap / "model.safetensors"))
    state["encoder.mystery.weight"] = np.zeros(3, np.float32)
    del state["encoder.layers.1.final_layer_norm.bias"]
    state["lm_head.weight"] = np.zeros((8, 32), np.float32)  # task heads are ignored
    save_file(state, str(snap / "model.safetensors"))
    with pytest.raises(ConfigError) as err:
        load_pretrained(snap)
    msg = str(err.value)
    assert "encoder.mystery.weight" in msg and "encoder.layers_1.final_layer_norm.bias" in msg and "lm_head" not in msg


def test_shape_mismatch_names_param(tmp_path: pathlib.Path) -> None:
    snap = tmp_path / "snap"
    shutil.copytree(FIX / "wav2vec2_group", snap)
    cfg = json.loads((snap / "config.json").read_text())
    cfg["intermediate_size"] = 40
    (snap / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="intermediate_dense.kernel: expected \\(32, 40\\), found \\(32, 48\\)"):
        load_pretrained(snap)


def test_missing_snapshot_error_tells_what_to_download(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_pretrained(tmp_path / "nowhere")
    msg = str(err.value)
    for needle in ("nowhere", "facebook/hubert-base-ls960", "facebook/wav2vec2-base", "WAV2VEC2_BASE",
                   "AUDIO_ENCODER_SNAPSHOT", "AUDIO_ENCODER_RANDOM_INIT=True"):
        assert needle in msg, needle
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="model.safetensors"):
        load_pretrained(tmp_path / "empty")


def test_random_init_is_logged_loudly_and_matches_snapshot_tree(caplog: pytest.LogCaptureFixture) -> None:
    cfg, loaded = load_pretrained(FIX / "hubert_group")
    with caplog.at_level(logging.WARNING):
        params = random_init(cfg, jax.random.key(0))
    assert any("RANDOMLY INITIALISED" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    shapes = lambda t: jax.tree_util.tree_map(lambda a: a.shape, t)
    assert shapes(params) == shapes(loaded)
    # weight norm starts as the identity reparametrisation: g = |v| per tap
    pos = params["encoder"]["pos_conv_embed"]
    np.testing.assert_allclose(np.asarray(pos["weight_g"]), np.linalg.norm(np.asarray(pos["weight_v"]).reshape(cfg.num_conv_pos_embeddings, -1), axis=1), rtol=1e-5)


def test_config_from_dict_uses_model_type_defaults_and_rejects_unsupported() -> None:
    cfg = EncoderConfig.from_hf({"model_type": "hubert"})
    assert (cfg.layerdrop, cfg.mask_time_prob, cfg.mask_time_length, cfg.mask_time_min_masks) == (0.1, 0.05, 10, 2)
    assert cfg.num_frames(16000) == 49 and cfg.num_frames(8320) == 25 and cfg.receptive_field() == 400
    with pytest.raises(ConfigError, match="do_stable_layer_norm"):
        EncoderConfig.from_hf({"model_type": "wav2vec2", "do_stable_layer_norm": True})
    with pytest.raises(ConfigError, match="model_type"):
        EncoderConfig.from_hf({"model_type": "wavlm"})


def test_encoder_from_settings() -> None:
    from a2f_jax.models.encoder_weights import encoder_from_settings

    tiny = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16, conv_dim=(8, 8),
                conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2)
    cfg, params = encoder_from_settings("regression", None, True, tiny, jax.random.key(0), num_layers=1)
    assert cfg.model_type == "wav2vec2" and cfg.layerdrop == 0 and not cfg.apply_spec_augment
    assert "layers_1" not in params["encoder"] and "masked_spec_embed" not in params
    cfg, params = encoder_from_settings("diffusion", None, True, tiny, jax.random.key(0))
    assert cfg.model_type == "hubert" and (cfg.layerdrop, cfg.mask_time_prob, cfg.feat_proj_dropout) == (0.1, 0.05, 0.1)
    assert params["masked_spec_embed"].shape == (16,)
    cfg, _ = encoder_from_settings("diffusion", FIX / "hubert_group", False, {"hidden_dropout": 0.2}, jax.random.key(0))
    assert cfg.hidden_dropout == 0.2 and cfg.hidden_size == 32
    with pytest.raises(ConfigError, match="AUDIO_ENCODER_RANDOM_INIT"):
        encoder_from_settings("diffusion", "", False, {}, jax.random.key(0))


def test_pytorch_pickle_without_torch_says_so(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    snap = tmp_path / "snap"
    snap.mkdir()
    shutil.copy(FIX / "wav2vec2_group" / "config.json", snap / "config.json")
    (snap / "pytorch_model.bin").write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(ConfigError, match="torch is not installed"):
        load_pretrained(snap)
