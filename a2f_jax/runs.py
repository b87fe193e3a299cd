"""The artifacts passed between stages: a preprocessing run, a training run and a deploy bundle.

Each class wraps a folder, knows the names of the files in it (defined here and nowhere else in the package),
and reads and checks them: a missing or unreadable file is a DataError/RunError naming the file, the field, what
was expected and what was found. The layouts are described in `docs/preproc_artifacts.md` (preprocessing run)
and `docs/bundle_contract.md` (bundle); a training run holds

    model_def.json               what rebuilds the network for inference and export (`TrainingRun.model_def`)
    params.msgpack               the final parameters {"net", ...}, no optimizer state (`save_params`)
    network_info_full.json, implicit_emo_db.pkl
    deploy/network_info.json, deploy/trt_info.json, deploy/implicit_emo_db.npz (regression)
    configs/ (`a2f_jax.rundir`), checkpoints/, run_status.json, history.json

Run folders themselves (naming, `configs/`, `run_status.json`, the log) are made by `a2f_jax.rundir`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any, Iterator, Mapping

import jax
import numpy as np
from flax import serialization

from a2f_jax import rundir
from a2f_jax.config import train_diffusion as train_diffusion_base
from a2f_jax.config.merge import did_you_mean
from a2f_jax.errors import A2FError, ConfigError, DataError, RunError, describe
from a2f_jax.io_utils import atomic_path, atomic_write_json

PathLike = str | os.PathLike

# model_def.json of a diffusion run: the train config's DIFFUSION_NOISE_SCHEDULE, so that sampling from the run
# uses the schedule the network was trained with.
NOISE_SCHEDULE_KEY = "noise_schedule"
DIFFUSION_NETWORK = "diffusion_rnn"  # model_def "network" of the diffusion network; anything else is regression
_PLACEHOLDER_PREFIX = "XXXXXX_XXXXXX"  # the example configs' PREPROC_RUN_NAME_FULL before preprocessing


def _read_json(path: pathlib.Path, what: str, error: type[A2FError] = DataError) -> Any:
    if not path.is_file():
        raise error(describe(path, None, what, "no such file"))
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise error(describe(path, None, f"valid JSON ({what})", f"{type(exc).__name__}: {exc}")) from exc


def _read_object(path: pathlib.Path, what: str, error: type[A2FError] = DataError) -> dict:
    obj = _read_json(path, what, error)
    if not isinstance(obj, dict):
        raise error(describe(path, None, f"a JSON object ({what})", type(obj).__name__))
    return obj


# --------------------------------------------------------------------------------------------- parameters


def save_params(path: PathLike, params: Any) -> None:
    """Write a parameter tree as a flax msgpack file (atomically; leaves as numpy arrays)."""
    with atomic_path(pathlib.Path(path)) as tmp:
        tmp.write_bytes(serialization.msgpack_serialize(jax.tree_util.tree_map(np.asarray, params)))


def load_params(path: PathLike) -> dict:
    """The parameter tree of a params.msgpack; RunError when the file is missing or not a decodable tree."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise RunError(describe(path, None, "the parameters written at the end of training", "no such file"))
    data = path.read_bytes()
    try:
        params = serialization.msgpack_restore(data)
    except (ValueError, TypeError) as exc:  # msgpack: truncated ("incomplete input") or trailing bytes
        raise RunError(describe(path, None, "a flax msgpack parameter tree", f"{len(data)} undecodable bytes ({exc})")) from exc
    if not isinstance(params, dict):
        raise RunError(describe(path, None, "a flax msgpack parameter tree", f"a {type(params).__name__}"))
    return params


