"""Animate a clip from a deploy bundle the way the Audio2Face-3D SDK would: onnxruntime network feeding
(`export.runtime_feed`) followed by the runtime post-processing (`a2f_jax.infer.postprocess`).

A check that a bundle is usable end to end, and an SDK-equivalent reference for the Python inference paths.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

from a2f_jax.deploy import contract as C
from a2f_jax.deploy import runtime_feed as rf
from a2f_jax.deploy.onnx_utils import ort_session
from a2f_jax.errors import DataError, describe
from a2f_jax.infer import postprocess as pp
from a2f_jax.runs import Bundle


def animate(
    bundle_dir: str | pathlib.Path,
    audio: np.ndarray,
    *,
    actor: str | None = None,
    fps: float = 30.0,
    emotion: np.ndarray | None = None,
    blink_offset: np.ndarray | float = 0.0,
    seed: int = 0,
    features: pp.Features = pp.Features(),
    session: Any = None,
) -> dict[str, np.ndarray]:
    """audio: float32 16 kHz mono [N]. Returns {"skin" [T,V_s,3], "tongue" [T,V_t,3], "jaw" [T,16], "eyes" [T,6]}.

    Regression runs at `fps` (caller-chosen, as in the SDK) with the model_config's source_shot/frame implicit
    emotion; diffusion runs at the network's own rate (60 fps) with constant noise drawn from `seed`.
    emotion: explicit emotion [E] (default: network_info default_emotion). input_strength from model_config is
    applied to the audio for regression (the SDK does not apply it for diffusion, docs/bundle_contract.md "What the runtime does with the outputs").
    """
    bundle = Bundle(bundle_dir)
    info = bundle.network_info()
    kind, p = info["id"]["type"], info["params"]
    identities = list(p["identities"])
    actor = identities[0] if actor is None else actor
    if actor not in identities:
        raise DataError(describe(bundle.file(Bundle.NETWORK_INFO), "params.identities", f"an entry {actor!r}", str(identities)))
    cfg = json.loads(bundle.file(Bundle.model_config_name(kind, actor)).read_text())["config"]
    data = pp.ModelData.load(bundle.file(Bundle.model_data_name(kind, actor)), kind)
    run = rf.ort_runner(session if session is not None else ort_session(bundle.file(Bundle.NETWORK_ONNX)))
    explicit = np.asarray(p["default_emotion"] if emotion is None else emotion, np.float32)
    if explicit.shape != (len(C.network_emotions(info)),):
        raise DataError(describe("emotion", None, f"[{len(C.network_emotions(info))}] in network_info order", str(explicit.shape)))
    if kind == "regression":
        with np.load(bundle.file(Bundle.EMO_DB)) as z:
            names = [n.decode() for n in z["emo_spec_names"]]
            start = dict(zip(names, z["emo_spec_start"].tolist()))[cfg["source_shot"]]
            implicit = z["emo_db"][start + int(cfg["source_frame"])]
        rows = rf.run_regression(run, audio, np.concatenate([implicit, explicit]), fps=fps,
                                 input_strength=float(cfg["input_strength"]), buffer_len=info["audio_params"]["buffer_len"],
                                 buffer_ofs=info["audio_params"]["buffer_ofs"])
        deltas = pp.deltas_from_regression(rows, data)
    else:
        stream = rf.DiffusionStream.from_network_info(info)
        fps = stream.fps
        noise = np.random.default_rng(seed).standard_normal((stream.steps + 1, stream.frames, stream.out_dim)).astype(np.float32)
        identity = np.eye(len(identities), dtype=np.float32)[identities.index(actor)]
        deltas = pp.deltas_from_diffusion(rf.run_diffusion(run, audio, stream, identity, explicit, noise), data)
    return pp.PostProcessor(data, cfg, fps, features).process(deltas, blink_offset)
