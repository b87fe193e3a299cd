"""Audio encoder benchmarks: base-size wav2vec2 / HuBERT forward (eval, jit, after warm-up) on 1 s and 10 s of
audio, and the regression front end (64 windows x 8320 samples through the conv feature encoder + 1 block,
train mode as in the original's step, and eval).

When torch and transformers are importable in the running interpreter, the same transformers PyTorch model
(random weights) is timed on the same input and the ratio torch/jax is reported (> 1: JAX is faster).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from a2f_jax.benchmarks import timeit
from a2f_jax.models.audio_encoder import TORCHAUDIO_WAV2VEC2_BASE, AudioEncoder, EncoderConfig
from a2f_jax.models.encoder_weights import random_init

# lazy imports: `bench.py --only X` discovers every area module and must not import every area's stack

_TINY = dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128, conv_dim=(32,) * 7,
             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)


def _torch_timer(model_type: str, cfg: EncoderConfig, num_layers: int, audio: np.ndarray, repeats: int) -> Callable[[], dict] | None:
    try:
        import torch
        import transformers
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    hf_cls, model_cls = (
        (transformers.HubertConfig, transformers.HubertModel) if model_type == "hubert"
        else (transformers.Wav2Vec2Config, transformers.Wav2Vec2Model)
    )
    fields = {k: getattr(cfg, k) for k in ("hidden_size", "num_attention_heads", "intermediate_size", "conv_dim",
                                           "conv_kernel", "conv_stride", "num_conv_pos_embeddings",
                                           "num_conv_pos_embedding_groups")}
    model = model_cls(hf_cls(**fields, num_hidden_layers=num_layers)).eval()
    x = torch.from_numpy(audio)

    def run() -> None:
        with torch.no_grad():
            model(x)

    return lambda: timeit(run, repeats=repeats)


def _forward(model_type: str, quick: bool) -> dict:
    logging.getLogger("a2f_jax.models.encoder_weights").setLevel(logging.ERROR)
    cfg = EncoderConfig(model_type=model_type, **(_TINY if quick else {}))
    params = random_init(cfg, jax.random.key(0))
    model = AudioEncoder(cfg)
    fwd = jax.jit(lambda p, a: model.apply({"params": p}, a, train=False).last_hidden_state)
    out: dict[str, Any] = {"model": f"{model_type}-base" if not quick else f"{model_type}-tiny", "mode": "eval, batch 1"}
    for seconds in ((1,) if quick else (1, 10)):
        audio = (np.random.default_rng(0).standard_normal((1, 16000 * seconds)) * 0.1).astype(np.float32)
        a = jnp.asarray(audio)
        res = timeit(lambda: fwd(params, a).block_until_ready(), repeats=3)
        entry = {"jax": res, "realtime_factor": round(seconds / res["best_s"], 2)}
        torch_timer = None if quick else _torch_timer(model_type, cfg, cfg.num_hidden_layers, audio, 3)
        if torch_timer is not None:
            entry["torch"] = torch_timer()
            entry["torch_over_jax"] = round(entry["torch"]["best_s"] / res["best_s"], 3)
        out[f"{seconds}s"] = entry
    return out


def wav2vec2_base_forward(quick: bool) -> dict:
    return _forward("wav2vec2", quick)


def hubert_base_forward(quick: bool) -> dict:
    return _forward("hubert", quick)


def regression_frontend(quick: bool) -> dict:
    """The regression step's frozen encoder: [64, 8320] windows -> conv features -> 1 block (torchaudio config)."""
    logging.getLogger("a2f_jax.models.encoder_weights").setLevel(logging.ERROR)
    cfg = TORCHAUDIO_WAV2VEC2_BASE.extract_features_mode()
    if quick:
        cfg = cfg.replace(**_TINY)
    batch = 4 if quick else 64
    params = random_init(cfg, jax.random.key(0), num_layers=1)
    model = AudioEncoder(cfg, 1)
    audio = (np.random.default_rng(0).standard_normal((batch, 8320)) * 0.1).astype(np.float32)
    a = jnp.asarray(audio)
    train = jax.jit(lambda p, x, k: model.apply({"params": p}, x, train=True, rngs={"dropout": k}).last_hidden_state)
    evl = jax.jit(lambda p, x: model.apply({"params": p}, x, train=False).last_hidden_state)
    key = jax.random.key(1)
    out: dict[str, Any] = {
        "shape": [batch, 8320], "layers": 1,
        "train_mode": timeit(lambda: train(params, a, key).block_until_ready(), repeats=3),
    }
    if not quick:  # one compile fewer for the smoke test
        out["eval_mode"] = timeit(lambda: evl(params, a).block_until_ready(), repeats=3)
    torch_timer = None if quick else _torch_timer("wav2vec2", cfg, 1, audio, 3)
    if torch_timer is not None:
        out["torch_eval"] = torch_timer()
        out["torch_over_jax_eval"] = round(out["torch_eval"]["best_s"] / out["eval_mode"]["best_s"], 3)
    out["load_average"] = os.getloadavg()
    return out


BENCHMARKS = {
    "wav2vec2_base_forward": wav2vec2_base_forward,
    "hubert_base_forward": hubert_base_forward,
    "regression_frontend": regression_frontend,
}