def param_leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path "a/b/c", leaf) pairs of a nested dict/list tree, in order."""
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from param_leaves(value, f"{prefix}/{key}" if prefix else str(key))
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from param_leaves(value, f"{prefix}/{i}" if prefix else str(i))
    else:
        yield prefix, tree


def check_finite(params: Any, where: PathLike) -> None:
    """RunError naming the first parameter (a/b/c path) holding NaN or Inf."""
    for name, leaf in param_leaves(params):
        values = np.asarray(leaf)
        if values.dtype.kind in "fc":
            bad = int(values.size - np.count_nonzero(np.isfinite(values)))
            if bad:
                raise RunError(describe(where, name, "finite parameters", f"{bad} NaN/Inf of {values.size} values (did training diverge?)"))


# ------------------------------------------------------------------------------------------- model_def


def base_noise_schedule() -> str:
    """The base train config's DIFFUSION_NOISE_SCHEDULE ("cosine", `a2f_jax/config/train_diffusion.py`)."""
    return str(train_diffusion_base.base_dict()["DIFFUSION_NOISE_SCHEDULE"])


def noise_schedule(model_def: Mapping[str, Any]) -> str:
    """The noise schedule a diffusion model_def was trained with. model_defs written before the schedule was
    recorded lack the key: they read as the base default (`base_noise_schedule`, "cosine"), which is what
    inference used for every run until then; `TrainingRun.model_def` first fills it from the run's own
    recorded train config where it can."""
    value = model_def.get(NOISE_SCHEDULE_KEY)
    return base_noise_schedule() if value is None else str(value)


def network_type(model_def: Mapping[str, Any]) -> str:
    """"diffusion" or "regression", from a model_def's "network"."""
    return "diffusion" if model_def.get("network") == DIFFUSION_NETWORK else "regression"


# ------------------------------------------------------------------------------------------ preproc run


@dataclasses.dataclass(frozen=True)
class PreprocRun:
    """A finished preprocessing run of one actor (`docs/preproc_artifacts.md`)."""

    path: pathlib.Path

    DATA_INFO = "deploy/data_info.json"
    SHOTS = "deploy/shots.json"
    MEAN_GEOMETRY = "deploy/mean_geometry.npy"
    NETWORK_DATA = "deploy/network_data.npz"  # becomes the bundle's model_data[_<actor>].npz

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", pathlib.Path(self.path))

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> pathlib.Path:
        return self.path / name

    @staticmethod
    def pca_shapes_name(part: str) -> str:
        """`part` "skin" or "tongue": the PCA basis (`shapes_matrix` [K, V, 3], `shapes_mean` [V, 3])."""
        return f"pca/{part}/{part}_pca_shapes.npz"

    @staticmethod
    def pca_coeffs_name(part: str) -> str:
        """The PCA coefficients of every shot ({shot: [F, K]})."""
        return f"pca/{part}/{part}_pca_coeffs_all.npz"

    @staticmethod
    def blendshape_names(actor: str, part: str) -> tuple[str, str]:
        """(blendshape npz, blendshape config json) of `part` ("skin"/"tongue") under deploy/."""
        return f"deploy/bs_{part}_{actor}.npz", f"deploy/bs_{part}_config_{actor}.json"

    def pca_shapes(self, part: str) -> pathlib.Path:
        return self.path / self.pca_shapes_name(part)

    def pca_coeffs(self, part: str) -> pathlib.Path:
        return self.path / self.pca_coeffs_name(part)

    def network_data(self) -> pathlib.Path:
        return self.path / self.NETWORK_DATA

    def blendshapes(self, actor: str, part: str) -> tuple[pathlib.Path, pathlib.Path]:
        npz, cfg = self.blendshape_names(actor, part)
        return self.path / npz, self.path / cfg

    @classmethod
    def resolve(cls, preproc_root: PathLike, actor: str, name: str) -> "PreprocRun":
        """The preproc run of `actor` under `preproc_root`: `name` is a full run name (`250909_135508_example`),
        `"latest"` (the newest complete run of that actor) or `"latest:<RUN_NAME>"` (the newest complete one with
        that RUN_NAME). Only complete runs count: an explicit name of an unfinished run is a RunError."""
        root = pathlib.Path(preproc_root).resolve()
        where = f"PREPROC_RUN_NAME_FULL[{actor!r}]"
        if not isinstance(name, str):
            raise ConfigError(f"{where}: expected a preprocessing run name or 'latest', found {name!r}")
        if name == "latest" or name.startswith("latest:"):
            run_name = name.split(":", 1)[1] if ":" in name else None
            found_runs = rundir.list_runs(root, actor=actor, run_name=run_name)
            if not found_runs:
                detail = f" with RUN_NAME {run_name!r}" if run_name else ""
                unfinished = rundir.list_runs(root, actor=actor, run_name=run_name, statuses=None)
                found = "none" if not unfinished else "only unfinished ones (" + ", ".join(
                    f"{p.name}: {_status_text(p)}" for p in unfinished[-3:]) + ")"
                raise ConfigError(
                    f"{where}: expected a complete preprocessing run of actor {actor!r}{detail} under {root}, "
                    f"found {found} (run scripts/preproc.py for this actor first)"
                )
            return cls(found_runs[-1])
        if name.startswith(_PLACEHOLDER_PREFIX):
            raise ConfigError(
                f"{where}: expected the name of a preprocessing run (printed as 'Preproc Run Name Full' at the end "
                f"of preprocessing) or 'latest', found the placeholder {name!r}"
            )
        rundir.validate_run_name(name, where)
        path = root / name
        if not path.is_dir():
            existing = [p.name for p in rundir.list_runs(root)]
            raise ConfigError(f"{where}: expected a run directory {path}, found none{did_you_mean(name, existing)}")
        recorded = rundir.run_actor(path)
        if recorded is not None and recorded != actor:
            raise ConfigError(
                f"{where}: expected a preprocessing run of actor {actor!r}, found one of {recorded!r} ({path})"
            )
        record = rundir.read_status(path)
        if record is None or record["status"] != "complete":
            raise RunError(
                f"{path}: expected a complete preprocessing run ({where}), found {_status_text(path)} "
                f"(it failed, was killed or was made by an older a2f-jax: run scripts/preproc.py again)"
            )
        return cls(path)


