"""What `scripts/infer.py` does: pick the predictor for a run or bundle, run it on each audio file, write outputs.

Regression: `infer.regression.from_run` / `from_bundle`, outputs `<audio stem>_{skin,tongue,...}`.
Diffusion: `infer.diffusion.from_run` / `from_bundle`, outputs named as the original
(`<stem>_<ACTOR_NAME>_<CONDITION>_<EMOTION_LABEL>_<INFERENCE_MODE>_...`).
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from a2f_jax.errors import ConfigError, DataError, describe


def network_type(source: pathlib.Path, bundle: bool) -> str:
    """"regression" or "diffusion", read from the bundle's network_info.json or the run's model_def.json."""
    if bundle:
        path = source / "network_info.json"
        if not path.is_file():
            raise DataError(describe(path, None, "the network_info.json of a deploy bundle", "no such file"))
        kind = json.loads(path.read_text()).get("id", {}).get("type")
        if kind not in ("regression", "diffusion"):
            raise DataError(describe(path, "id.type", "'regression' or 'diffusion'", repr(kind)))
        return kind
    path = source / "model_def.json"
    if not path.is_file():
        raise DataError(describe(path, None, "the model_def.json of a finished training run", "no such file"))
    return "diffusion" if json.loads(path.read_text()).get("network") == "diffusion_rnn" else "regression"


def parse_emotion(name: str | None, weights: str | None) -> tuple[Any, str | None]:
    """(emotion for the predictor, label for file names) from --emotion / --emotion-weights."""
    if weights:
        out = {}
        for item in weights.split(","):
            key, sep, val = item.partition("=")
            try:
                out[key.strip()] = float(val)
            except ValueError:
                sep = ""
            if not sep or not key.strip():
                raise ConfigError(describe("--emotion-weights", None, "name=weight pairs separated by commas", repr(weights)))
        return out, "mix"
    return name, name


def run(configs: Any, args: Any) -> list[pathlib.Path]:
    """Run inference for every `args.audio`; returns the written files."""
    from a2f_jax.data.audio import load_audio
    from a2f_jax.infer.regression import write_outputs

    bundle = args.bundle is not None
    source = pathlib.Path(args.bundle if bundle else args.run)
    if args.backend is not None and args.backend != ("onnx" if bundle else "jax"):
        raise ConfigError(describe("--backend", None, "'onnx' with --bundle, 'jax' with --run", repr(args.backend)))
    kind = network_type(source, bundle)
    icfg = configs.inference.to_dict() if hasattr(configs.inference, "to_dict") else dict(configs.inference)
    emotion, label = parse_emotion(args.emotion, args.emotion_weights)
    out_dir = pathlib.Path(args.out)
    npy = bool(args.npy or icfg.get("OUTPUT_NPY_FILE", kind == "regression"))
    maya = not args.no_maya_cache and bool(icfg.get("OUTPUT_MAYA_CACHE", True))
    written: list[pathlib.Path] = []
    if kind == "regression":
        from a2f_jax.infer import regression as R

        predictor = R.from_bundle(source) if bundle else R.from_run(source)
        actor = _bundle_actor(source) if bundle else None
        if isinstance(emotion, str) and emotion != "neutral" and emotion not in predictor.explicit_emotions:
            # the regression predictor maps unknown names to zeros; a typo on the command line should not
            raise ConfigError(describe("--emotion", None, f"one of {predictor.explicit_emotions} or 'neutral'", repr(emotion)))
        for path in args.audio:
            geom = predictor.predict(load_audio(path), fps=args.fps or 30.0, emotion=emotion)
            if getattr(args, "postprocess", False):
                geom = postprocessed(source, kind, actor, geom, bundle)
            name = pathlib.Path(path).name.split(".")[0]
            written += write_outputs(geom, out_dir, name, npy=npy, maya_cache=maya)
            if args.blendshapes:
                written += _blendshapes(source if bundle else None, actor, geom, out_dir / f"{name}_bs")
        return written
    from a2f_jax.infer import diffusion as D

    if args.mode:
        icfg["INFERENCE_MODE"] = args.mode
    if args.actor:
        icfg["CONDITION"] = icfg["ACTOR_NAME"] = args.actor
    engine = D.from_bundle(source, icfg) if bundle else D.from_run(source, icfg)
    label = label or icfg.get("EMOTION_LABEL") or "neutral"
    for path in args.audio:
        audio = load_audio(path)
        geom = engine.predict(audio, emotion=emotion, seed=args.seed, delta=True if args.delta else None)
        if getattr(args, "postprocess", False):
            if args.delta or engine.delta:
                raise ConfigError(describe("--postprocess", None, "absolute positions (no --delta, no *_output_delta mode)", "deltas"))
            geom = postprocessed(source, kind, engine.actor_name or engine.condition or engine.actors[0], geom, bundle)
        name = engine.output_name(path, label)
        written += write_outputs(geom, out_dir, name, npy=npy, maya_cache=maya)
        if args.blendshapes:
            if args.delta or engine.delta:
                raise ConfigError(describe("--blendshapes", None, "absolute positions (no --delta, no *_output_delta mode)", "deltas"))
            actor = engine.actor_name or engine.condition or engine.actors[0]
            written += _blendshapes(source if bundle else None, actor, geom, out_dir / f"{name}_bs")
    return written


def _bundle_actor(bundle: pathlib.Path) -> str:
    return json.loads((bundle / "network_info.json").read_text())["id"]["actor"]


def _blendshapes(bundle: pathlib.Path | None, actor: str | None, geom: Any, prefix: pathlib.Path) -> list[pathlib.Path]:
    """Solve skin (and tongue, when its files exist) weights with the bundle's `bs_<part>_<actor>.*` files."""
    from a2f_jax.infer.blendshapes import solve_to_files

    if bundle is None:
        raise ConfigError(describe("--blendshapes", None, "a --bundle with bs_skin_<actor>.npz / bs_skin_config_<actor>.json",
                                   "a training run"))
    skin_npz, skin_cfg = bundle / f"bs_skin_{actor}.npz", bundle / f"bs_skin_config_{actor}.json"
    if not skin_npz.is_file() or not skin_cfg.is_file():
        raise DataError(describe(skin_npz, None, f"the skin blendshape files of {actor} in the bundle", "no such file"))
    tongue_npz, tongue_cfg = bundle / f"bs_tongue_{actor}.npz", bundle / f"bs_tongue_config_{actor}.json"
    tongue = {}
    if tongue_npz.is_file() and tongue_cfg.is_file():
        tongue = dict(tongue_geometry=geom.tongue, tongue_bs_npz=tongue_npz, tongue_bs_config=tongue_cfg)
    paths = solve_to_files(geom.skin, skin_npz, skin_cfg, prefix, fps=geom.fps, **tongue)
    return list(paths.values())


