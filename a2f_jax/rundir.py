"""Run directories of preprocessing, training, deploy and inference, with the original's metadata.

A run lives in `<root>/<YYMMDD_HHMMSS>_<RUN_NAME>/` (local time, as the original) and holds
`log.log` (a copy of the console log) and `configs/`:
    VERSION.md, info.txt (RUN_INFO, no trailing newline), state.json,
    config_<type>_modifier.json (what the user changed, only when something was),
    config_<type>_full.json (every resolved value, keys sorted as the original's dir() order),
    actor_info.json (preproc: {"actor_name": ...}), preproc_info.json (train: {"preproc_run_name_full": {...}}).
and `run_status.json` (see RUN_STATUSES): readers accept only finished runs. A preprocessing run is built
in a hidden `.<YYMMDD_HHMMSS>_<RUN_NAME>.tmp` folder and renamed when complete (`staged_run_dir`), so a
failed or killed one leaves nothing named like a run; a training run updates its status as it goes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import getpass
import importlib.metadata
import json
import logging
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
from typing import Any, Iterator, Mapping

import a2f_jax
from a2f_jax.config import Configs, path_roots
from a2f_jax.errors import ConfigError, RunError
from a2f_jax.io_utils import atomic_write_json, atomic_write_text

LOG_FORMAT = "%(asctime)s [%(levelname)s] %(message)s"
LOG_FILE_NAME = "log.log"
CONFIG_DIR = "configs"  # the run's metadata folder
ACTOR_INFO_FILE = "actor_info.json"  # in configs/ of a preprocessing run: {"actor_name": ...}
PREPROC_INFO_FILE = "preproc_info.json"  # in configs/ of a training run: {"preproc_run_name_full": {actor: run}}
# Which resolved configs each stage records (the original's train run records train + dataset; the
# inference config rides along because deploy reads it from the training run).
STAGE_CONFIGS = {
    "preproc": ("preproc", "dataset"),
    "train": ("train", "dataset", "inference"),
    "deploy": ("train", "inference"),
    "inference": ("inference", "train", "dataset"),
}
_IDENTIFIER = re.compile(r"^[\w]([\w.-]*[\w])?$")
_RUN_DIR = re.compile(r"^(\d{6}_\d{6})_(.+)$")
# A staged run (preprocessing) is built in `.<stamp>_<RUN_NAME>.tmp` and renamed when complete.
_STAGED_DIR = re.compile(r"^\.(\d{6}_\d{6})_(.+)\.tmp$")
_RUN_LOG_HANDLER_NAME = "a2f_jax.run_log"

# Every stage's run folder carries `run_status.json`; readers accept a run only in a finished state.
#   running      the stage is still writing (or died without a word: kill -9, power loss)
#   complete     the stage finished every step
#   stopped      training ended early because the user asked for a graceful stop (STOP file)
#   interrupted  training ended early on a signal (SIGTERM, Ctrl-C); a checkpoint was saved
#   failed       an error ended the stage
STATUS_FILE = "run_status.json"
RUN_STATUSES = ("running", "complete", "stopped", "interrupted", "failed")
FINISHED_STATUSES = ("complete", "stopped")


def is_valid_identifier(name: object) -> bool:
    """The original's identifier rule: word characters, inner `.`/`-`, no `..`."""
    return isinstance(name, str) and bool(_IDENTIFIER.match(name)) and ".." not in name


def validate_run_name(name: object, what: str = "RUN_NAME") -> str:
    if not is_valid_identifier(name):
        raise ConfigError(
            f"{what}: expected letters, digits, '_' with inner '.' or '-' and no '..' "
            f"(regex ^[\\w]([\\w.-]*[\\w])?$), found {name!r}"
        )
    return name  # type: ignore[return-value]


def get_logger(name: str = "") -> logging.Logger:
    """Loggers of a2f-jax modules: `get_logger(__name__)`; all propagate to the root logger."""
    if name and not name.startswith("a2f_jax"):
        name = f"a2f_jax.{name}"
    return logging.getLogger(name or "a2f_jax")


