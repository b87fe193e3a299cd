"""Assemble the deploy bundle read by Maya-ACE and the Audio2Face-3D SDK (docs/bundle_contract.md).

`write_bundle` takes everything explicitly (network_info dict, ONNX model, per-actor model data, inference
CONFIG, emotion DB, blendshape files), writes it into a temporary directory, checks it with `export.check`,
and renames it onto `out_dir` only when complete and clean. `deploy_run` resolves those inputs from a
training run dir and the preproc run dirs it names, as the original's `deploy.run` does.
"""

from __future__ import annotations

import json
import logging
import pathlib
import shutil
import tempfile
from typing import Any, Mapping

import jax
import numpy as np

from a2f_jax import rundir
from a2f_jax.deploy import check as bundle_check
from a2f_jax.deploy import contract as C
from a2f_jax.deploy import onnx_diffusion, onnx_regression
from a2f_jax.errors import CheckpointError, ConfigError, DataError, RunError, describe
from a2f_jax.io_utils import atomic_dir
from a2f_jax.models import diffusion_rnn, regression
from a2f_jax.runs import Bundle, PreprocRun, TrainingRun, check_finite

log = logging.getLogger(__name__)

PathLike = str | pathlib.Path


class BundleError(DataError):
    """The assembled bundle violates the consumer contract; nothing was written."""


# ------------------------------------------------------------------------------------------ model_config


def model_config(network_type: str, config: Mapping[str, Any] | None, emo_specs: Mapping[str, tuple[int, int]] | None = None) -> dict:
    """`{"config": {...}}` for model_config[_<actor>].json: the inference CONFIG merged over the defaults,
    in the original's key order, every value checked against the SDK's accepted range.

    Regression: source_shot/source_frame default to the first emo-DB shot and frame 0 when unset (as deploy.py).
    """
    config = dict(config or {})
    unknown = sorted(set(config) - set(C.MODEL_CONFIG_KEYS) - set(C.REGRESSION_SOURCE_KEYS))
    if unknown:
        raise ConfigError(describe("config_inference", "CONFIG", f"keys among {list(C.MODEL_CONFIG_KEYS)}", str(unknown)))
    defaults = dict(C.DEFAULT_MODEL_CONFIG)
    if network_type == "diffusion":
        defaults["upper_face_smoothing"] = 0.003
    out: dict[str, Any] = {}
    for key, rng in C.MODEL_CONFIG_RANGES.items():
        val = config.get(key, defaults[key])
        if key in C.MODEL_CONFIG_INT_KEYS:
            if isinstance(val, float) and val.is_integer():
                val = int(val)
            if not isinstance(val, int) or isinstance(val, bool):
                raise ConfigError(describe("config_inference", f"CONFIG.{key}", "an integer", repr(val)))
        elif isinstance(val, bool) or not isinstance(val, (int, float)) or not np.isfinite(val):
            raise ConfigError(describe("config_inference", f"CONFIG.{key}", "a finite number", repr(val)))
        if rng is not None and not rng[0] <= val <= rng[1]:
            raise ConfigError(describe("config_inference", f"CONFIG.{key}", f"a value in [{rng[0]}, {rng[1]}] (SDK range)", repr(val)))
        out[key] = val
    if network_type == "regression":
        shot, frame = config.get("source_shot"), config.get("source_frame")
        if shot is None or frame is None:
            if not emo_specs:
                raise ConfigError(describe("config_inference", "CONFIG.source_shot", "a shot name, or an emotion DB to default from", "None"))
            shot, frame = next(iter(emo_specs)), 0
        if emo_specs is not None:
            if shot not in emo_specs:
                raise ConfigError(describe("config_inference", "CONFIG.source_shot",
                                           f"one of the emotion DB shots {list(emo_specs)[:8]}", repr(shot)))
            if not (isinstance(frame, int) and 0 <= frame < emo_specs[shot][1]):
                raise ConfigError(describe("config_inference", "CONFIG.source_frame", f"an integer in [0, {emo_specs[shot][1]})", repr(frame)))
        out["source_shot"], out["source_frame"] = str(shot), int(frame)
    elif network_type != "diffusion":
        raise ConfigError(describe(Bundle.NETWORK_INFO, "id.type", f"one of {C.NETWORK_TYPES}", repr(network_type)))
    return {"config": out}