def postprocessed(bundle_dir: pathlib.Path, kind: str, actor: str | None, geom: Any, is_bundle: bool) -> Any:
    """Apply the runtime post-processing of the bundle's model_config (as Maya-ACE shows the animation):
    strengths, two-stage smoothing, face mask, lip-open/eyelid offsets, tongue offsets and eye saccades."""
    import dataclasses
    import json

    import numpy as np

    from a2f_jax.infer import postprocess as pp

    if not is_bundle:
        raise ConfigError(describe("--postprocess", None, "a --bundle (its model_config and model_data)", "a --run"))
    def pick(stem: str, ext: str) -> pathlib.Path:  # diffusion bundles tag files with the actor, regression not
        tagged = bundle_dir / f"{stem}_{actor}.{ext}"
        return tagged if tagged.is_file() else bundle_dir / f"{stem}.{ext}"

    data = pp.ModelData.load(pick("model_data", "npz"), kind)
    config = json.loads(pick("model_config", "json").read_text())
    if kind == "regression":
        deltas = pp.deltas_from_regression(geom.raw, data)
    else:
        deltas = pp.Deltas(geom.skin - data.neutral_skin, geom.tongue - data.neutral_tongue, geom.jaw, geom.eye)
    out = pp.PostProcessor(data, config, geom.fps).process(deltas)
    return dataclasses.replace(geom, skin=out["skin"].astype(np.float32), tongue=out["tongue"].astype(np.float32),
                               eye=out["eyes"].astype(np.float32))