def setup_logging(level: int = logging.INFO) -> None:
    """Console logging in the original's format on the root logger (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level)
    if not any(getattr(h, "name", None) == "a2f_jax.console" for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.set_name("a2f_jax.console")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)


def attach_log_file(run_dir: str | os.PathLike) -> logging.Handler:
    """Mirror what is logged to `<run_dir>/log.log` (a2f_jax's INFO and up, the rest at the process's levels);
    replaces the previous run's log file handler. Only the package's own logger is lowered to INFO, when nobody
    set it: the process's levels (the root logger's) belong to the application."""
    detach_log_file()
    root = logging.getLogger()
    package = logging.getLogger("a2f_jax")
    if package.level == logging.NOTSET and root.getEffectiveLevel() > logging.INFO:
        package.setLevel(logging.INFO)
    handler = logging.FileHandler(pathlib.Path(run_dir) / LOG_FILE_NAME)
    handler.set_name(_RUN_LOG_HANDLER_NAME)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    return handler


def detach_log_file() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "name", None) == _RUN_LOG_HANDLER_NAME:
            root.removeHandler(handler)
            handler.close()


def _git(args: list[str], cwd: pathlib.Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.decode("utf-8", "replace").strip()


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def state_info(stage: str) -> dict:
    """Framework version and git state, machine, path mapping and time (the original's state.json+)."""
    framework_root = pathlib.Path(a2f_jax.__file__).resolve().parent.parent
    commit = _git(["rev-parse", "HEAD"], framework_root)
    status = _git(["status", "--porcelain"], framework_root) if commit else None
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    roots = path_roots()
    return {
        "framework": {
            "name": "a2f-jax",
            "version": a2f_jax.__version__,
            "git_branch": _git(["rev-parse", "--abbrev-ref", "HEAD"], framework_root) if commit else None,
            "git_commit": commit[:7] if commit else None,
            "git_clean": None if status is None else status == "",
        },
        "machine": {"hostname": socket.gethostname(), "user": user},
        "path_mapping": {
            "/framework": str(framework_root),
            "/datasets": roots["A2F_DATASETS_ROOT"],
            "/workspace": roots["A2F_WORKSPACE_ROOT"],
        },
        "stage": stage,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv],
        "packages": {name: _package_version(name) for name in ("jax", "flax", "optax", "numpy")},
    }


def _make_unique_dir(root: pathlib.Path, run_name: str, now: datetime.datetime) -> pathlib.Path:
    """mkdir `<stamp>_<run_name>`; if taken (two runs in one second), use the next free second, so the
    name keeps the original's format and sorts in creation order."""
    root.mkdir(parents=True, exist_ok=True)
    for offset in range(1000):
        stamp = (now + datetime.timedelta(seconds=offset)).strftime("%y%m%d_%H%M%S")
        path = root / f"{stamp}_{run_name}"
        if (root / _staged_name(path.name)).exists():
            continue  # a staged run will take this name when it completes
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{root}: expected a free run directory name for {run_name!r}, found 1000 taken")


def _staged_name(final_name: str) -> str:
    return f".{final_name}.tmp"


def _make_staged_dir(root: pathlib.Path, run_name: str, now: datetime.datetime) -> tuple[pathlib.Path, pathlib.Path]:
    """(temporary dir made, final path free): mkdir `.<stamp>_<run_name>.tmp` first, then check the final name,
    so two processes never pick the same name (at any instant one of the two exists for a staged run)."""
    root.mkdir(parents=True, exist_ok=True)
    for offset in range(1000):
        stamp = (now + datetime.timedelta(seconds=offset)).strftime("%y%m%d_%H%M%S")
        final = root / f"{stamp}_{run_name}"
        tmp = root / _staged_name(final.name)
        try:
            tmp.mkdir()
        except FileExistsError:
            continue
        if final.exists():
            tmp.rmdir()
            continue
        return tmp, final
    raise FileExistsError(f"{root}: expected a free run directory name for {run_name!r}, found 1000 taken")


def full_config_name(config_type: str) -> str:
    """`config_<type>_full.json` (in configs/): every resolved value of that config."""
    return f"config_{config_type}_full.json"


def _check_stage(stage: str, run_name: str, actor: str | None) -> None:
    if stage not in STAGE_CONFIGS:
        raise ConfigError(f"stage: expected one of {tuple(STAGE_CONFIGS)}, found {stage!r}")
    validate_run_name(run_name)
    if stage == "preproc":
        validate_run_name(actor, "actor name")