# --------------------------------------------------------------------------------------------------- NPZ


def _load_npz(source: PathLike | Mapping[str, np.ndarray], what: str) -> dict[str, np.ndarray]:
    if isinstance(source, Mapping):
        return {k: np.asarray(v) for k, v in source.items()}
    path = pathlib.Path(source)
    if not path.is_file():
        raise DataError(describe(path, None, f"{what} (.npz)", "no such file"))
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def model_data_arrays(source: PathLike | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The 11 arrays of preproc network_data.npz in canonical order, float32 C-order (neutral_* aliased
    to shapes_mean_* when absent, as preproc writes the same array twice)."""
    arrays = _load_npz(source, "model data")
    arrays.setdefault("neutral_skin", arrays.get("shapes_mean_skin"))
    arrays.setdefault("neutral_tongue", arrays.get("shapes_mean_tongue"))
    missing = [k for k in C.MODEL_DATA_KEYS if arrays.get(k) is None]
    if missing:
        where = source if not isinstance(source, Mapping) else "model data"
        raise DataError(describe(where, None, f"arrays {list(C.MODEL_DATA_KEYS)}", f"missing {missing}"))
    return {k: np.ascontiguousarray(arrays[k], dtype=np.float32) for k in C.MODEL_DATA_KEYS}


def emo_db_arrays(source: PathLike | Mapping[str, Any]) -> dict[str, np.ndarray]:
    """implicit_emo_db arrays: emo_db float32, names bytes (S), start/size int32, sorted by start.

    source: an npz path / dict with the four arrays, or {"emo_db": [N, 16], "emo_specs": {shot: (start, size)}}.
    """
    if not isinstance(source, Mapping) or "emo_specs" not in source:
        raw = _load_npz(source, "implicit emotion DB")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in raw["emo_spec_names"].tolist()]
        specs = dict(zip(names, zip(raw["emo_spec_start"].tolist(), raw["emo_spec_size"].tolist())))
        db = raw["emo_db"]
    else:
        specs, db = dict(source["emo_specs"]), np.asarray(source["emo_db"])
    order = sorted(specs, key=lambda k: specs[k][0])
    for name in order:
        if not C.IDENTIFIER_RE.match(name.replace("::", "_")):
            raise DataError(describe("implicit_emo_db", "emo_spec_names", "ASCII shot ids", repr(name)))
    return {
        "emo_db": np.ascontiguousarray(db, dtype=np.float32),
        "emo_spec_names": np.array([n.encode("ascii") for n in order], dtype="S"),
        "emo_spec_start": np.array([specs[n][0] for n in order], dtype=np.int32),
        "emo_spec_size": np.array([specs[n][1] for n in order], dtype=np.int32),
    }


def _savez(path: pathlib.Path, arrays: Mapping[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # plain (stored) archive: the SDK's cnpy reader cannot inflate


def _write_json(path: pathlib.Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=4, allow_nan=False), encoding="ascii")


# ------------------------------------------------------------------------------------------------ bundle


def write_bundle(
    out_dir: PathLike,
    *,
    network_info: Mapping[str, Any],
    onnx_model: PathLike | bytes | Any,
    model_data: Mapping[str, PathLike | Mapping[str, np.ndarray]],
    inference_config: Mapping[str, Any] | None = None,
    emo_db: PathLike | Mapping[str, Any] | None = None,
    trt_info: Mapping[str, Any] | None = None,
    blendshapes: Mapping[str, Mapping[str, tuple[PathLike, PathLike]]] | None = None,
    check: bool = True,
    run_onnx: bool = True,
    readme_extra: str = "",
) -> pathlib.Path:
    """Write a complete bundle to `out_dir` (which must not exist) atomically.

    network_info: the deploy network_info.json dict; its `params.identities` order is the actor order.
    onnx_model: path to network.onnx, serialized bytes, or an `onnx.ModelProto`.
    model_data: actor -> preproc network_data.npz path (or arrays).
    inference_config: the inference CONFIG dict (post-processing knobs; partial dicts keep the defaults).
    emo_db: regression implicit emotion DB (npz path or arrays); required for regression.
    trt_info: trt_info.json dict; derived from network_info when None.
    blendshapes: actor -> {"skin"|"tongue": (npz path, config json path)}; copied verbatim.
    check: run `export.check.check_bundle` on the temp dir and refuse (BundleError) on any error.
    """
    out_dir = pathlib.Path(out_dir)
    info = json.loads(json.dumps(network_info))  # plain JSON types, and a copy
    info_violations = bundle_check.errors(bundle_check.check_network_info(info))
    if info_violations:
        raise BundleError("network_info is invalid:\n" + bundle_check.format_report(info_violations))
    kind = info["id"]["type"]
    actors = list(info["params"]["identities"])
    if sorted(model_data) != sorted(actors):
        raise DataError(describe(Bundle.NETWORK_INFO, "params.identities", f"model data for exactly {actors}", str(sorted(model_data))))
    if kind == "regression" and emo_db is None:
        raise DataError(describe("training run", Bundle.EMO_DB, "an implicit emotion DB (regression)", "none"))
    blendshapes = blendshapes or {}

    with atomic_dir(out_dir) as tmp:
        # network.onnx first: a bundle without its network is useless, fail early
        _write_onnx(tmp / Bundle.NETWORK_ONNX, onnx_model)
        _write_json(tmp / Bundle.NETWORK_INFO, info)
        _write_json(tmp / Bundle.TRT_INFO, dict(trt_info) if trt_info is not None else C.trt_info(info))
        emo_specs = None
        if kind == "regression":
            emo = emo_db_arrays(emo_db)
            _savez(tmp / Bundle.EMO_DB, emo)
            emo_specs = {n.decode(): (int(s), int(k)) for n, s, k in zip(emo["emo_spec_names"], emo["emo_spec_start"], emo["emo_spec_size"])}
        bs_entries: list[dict] = []
        for actor in actors:
            _write_json(tmp / Bundle.model_config_name(kind, actor), model_config(kind, inference_config, emo_specs))
            _savez(tmp / Bundle.model_data_name(kind, actor), model_data_arrays(model_data[actor]))
            entry: dict[str, dict[str, str]] = {}
            for part in ("skin", "tongue"):
                if part not in blendshapes.get(actor, {}):
                    continue
                data_src, cfg_src = (pathlib.Path(p) for p in blendshapes[actor][part])
                if not (data_src.is_file() and cfg_src.is_file()):
                    continue  # the original copies a pair only when both files exist
                data_name, cfg_name = Bundle.blendshape_names(actor, part)
                shutil.copyfile(data_src, tmp / data_name)
                shutil.copyfile(cfg_src, tmp / cfg_name)
                entry[part] = {"config": cfg_name, "data": data_name}
            bs_entries.append(entry)
        _write_json(tmp / Bundle.MODEL_JSON, model_json(kind, actors, bs_entries))
        readme = C.readme_text(kind, len(actors))
        (tmp / Bundle.README).write_text(readme + ("\n\n" + readme_extra.strip() + "\n" if readme_extra.strip() else ""))
        if check:
            violations = bundle_check.check_bundle(tmp, run_onnx=run_onnx)
            for v in violations:
                if v.severity != "error":
                    log.warning("bundle: %s", v)
            bad = bundle_check.errors(violations)
            if bad:
                raise BundleError(f"{out_dir}: the assembled bundle breaks the consumer contract, nothing written:\n"
                                  + bundle_check.format_report(bad))
    log.info("deploy bundle written to %s", out_dir)
    return out_dir


def model_json(kind: str, actors: list[str], bs_entries: list[dict]) -> dict:
    """model.json with the original's key order."""
    out: dict[str, Any] = {"networkInfoPath": Bundle.NETWORK_INFO, "networkPath": Bundle.NETWORK_TRT}
    if kind == "regression":
        out["modelConfigPath"] = Bundle.model_config_name(kind, actors[0])
        out["modelDataPath"] = Bundle.model_data_name(kind, actors[0])
        out["emotionDatabasePath"] = Bundle.EMO_DB
        out["blendshapePaths"] = bs_entries[0]
    else:
        out["modelConfigPaths"] = [Bundle.model_config_name(kind, a) for a in actors]
        out["modelDataPaths"] = [Bundle.model_data_name(kind, a) for a in actors]
        out["blendshapePaths"] = bs_entries
    return out


def _write_onnx(path: pathlib.Path, model: PathLike | bytes | Any) -> None:
    if isinstance(model, (bytes, bytearray)):
        path.write_bytes(bytes(model))
    elif isinstance(model, (str, pathlib.Path)):
        src = pathlib.Path(model)
        if not src.is_file():
            raise DataError(describe(src, None, "an ONNX file", "no such file"))
        shutil.copyfile(src, path)
    else:
        path.write_bytes(model.SerializeToString())  # onnx.ModelProto; < 2 GB, weights stay inside


# --------------------------------------------------------------------------------------- from run dirs


def deploy_run(configs: Any, training_run: PathLike, onnx_model: PathLike | bytes | Any | None = None, out_root: PathLike | None = None,
               check: bool = True, run_onnx: bool = True, allow_incomplete: bool = False) -> pathlib.Path:
    """Bundle a finished training run into `<FINAL_DEPLOY_ROOT>/<run name>` (FW `deploy.run`).

    training_run: a run dir path, or a run name under TRAIN_OUTPUT_ROOT. The ONNX comes from `onnx_model`,
    else `<run>/deploy/network.onnx`, else it is exported from the run's final params.msgpack. Everything that
    can be checked without the (slow) export is checked first: the run's status (complete or stopped; also
    interrupted with `allow_incomplete`), an existing bundle folder, the preproc files and the parameters.
    """
    train_cfg = configs.train
    run_dir = _training_run_dir(training_run, train_cfg)
    run = TrainingRun(run_dir)
    record = require_deployable(run_dir, allow_incomplete)
    out_dir = pathlib.Path(out_root if out_root is not None else train_cfg.FINAL_DEPLOY_ROOT) / run_dir.name
    if out_dir.exists():
        raise RunError(describe(out_dir, None, "no bundle there yet (deploy never overwrites one: remove it or choose --out-root)",
                                "an existing " + ("folder" if out_dir.is_dir() else "file")))
    info_path = run.find(TrainingRun.NETWORK_INFO)
    if info_path is None:
        raise DataError(describe(run_dir, TrainingRun.NETWORK_INFO, "the deploy network info written by training", "missing"))
    info = run.network_info()
    kind = info.get("id", {}).get("type")
    if getattr(configs, "network_type", kind) != kind:
        raise ConfigError(describe(info_path, "id.type", f"{configs.network_type!r} (the config's network type)", repr(kind)))
    actors = list(info.get("params", {}).get("identities", []))
    model_data, blendshapes = _preproc_inputs(run, train_cfg, actors)
    if onnx_model is None:
        onnx_model = run.find(TrainingRun.NETWORK_ONNX)
    if onnx_model is None:
        onnx_model = _export_run(configs, run_dir, info, interrupted=record["status"] == "interrupted")
    trt_path = run.find(TrainingRun.TRT_INFO)
    if trt_path is not None:
        differences = trt_differences(trt_path, info)
        if differences:
            # trt_info is fully determined by network_info; write the original's layout rather than copy a variant
            log.warning("%s differs from the trt_info derived from network_info.json (%s); writing the derived one",
                        trt_path, "; ".join(differences))
    emo_path = run.find(TrainingRun.EMO_DB_NPZ) if kind == "regression" else None
    return write_bundle(
        out_dir,
        network_info=info,
        onnx_model=onnx_model,
        model_data=model_data,
        inference_config=dict(configs.inference.CONFIG),
        emo_db=emo_path,
        trt_info=None,
        blendshapes=blendshapes,
        check=check,
        run_onnx=run_onnx,
        readme_extra=_readme_body(run_dir, actors),
    )


def _training_run_dir(training_run: PathLike, train_cfg: Any) -> pathlib.Path:
    run_dir = pathlib.Path(training_run)
    if not run_dir.is_dir():
        run_dir = pathlib.Path(train_cfg.TRAIN_OUTPUT_ROOT) / str(training_run)
    if not run_dir.is_dir():
        raise RunError(describe(training_run, None, "a training run dir (or a run name under TRAIN_OUTPUT_ROOT)", "no such directory"))
    return run_dir


def require_deployable(run_dir: pathlib.Path, allow_incomplete: bool = False) -> dict:
    """The run's status record if it may be deployed: complete or stopped, or interrupted with `allow_incomplete`
    (warned); a RunError otherwise."""
    accept = rundir.FINISHED_STATUSES + (("interrupted",) if allow_incomplete else ())
    try:
        record = rundir.require_finished(run_dir, "training run", accept)
    except RunError as exc:
        if (rundir.read_status(run_dir) or {}).get("status") == "interrupted":
            raise RunError(f"{exc}; continue it with scripts/train.py --resume, or deploy it as it is with "
                           "--allow-incomplete") from None
        raise
    if record["status"] == "interrupted":
        log.warning("%s was interrupted before its last step%s; deploying it as it is (--allow-incomplete)", run_dir,
                    f" (at step {record['step']})" if "step" in record else "")
    return record


def _preproc_inputs(run: TrainingRun, train_cfg: Any, actors: list[str]) -> tuple[dict, dict]:
    """({actor: network_data.npz}, {actor: {part: (bs npz, bs config)}}) of the preproc runs the training used."""
    preproc_runs = run.preproc_runs()
    if sorted(preproc_runs) != sorted(actors):
        raise DataError(describe(run.file(TrainingRun.PREPROC_INFO), "preproc_run_name_full", f"exactly the identities {actors}",
                                 str(sorted(preproc_runs))))
    model_data, blendshapes = {}, {}
    for actor in actors:
        pre: PreprocRun = run.preproc_run(actor, train_cfg.PREPROC_ROOT)
        model_data[actor] = pre.network_data()
        if not model_data[actor].is_file():
            raise DataError(describe(model_data[actor], None, f"the model data of actor {actor!r} (preproc run {pre.name})", "no such file"))
        blendshapes[actor] = {part: pre.blendshapes(actor, part) for part in ("skin", "tongue")}
    return model_data, blendshapes


def _export_run(configs: Any, run_dir: pathlib.Path, info: Mapping[str, Any], interrupted: bool) -> Any:
    """The ONNX model of the run's final params.msgpack; for an interrupted run (which writes none, and may hold a
    stale one from an earlier session) of its newest intact checkpoint."""
    if not interrupted:
        TrainingRun(run_dir).check_params()
        return _export_from_checkpoint(configs, run_dir, info)
    ckpt_dir = run_dir / TrainingRun.CHECKPOINTS
    params, step = checkpoint_params(ckpt_dir, _param_shapes(run_dir, info["id"]["type"]))
    check_finite(params, ckpt_dir / str(step))
    log.warning("exporting the parameters of checkpoint %s: the run was interrupted before writing its final ones", ckpt_dir / str(step))
    with tempfile.TemporaryDirectory(prefix="a2f_deploy_") as tmp:  # the exporters read a run: model_def + params
        copy = TrainingRun(tmp)
        copy.write_model_def(TrainingRun(run_dir).model_def())  # as read: an older one's noise schedule filled in
        copy.save_params(params)
        return _export_from_checkpoint(configs, copy.path, info)


def checkpoint_params(ckpt_dir: pathlib.Path, shapes: Any) -> tuple[dict, int]:
    """(params, step) of the newest checkpoint under `ckpt_dir` that reads back whole (a torn newer one is skipped
    with a warning and left as it is). Zero-size parameters, which checkpoints store as empty nodes, are rebuilt as
    zeros from `shapes` (the network's parameter tree of ShapeDtypeStructs, same paths)."""
    import orbax.checkpoint as ocp  # heavy (tensorstore): only an interrupted run's export reads checkpoints

    if not ckpt_dir.is_dir():
        raise CheckpointError(describe(ckpt_dir, None, "the checkpoints of the interrupted run", "no such folder"))
    manager = ocp.CheckpointManager(ckpt_dir.absolute(), item_handlers=ocp.StandardCheckpointHandler())
    torn: list[str] = []
    try:
        for step in sorted(manager.all_steps(), reverse=True):
            try:
                state = manager.restore(step)
            except Exception as exc:  # noqa: BLE001 - orbax/tensorstore raise many types for a truncated file
                torn.append(f"step {step}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
                continue
            if torn:
                log.warning("checkpoint %s is torn; using step %d instead", "; ".join(torn), step)
            params = state.get("params") if isinstance(state, Mapping) else None
            if not isinstance(params, Mapping):
                raise CheckpointError(describe(ckpt_dir / str(step), "params", "a parameter tree in the train state", repr(type(params))))
            return _refill_empty(params, shapes, ckpt_dir / str(step)), int(step)
    finally:
        manager.close()
    raise CheckpointError(describe(ckpt_dir, None, "an intact checkpoint", "; ".join(torn) if torn else "none"))


def _refill_empty(tree: Any, shapes: Any, where: pathlib.Path, path: str = "") -> Any:
    if isinstance(tree, Mapping):
        return {k: _refill_empty(v, shapes, where, f"{path}/{k}" if path else str(k)) for k, v in tree.items()}
    if tree is not None:
        return np.asarray(tree)
    spec = shapes
    for key in path.split("/"):
        spec = spec.get(key) if isinstance(spec, Mapping) else None
    if spec is None or int(np.prod(spec.shape)) != 0:
        raise CheckpointError(describe(where, path, "a stored parameter (only zero-size ones are left out)",
                                       "an empty node" + ("" if spec is None else f" where the network has {tuple(spec.shape)}")))
    return np.zeros(spec.shape, spec.dtype)


def _param_shapes(run_dir: pathlib.Path, kind: str) -> Any:
    """The run's parameter tree as ShapeDtypeStructs, rebuilt from model_def.json (nothing allocated)."""
    model_def = TrainingRun(run_dir).model_def()
    if kind == "regression":
        net, window = regression.net_from_model_def(model_def), int(model_def["window"])
        return {"net": jax.eval_shape(lambda k: regression.init_params(net, k, buffer_len=window), jax.random.PRNGKey(0))}
    return diffusion_rnn.param_shapes(diffusion_rnn.net_from_model_def(model_def))


def trt_differences(trt_path: pathlib.Path, info: Mapping[str, Any]) -> list[str]:
    """How a training run's trt_info.json disagrees with the shapes network_info implies ([] if it does not).

    Two layouts are understood: the original's (`trt_build_param.batch` shape strings, checked like a bundle's)
    and the compact one a2f-jax training writes (`{"<input>": "b,1,8320", ...}`, `b` the batch axis)."""
    try:
        trt = json.loads(trt_path.read_text())
    except ValueError as exc:
        return [f"not JSON ({exc})"]
    if not isinstance(trt, dict):
        return [f"expected an object, found {type(trt).__name__}"]
    if "trt_build_param" in trt:
        return [f"{v.rule}: expected {v.expected}, found {v.found}" for v in bundle_check.errors(bundle_check.check_trt_info(trt, info))]
    kind = info["id"]["type"]
    shapes = C.onnx_tensor_shapes(info)
    out = []
    for name in (n for n, (role, _) in C.ONNX_IO[kind].items() if role == "input"):
        want = ",".join("b" if d == "B" else str(d) for d in shapes[name])
        if trt.get(name) != want:
            out.append(f"{name}: expected {want!r}, found {repr(trt[name]) if name in trt else 'nothing'}")
    return out


def _export_from_checkpoint(configs: Any, run_dir: pathlib.Path, info: Mapping[str, Any]) -> Any:
    kind = info["id"]["type"]
    exporter = onnx_regression if kind == "regression" else onnx_diffusion
    return exporter.export_from_run(configs, run_dir, info)


def _readme_body(run_dir: pathlib.Path, actors: list[str]) -> str:
    return (
        f"Training run: `{run_dir.name}`; identities: {', '.join(actors)}.\n\n"
        "`model.json` points at `network.trt`, which is not shipped: build it from `network.onnx` with the\n"
        "shape arguments of `trt_info.json` (e.g. Maya-ACE's TRT Manager, or `trtexec --onnx=network.onnx\n"
        "--saveEngine=network.trt` plus the `trt_build_param.batch` strings with the placeholders filled in).\n"
        "`model_config*.json` holds the runtime post-processing settings and may be edited by hand.\n"
        "Written by a2f-jax; check with `python scripts/check_bundle.py <this folder>`."
    )
