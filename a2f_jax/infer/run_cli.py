"""What `scripts/infer.py` does: pick the predictor for a run or bundle, run it on each audio file, write outputs.

Regression: `infer.regression.from_run` / `from_bundle`, outputs `<audio stem>_{skin,tongue,...}`.
Diffusion: `infer.diffusion.from_run` / `from_bundle`, outputs named as the original
(`<stem>_<ACTOR_NAME>_<CONDITION>_<EMOTION_LABEL>_<INFERENCE_MODE>_...`).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Any, Iterable, Iterator

import numpy as np

from a2f_jax.blendshapes import solve_to_files
from a2f_jax.data.audio import load_audio
from a2f_jax.errors import ConfigError, DataError, describe
from a2f_jax.infer import diffusion as D
from a2f_jax.infer import outputs
from a2f_jax.infer import postprocess as pp
from a2f_jax.infer import regression as R
from a2f_jax.infer.regression import read_json
from a2f_jax.runs import Bundle, TrainingRun

SAMPLE_RATE = 16000


def network_type(source: pathlib.Path, bundle: bool) -> str:
    """"regression" or "diffusion", read from the bundle's network_info.json or the run's model_def.json."""
    return Bundle(source).network_type() if bundle else TrainingRun(source).network_type()


def parse_emotion(name: str | None, weights: str | None) -> tuple[Any, str | None]:
    """(emotion for the predictor, label for file names) from --emotion / --emotion-weights (each weight in [0, 1])."""
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
            if not 0.0 <= out[key.strip()] <= 1.0:  # NaN too
                raise ConfigError(describe("--emotion-weights", key.strip(), "a weight in [0, 1]", val.strip()))
        return out, "mix"
    return name, name


def check_audio(path: str | pathlib.Path, num_samples: int, fps: float) -> int:
    """Frames of a clip at `fps`, int(N/16000·fps); a clip shorter than one frame is a DataError naming it."""
    frames = int(num_samples / SAMPLE_RATE * fps)
    if frames < 1:
        raise DataError(describe(path, "samples", f"at least {math.ceil(SAMPLE_RATE / fps)} samples at 16 kHz "
                                 f"(one frame at {fps:g} fps)", f"{num_samples}"))
    return frames


def run(configs: Any, args: Any) -> list[pathlib.Path]:
    """Run inference for every `args.audio`; returns the written files.

    Each clip is predicted, post-processed and written chunk by chunk (`infer.outputs`), so memory stays
    bounded for any length: regression always, diffusion in the streaming modes (offline samples the whole
    clip in one pass). `--blendshapes` solves the whole clip at once and holds its skin and tongue.
    """
    bundle = args.bundle is not None
    source = pathlib.Path(args.bundle if bundle else args.run)
    if args.backend is not None and args.backend != ("onnx" if bundle else "jax"):
        raise ConfigError(describe("--backend", None, "'onnx' with --bundle, 'jax' with --run", repr(args.backend)))
    kind = network_type(source, bundle)
    icfg = configs.inference.to_dict() if hasattr(configs.inference, "to_dict") else dict(configs.inference)
    emotion, label = parse_emotion(args.emotion, args.emotion_weights)
    npy = bool(args.npy or icfg.get("OUTPUT_NPY_FILE", kind == "regression"))
    maya = not args.no_maya_cache and bool(icfg.get("OUTPUT_MAYA_CACHE", True))
    clips = _regression_clips(source, bundle, args, emotion) if kind == "regression" else \
        _diffusion_clips(source, bundle, args, emotion, label, icfg)
    written: list[pathlib.Path] = []
    for clip in clips:
        written += _write_clip(clip, source, kind, bundle, args, npy, maya)
    return written


@dataclasses.dataclass
class _Clip:
    """One audio file's prediction, not yet run: Geometry chunks, frame count, output name, actor, units."""

    chunks: Iterator[Any]
    frames: int
    fps: float
    name: str
    actor: str | None
    deltas: bool = False


def _regression_clips(source: pathlib.Path, bundle: bool, args: Any, emotion: Any) -> Iterator[_Clip]:
    fps = 30.0 if args.fps is None else float(args.fps)
    if not fps > 0:
        raise ConfigError(describe("--fps", None, "a positive frame rate", repr(args.fps)))
    predictor = R.from_bundle(source) if bundle else R.from_run(source)
    actor = _bundle_actor(source) if bundle else None
    if isinstance(emotion, str) and emotion != "neutral" and emotion not in predictor.explicit_emotions:
        # the regression predictor maps unknown names to zeros; a typo on the command line should not
        raise ConfigError(describe("--emotion", None, f"one of {predictor.explicit_emotions} or 'neutral'", repr(emotion)))
    predictor.explicit(emotion)  # weights are checked before the first clip runs
    for path in args.audio:
        audio = load_audio(path)
        frames = check_audio(path, len(audio), fps)
        yield _Clip(predictor.iter_geometry(audio, fps=fps, emotion=emotion, num_frames=frames), frames, fps,
                    pathlib.Path(path).name.split(".")[0], actor)