def _write_metadata(run_dir: pathlib.Path, configs: Configs, modifiers: Mapping[str, Mapping] | None, stage: str,
                    actor: str | None, preproc_runs: Mapping[str, str] | None) -> None:
    """`configs/` of a run: version, RUN_INFO, the stage's full and modifier configs, actor/preproc info, state."""
    modifiers = configs.modifiers if modifiers is None else modifiers
    cfg_dir = run_dir / CONFIG_DIR
    atomic_write_text(cfg_dir / "VERSION.md", a2f_jax.__version__ + "\n")
    stage_cfg = configs.get("train" if stage in ("train", "deploy") else stage)
    atomic_write_text(cfg_dir / "info.txt", str(stage_cfg.get("RUN_INFO", "")))
    for name in STAGE_CONFIGS[stage]:
        if modifiers.get(name):
            atomic_write_json(cfg_dir / f"config_{name}_modifier.json", modifiers[name])
        full = configs.get(name).to_dict()
        atomic_write_json(cfg_dir / full_config_name(name), {k: full[k] for k in sorted(full)})
    if actor is not None:
        atomic_write_json(cfg_dir / ACTOR_INFO_FILE, {"actor_name": actor})
    if stage == "train":
        runs = dict(configs.train.PREPROC_RUN_NAME_FULL) if preproc_runs is None else dict(preproc_runs)
        atomic_write_json(cfg_dir / PREPROC_INFO_FILE, {"preproc_run_name_full": runs})
    atomic_write_json(cfg_dir / "state.json", state_info(stage))


def create_run_dir(
    root: str | os.PathLike,
    run_name: str,
    configs: Configs,
    modifiers: Mapping[str, Mapping] | None = None,
    stage: str = "train",
    actor: str | None = None,
    preproc_runs: Mapping[str, str] | None = None,
    attach_log: bool = True,
    now: datetime.datetime | None = None,
) -> pathlib.Path:
    """Create `<root>/<YYMMDD_HHMMSS>_<run_name>` with its `configs/` metadata and (by default) log file.

    `modifiers` defaults to `configs.modifiers`; `actor` is recorded for preproc runs (so "latest"
    can find them); `preproc_runs` ({actor: run name full}) is recorded for train runs and defaults
    to the train config's PREPROC_RUN_NAME_FULL as written (`a2f_jax.runs.resolved_preproc_runs` gives
    it with "latest" resolved; training passes the runs it read). The folder has no `run_status.json`
    yet: the stage writes it (a stage that builds its whole folder at once uses `staged_run_dir` instead).
    """
    _check_stage(stage, run_name, actor)
    run_dir = _make_unique_dir(pathlib.Path(root).resolve(), run_name, now or datetime.datetime.now())
    _write_metadata(run_dir, configs, modifiers, stage, actor, preproc_runs)
    if attach_log:
        attach_log_file(run_dir)
        get_logger("rundir").info(f"Run directory: {run_dir}")
    else:
        (run_dir / LOG_FILE_NAME).touch()
    return run_dir


@dataclasses.dataclass(frozen=True)
class StagedRun:
    """A run folder under construction: write into `path`; it becomes `final` when the stage completes."""

    path: pathlib.Path
    final: pathlib.Path


@contextlib.contextmanager
def staged_run_dir(
    root: str | os.PathLike,
    run_name: str,
    configs: Configs,
    modifiers: Mapping[str, Mapping] | None = None,
    stage: str = "preproc",
    actor: str | None = None,
    attach_log: bool = True,
    now: datetime.datetime | None = None,
) -> Iterator[StagedRun]:
    """A run folder built atomically: `.<stamp>_<run_name>.tmp` (status "running") while the block runs, renamed
    to `<stamp>_<run_name>` with status "complete" when it ends normally, deleted when it raises. A killed stage
    leaves only the hidden temporary folder, which no reader accepts (`clean_stale_runs` removes it later).
    The log file follows the folder to its final name."""
    _check_stage(stage, run_name, actor)
    root = pathlib.Path(root).resolve()
    clean_stale_runs(root)
    tmp, final = _make_staged_dir(root, run_name, now or datetime.datetime.now())
    logger = get_logger("rundir")
    try:
        write_status(tmp, "running", stage=stage, final_name=final.name, **process_fields())
        _write_metadata(tmp, configs, modifiers, stage, actor, None)
        if attach_log:
            attach_log_file(tmp)
            logger.info(f"Run directory: {final} (written to {tmp.name} until complete)")
        else:
            (tmp / LOG_FILE_NAME).touch()
        yield StagedRun(tmp, final)
        write_status(tmp, "complete", stage=stage)
        if final.exists():
            raise FileExistsError(f"{final}: expected a free run directory name, found an existing folder")
        os.rename(tmp, final)
    except BaseException:
        if attach_log:
            detach_log_file()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if attach_log:
        attach_log_file(final)


