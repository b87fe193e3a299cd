"""Make the audio-encoder parity fixtures under tests/fixtures/encoder/ with PyTorch + transformers.

Runs in a separate venv (the test suite itself needs no torch):
    python3 -m venv /work/fixenv
    /work/fixenv/bin/pip install torch==2.13.0 transformers==5.24.0 safetensors numpy
    /work/fixenv/bin/python scripts/make_encoder_fixtures.py [OUT_DIR]

Each case folder is a Hugging Face-style snapshot (config.json + model.safetensors) plus io.npz with
the inputs ("audio", "audio_short") and transformers' eval-mode hidden states for each
("hidden_<i>", "short_hidden_<i>"). Tiny random configs; norm affines, weight-norm gains and
masked_spec_embed are randomised so that a wrong mapping cannot hide behind ones/zeros.

Cases:
- wav2vec2_group: Wav2Vec2Model, group-norm feature encoder, even positional kernel, saved as transformers saves it.
- hubert_group: HubertModel, odd positional kernel, layer_norm_eps 1e-3, weight norm renamed to the legacy weight_g/weight_v keys,
  keys prefixed with "hubert." (as in a HubertForCTC checkpoint).
- wav2vec2_layer: Wav2Vec2Model, layer-norm feature encoder with conv bias.
- torchaudio_wav2vec2: the wav2vec2_group weights renamed to torchaudio's Wav2Vec2Model state-dict names
  (torchaudio itself is not installed: no wheel matches torch 2.13). The names follow torchaudio's
  components.py / import_huggingface.py: torchaudio loads HF's feature_extractor, feature_projection and
  encoder state dicts unchanged into feature_extractor, encoder.feature_projection and encoder.transformer.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import tempfile

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file

ROOT = pathlib.Path(__file__).resolve().parents[1]

TINY = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
    conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4, vocab_size=8,
)


def _atomic(path: pathlib.Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _randomise(model: torch.nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            parts = name.split(".")
            if name == "masked_spec_embed" or (len(parts) > 1 and "norm" in parts[-2]):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3 + (1.0 if name.endswith("weight") else 0.0))
            elif "original0" in name or name.endswith("weight_g"):
                p.mul_(torch.rand(p.shape, generator=gen) + 0.5)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def _hidden(model: torch.nn.Module, audio: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(torch.from_numpy(audio), output_hidden_states=True)
    return [h.numpy() for h in out.hidden_states]


def _state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _legacy_weight_norm(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for k, v in state.items():
        k = k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v")
        out[k] = v
    return out


def _torchaudio_names(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for k, v in state.items():
        if k == "masked_spec_embed":
            continue  # torchaudio's model has no SpecAugment embedding
        if k.startswith("feature_projection."):
            k = "encoder." + k
        elif k.startswith("encoder."):
            k = "encoder.transformer." + k[len("encoder."):]
        out[k] = v
    return out


def _write_case(out: pathlib.Path, name: str, config: dict, state: dict, io: dict) -> None:
    case = out / name
    _atomic(case / "config.json", lambda p: pathlib.Path(p).write_text(json.dumps(config, indent=2, sort_keys=True)))
    _atomic(case / "model.safetensors", lambda p: save_file(state, p))
    _atomic(case / "io.npz", lambda p: np.savez_compressed(open(p, "wb"), **io))
    print(f"wrote {case}: {len(state)} tensors")


def main(out: pathlib.Path) -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((2, 1200)) * 0.1).astype(np.float32)  # 119 frames: full positional kernel
    audio_short = (rng.standard_normal((2, 60)) * 0.1).astype(np.float32)  # 5 frames: cropped kernel path

    def run(model: torch.nn.Module) -> dict:
        model.eval()
        io = {"audio": audio, "audio_short": audio_short}
        for i, h in enumerate(_hidden(model, audio)):
            io[f"hidden_{i}"] = h
        for i, h in enumerate(_hidden(model, audio_short)):
            io[f"short_hidden_{i}"] = h
        return io

    w2v_cfg = transformers.Wav2Vec2Config(**TINY, feat_extract_norm="group", mask_time_prob=0.05, mask_time_length=2)
    w2v = transformers.Wav2Vec2Model(w2v_cfg)
    _randomise(w2v, gen)
    w2v_io = run(w2v)
    w2v_state = _state(w2v)
    _write_case(out, "wav2vec2_group", w2v_cfg.to_dict(), w2v_state, w2v_io)

    ta_io = {k: v for k, v in w2v_io.items() if k not in ("hidden_0", "short_hidden_0")}  # extract_features: block outputs
    ta_cfg = dict(w2v_cfg.to_dict(), mask_time_prob=0.0, apply_spec_augment=False)
    _write_case(out, "torchaudio_wav2vec2", ta_cfg, _torchaudio_names(w2v_state), ta_io)

    # layer_norm_eps != 1e-5: transformers uses it for the projection/encoder LayerNorms, not the conv GroupNorm.
    hub_cfg = transformers.HubertConfig(**dict(TINY, num_conv_pos_embeddings=15), mask_time_prob=0.05, mask_time_length=2,
                                        layer_norm_eps=1e-3)
    hub = transformers.HubertModel(hub_cfg)
    _randomise(hub, gen)
    hub_io = run(hub)
    hub_state = {"hubert." + k: v for k, v in _legacy_weight_norm(_state(hub)).items()}
    _write_case(out, "hubert_group", hub_cfg.to_dict(), hub_state, hub_io)

    lay_cfg = transformers.Wav2Vec2Config(**TINY, feat_extract_norm="layer", conv_bias=True, mask_time_prob=0.0)
    lay = transformers.Wav2Vec2Model(lay_cfg)
    _randomise(lay, gen)
    _write_case(out, "wav2vec2_layer", lay_cfg.to_dict(), _state(lay), run(lay))


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "fixtures" / "encoder")