def _diffusion_clips(source: pathlib.Path, bundle: bool, args: Any, emotion: Any, label: str | None,
                     icfg: dict) -> Iterator[_Clip]:
    if args.mode:
        icfg["INFERENCE_MODE"] = args.mode
    if args.actor:
        icfg["CONDITION"] = icfg["ACTOR_NAME"] = args.actor
    engine = D.from_bundle(source, icfg) if bundle else D.from_run(source, icfg)
    label = label or icfg.get("EMOTION_LABEL") or "neutral"
    engine.emotion_vector(emotion)  # names and weights are checked before the first clip runs
    deltas = bool(args.delta or engine.delta)
    for path in args.audio:
        audio = load_audio(path)
        frames = check_audio(path, len(audio), engine.fps)
        chunks = engine.iter_geometry(audio, emotion=emotion, num_frames=frames, seed=args.seed, delta=True if args.delta else None)
        yield _Clip(chunks, frames, engine.fps, engine.output_name(path, label),
                    engine.actor_name or engine.condition or engine.actors[0], deltas)


def _write_clip(clip: _Clip, source: pathlib.Path, kind: str, bundle: bool, args: Any, npy: bool, maya: bool) -> list[pathlib.Path]:
    """Post-process (optional) and write one clip's chunks; solve blendshapes on the whole clip if asked."""
    out_dir = pathlib.Path(args.out)
    chunks = clip.chunks
    if getattr(args, "postprocess", False):
        if clip.deltas:
            raise ConfigError(describe("--postprocess", None, "absolute positions (no --delta, no *_output_delta mode)", "deltas"))
        chunks = postprocess_chunks(source, kind, clip.actor, chunks, bundle, clip.fps)
    kept: list[Any] = []
    if args.blendshapes:
        if clip.deltas:
            raise ConfigError(describe("--blendshapes", None, "absolute positions (no --delta, no *_output_delta mode)", "deltas"))
        if not bundle:
            raise ConfigError(describe("--blendshapes", None, "a --bundle with bs_skin_<actor>.npz / bs_skin_config_<actor>.json",
                                       "a training run"))
        chunks = _keep(chunks, kept)
    written = outputs.write_chunks(chunks, out_dir, clip.name, clip.frames, clip.fps, npy=npy, maya_cache=maya)
    if args.blendshapes:
        skin = np.concatenate([g.skin for g in kept])
        tongue = np.concatenate([g.tongue for g in kept])
        kept.clear()
        written += _blendshapes(source, clip.actor, skin, tongue, clip.fps, out_dir / f"{clip.name}_bs")
    return written


def _keep(chunks: Iterable[Any], kept: list[Any]) -> Iterator[Any]:
    for g in chunks:
        kept.append(g)
        yield g


def _bundle_actor(bundle: pathlib.Path) -> str:
    return Bundle(bundle).network_info()["id"]["actor"]


def _blendshapes(bundle: pathlib.Path, actor: str | None, skin: np.ndarray, tongue: np.ndarray, fps: float,
                 prefix: pathlib.Path) -> list[pathlib.Path]:
    """Solve skin (and tongue, when its files exist) weights with the bundle's `bs_<part>_<actor>.*` files."""
    skin_npz, skin_cfg = Bundle(bundle).blendshapes(actor, "skin")
    if not skin_npz.is_file() or not skin_cfg.is_file():
        raise DataError(describe(skin_npz, None, f"the skin blendshape files of {actor} in the bundle", "no such file"))
    tongue_npz, tongue_cfg = Bundle(bundle).blendshapes(actor, "tongue")
    extra = {}
    if tongue_npz.is_file() and tongue_cfg.is_file():
        extra = dict(tongue_geometry=tongue, tongue_bs_npz=tongue_npz, tongue_bs_config=tongue_cfg)
    paths = solve_to_files(skin, skin_npz, skin_cfg, prefix, fps=fps, **extra)
    return list(paths.values())


def postprocess_chunks(bundle_dir: pathlib.Path, kind: str, actor: str | None, chunks: Iterable[Any],
                       is_bundle: bool, fps: float) -> Iterator[Any]:
    """Apply the runtime post-processing of the bundle's model_config (as Maya-ACE shows the animation):
    strengths, two-stage smoothing, face mask, lip-open/eyelid offsets, tongue offsets and eye saccades.
    One stateful PostProcessor runs over the consecutive chunks (the same result as the whole clip at once)."""
    if not is_bundle:
        raise ConfigError(describe("--postprocess", None, "a --bundle (its model_config and model_data)", "a --run"))

    bundle = Bundle(bundle_dir)  # diffusion bundles tag files with the actor, regression not
    data = pp.ModelData.load(bundle.model_data(kind, actor), kind)
    config = read_json(bundle.model_config(kind, actor), "the model_config.json of a deploy bundle")
    processor = pp.PostProcessor(data, config, fps)  # fps: the executor frame rate, the clip's
    for geom in chunks:
        if kind == "regression":
            deltas = pp.deltas_from_regression(geom.raw, data)
        else:
            deltas = pp.Deltas(geom.skin - data.neutral_skin, geom.tongue - data.neutral_tongue, geom.jaw, geom.eye)
        out = processor.process(deltas)
        yield dataclasses.replace(geom, skin=out["skin"].astype(np.float32), tongue=out["tongue"].astype(np.float32),
                                  eye=out["eyes"].astype(np.float32))