def process_fields() -> dict[str, Any]:
    """Who is writing a run (recorded with status "running", so a dead writer can be told from a live one)."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def writer_alive(record: Mapping[str, Any] | None) -> bool | None:
    """Whether the process recorded in a "running" status still runs: True/False on this host, None when
    unknown (another host, or no process recorded)."""
    if not record or record.get("host") != socket.gethostname() or not isinstance(record.get("pid"), int):
        return None
    if record["pid"] == os.getpid():
        return True
    try:
        os.kill(record["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's process
    return True


def clean_stale_runs(root: str | os.PathLike) -> list[pathlib.Path]:
    """Delete the temporary folders of staged runs whose process died (kill -9, power loss) on this host;
    returns what was deleted. Folders of live processes and of other hosts are left alone."""
    root = pathlib.Path(root)
    removed = []
    if not root.is_dir():
        return removed
    for path in root.iterdir():
        if path.is_dir() and _STAGED_DIR.match(path.name) and writer_alive(read_status(path)) is False:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
            get_logger("rundir").warning(f"removed {path}: the unfinished folder of a run whose process has died")
    return removed


def run_actor(run_dir: pathlib.Path) -> str | None:
    """The actor a preprocessing run recorded in configs/actor_info.json (None: none recorded)."""
    path = run_dir / CONFIG_DIR / ACTOR_INFO_FILE
    try:
        return json.loads(path.read_text()).get("actor_name")
    except (OSError, ValueError, AttributeError):
        return None


def list_runs(root: str | os.PathLike, actor: str | None = None, run_name: str | None = None,
              statuses: tuple[str, ...] | None = ("complete",)) -> list[pathlib.Path]:
    """Run dirs under `root`, oldest first; only those of `actor` (per actor_info.json) and `run_name` if given,
    and only those whose `run_status.json` is one of `statuses` (None: any folder named like a run)."""
    root = pathlib.Path(root)
    if not root.is_dir():
        return []
    runs = []
    for path in root.iterdir():
        match = _RUN_DIR.match(path.name)
        if not path.is_dir() or not match:
            continue
        if run_name is not None and match.group(2) != run_name:
            continue
        if actor is not None and run_actor(path) != actor:
            continue
        if statuses is not None and (read_status(path) or {}).get("status") not in statuses:
            continue
        runs.append(path)
    return sorted(runs, key=lambda p: p.name[:13] + "\0" + p.name)


def write_status(run_dir: str | os.PathLike, status: str, **fields: Any) -> None:
    """Record the state of a run (atomically): `status` (one of RUN_STATUSES), time, and extra fields."""
    if status not in RUN_STATUSES:
        raise ValueError(f"run status: expected one of {RUN_STATUSES}, found {status!r}")
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    atomic_write_json(pathlib.Path(run_dir) / STATUS_FILE, {"status": status, "updated": now, **fields})


def read_status(run_dir: str | os.PathLike) -> dict | None:
    """The run's status record, or None when the folder has no (readable) `run_status.json`."""
    try:
        record = json.loads((pathlib.Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("status") in RUN_STATUSES else None


def require_finished(run_dir: str | os.PathLike, what: str = "run",
                     accept: tuple[str, ...] = FINISHED_STATUSES) -> dict:
    """The status record of `run_dir`, or a RunError naming the folder, what was expected and what was found."""
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: expected a {what} folder, found {'a file' if run_dir.exists() else 'nothing'}")
    record = read_status(run_dir)
    if record is None:
        raise RunError(f"{run_dir / STATUS_FILE}: expected the status of a finished {what}, found no status file "
                       f"(not a run folder of a2f-jax, or one that never finished)")
    if record["status"] not in accept:
        raise RunError(f"{run_dir / STATUS_FILE}: expected a {what} with status {' or '.join(accept)}, "
                       f"found {record['status']!r}" + (f" ({record['reason']})" if record.get("reason") else ""))
    return record