def _status_text(run_dir: pathlib.Path) -> str:
    record = rundir.read_status(run_dir)
    return "no run_status.json" if record is None else f"status {record['status']!r}"


def resolved_preproc_runs(train_cfg: Any) -> dict[str, str]:
    """PREPROC_RUN_NAME_FULL with "latest" names replaced by the run they point to now (where one exists; a name
    that does not resolve is kept as written, and training reports the problem itself)."""
    names = {}
    for actor, name in train_cfg.PREPROC_RUN_NAME_FULL.items():
        try:
            names[actor] = PreprocRun.resolve(train_cfg.PREPROC_ROOT, actor, name).name
        except A2FError:
            names[actor] = name
    return names


# ----------------------------------------------------------------------------------------- training run


@dataclasses.dataclass(frozen=True)
class TrainingRun:
    """A training run folder: the files training writes and inference / deploy read."""

    path: pathlib.Path

    MODEL_DEF = "model_def.json"
    PARAMS = "params.msgpack"
    NETWORK_INFO = "deploy/network_info.json"
    NETWORK_INFO_FULL = "network_info_full.json"
    TRT_INFO = "deploy/trt_info.json"
    NETWORK_ONNX = "deploy/network.onnx"  # optional: deploy exports from params.msgpack when absent
    EMO_DB_NPZ = "deploy/implicit_emo_db.npz"
    EMO_DB_PKL = "implicit_emo_db.pkl"
    PREPROC_INFO = f"{rundir.CONFIG_DIR}/{rundir.PREPROC_INFO_FILE}"
    TRAIN_CONFIG = f"{rundir.CONFIG_DIR}/{rundir.full_config_name('train')}"
    CHECKPOINTS = "checkpoints"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", pathlib.Path(self.path))

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> pathlib.Path:
        return self.path / name

    def find(self, name: str) -> pathlib.Path | None:
        """A run file by its name here (e.g. `NETWORK_INFO`), at that place or in the run's root (older layouts
        and hand-made runs keep deploy/ files beside model_def.json); None when neither exists."""
        for cand in (self.path / name, self.path / pathlib.PurePosixPath(name).name):
            if cand.is_file():
                return cand
        return None

    def require(self, *names: str, what: str = "a file of a finished training run") -> None:
        """DataError naming the first of `names` missing from the run."""
        for name in names:
            if not (self.path / name).is_file():
                raise DataError(describe(self.path / name, None, what, "no such file"))

    # -- model_def / params -----------------------------------------------------------------------------

    def model_def(self) -> dict:
        """model_def.json (a JSON object). A diffusion model_def written before the noise schedule was recorded
        gets it from the run's recorded train config, else the base default (`noise_schedule`)."""
        model_def = _read_object(self.path / self.MODEL_DEF, "the network definition written by training")
        if network_type(model_def) == "diffusion" and NOISE_SCHEDULE_KEY not in model_def:
            recorded = self._recorded_train_value("DIFFUSION_NOISE_SCHEDULE")
            if recorded is not None:
                model_def[NOISE_SCHEDULE_KEY] = str(recorded)
        return model_def

    def write_model_def(self, model_def: Mapping[str, Any]) -> None:
        atomic_write_json(self.path / self.MODEL_DEF, json.loads(json.dumps(model_def)))

    def network_type(self) -> str:
        """"regression" or "diffusion" (from model_def.json)."""
        return network_type(_read_object(self.path / self.MODEL_DEF, f"the {self.MODEL_DEF} of a finished training run"))

    def params(self) -> dict:
        """The final parameter tree (numpy leaves); RunError when missing or undecodable."""
        return load_params(self.path / self.PARAMS)

    def save_params(self, params: Any) -> None:
        save_params(self.path / self.PARAMS, params)

    def check_params(self) -> None:
        """RunError unless params.msgpack exists, decodes and holds only finite values."""
        check_finite(self.params(), self.path / self.PARAMS)

    # -- metadata -------------------------------------------------------------------------------------------

    def write_metadata(self, network_info: Mapping[str, Any], network_info_full: Mapping[str, Any],
                       trt_info: Mapping[str, Any], model_def: Mapping[str, Any]) -> None:
        """What training writes before its first step: network_info (+ full), trt_info, model_def."""
        atomic_write_json(self.path / self.NETWORK_INFO, network_info)
        atomic_write_json(self.path / self.NETWORK_INFO_FULL, json.loads(json.dumps(network_info_full, default=str)))
        atomic_write_json(self.path / self.TRT_INFO, trt_info)
        self.write_model_def(model_def)

    def network_info(self) -> dict:
        path = self.find(self.NETWORK_INFO)
        return _read_object(path or self.path / self.NETWORK_INFO, "the deploy network info written by training")

    def preproc_runs(self) -> dict[str, str]:
        """{actor: preproc run name (or path)} recorded when the run was made."""
        path = self.path / self.PREPROC_INFO
        runs = _read_object(path, '{"preproc_run_name_full": {actor: run}}').get("preproc_run_name_full")
        if not isinstance(runs, dict):
            raise DataError(describe(path, "preproc_run_name_full", "{actor: preproc run name}", repr(runs)))
        return runs

    def preproc_run(self, actor: str | None = None, preproc_root: PathLike | None = None) -> PreprocRun:
        """The preprocessing run `actor` (default: the first recorded) was trained on, under `preproc_root`
        (default: the PREPROC_ROOT the run recorded). DataError when that folder is gone."""
        runs = self.preproc_runs()
        if actor is None:
            actor = next(iter(runs), None)
        if actor not in runs:
            raise DataError(describe(self.path / self.PREPROC_INFO, "preproc_run_name_full", f"an entry for {actor!r}", str(sorted(runs))))
        path = pathlib.Path(runs[actor])
        if not path.is_absolute():
            root = preproc_root if preproc_root is not None else self._recorded_train_value("PREPROC_ROOT")
            if root is None:
                raise DataError(describe(self.path / self.TRAIN_CONFIG, "PREPROC_ROOT", "the preprocessing root of the run", "none"))
            path = pathlib.Path(root) / path
        return PreprocRun(path)

    def _recorded_train_value(self, key: str) -> Any:
        """`key` of the run's recorded train config, None when the file or the key is missing or unreadable."""
        try:
            recorded = json.loads((self.path / self.TRAIN_CONFIG).read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return recorded.get(key) if isinstance(recorded, dict) else None


# --------------------------------------------------------------------------------------------- bundle


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A deploy bundle as the Audio2Face-3D SDK and Maya-ACE read it (`docs/bundle_contract.md`)."""

    path: pathlib.Path

    NETWORK_ONNX = "network.onnx"
    NETWORK_TRT = "network.trt"  # named by model.json; built from network.onnx on the target machine, not shipped
    NETWORK_INFO = "network_info.json"
    TRT_INFO = "trt_info.json"
    MODEL_JSON = "model.json"
    EMO_DB = "implicit_emo_db.npz"  # regression only
    README = "README.md"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", pathlib.Path(self.path))

    def file(self, name: str) -> pathlib.Path:
        return self.path / name

    @staticmethod
    def file_tag(network_type: str, actor: str) -> str:
        """`_<actor>` for diffusion per-actor files; regression bundles use untagged names."""
        return f"_{actor}" if network_type == "diffusion" else ""

    @classmethod
    def model_config_name(cls, network_type: str, actor: str) -> str:
        return f"model_config{cls.file_tag(network_type, actor)}.json"

    @classmethod
    def model_data_name(cls, network_type: str, actor: str) -> str:
        return f"model_data{cls.file_tag(network_type, actor)}.npz"

    @staticmethod
    def blendshape_names(actor: str, part: str) -> tuple[str, str]:
        """(data npz, config json) of the `part` ("skin"/"tongue") blendshapes of `actor`."""
        return f"bs_{part}_{actor}.npz", f"bs_{part}_config_{actor}.json"

    def blendshapes(self, actor: str, part: str) -> tuple[pathlib.Path, pathlib.Path]:
        npz, cfg = self.blendshape_names(actor, part)
        return self.path / npz, self.path / cfg

    def network_info(self) -> dict:
        return _read_object(self.path / self.NETWORK_INFO, "the network_info.json of a deploy bundle")

    def network_type(self) -> str:
        info = self.network_info()
        kind = info.get("id", {}).get("type") if isinstance(info.get("id"), dict) else None
        if kind not in ("regression", "diffusion"):
            raise DataError(describe(self.path / self.NETWORK_INFO, "id.type", "'regression' or 'diffusion'", repr(kind)))
        return kind

    def model_data(self, network_type: str, actor: str) -> pathlib.Path:
        """The model data of `actor`: the name the contract gives, else an untagged `model_data.npz`."""
        return self._tagged_or_plain(self.model_data_name("diffusion", actor), self.model_data_name("regression", actor),
                                     network_type)

    def model_config(self, network_type: str, actor: str) -> pathlib.Path:
        """The model config of `actor`: the name the contract gives, else an untagged `model_config.json`."""
        return self._tagged_or_plain(self.model_config_name("diffusion", actor), self.model_config_name("regression", actor),
                                     network_type)

    def _tagged_or_plain(self, tagged: str, plain: str, network_type: str) -> pathlib.Path:
        for name in (tagged, plain):
            if (self.path / name).is_file():
                return self.path / name
        return self.path / (tagged if network_type == "diffusion" else plain)
