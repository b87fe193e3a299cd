"""One preprocessing run for one actor: run folder, skin, tongue, deploy artifacts (docs/preproc_artifacts.md)."""

from __future__ import annotations

import logging
import pathlib
import time

from a2f_jax import rundir
from a2f_jax.config import Configs
from a2f_jax.preproc.deploy_artifacts import run_deploy
from a2f_jax.preproc.skin import run_skin
from a2f_jax.preproc.tongue import run_tongue

log = logging.getLogger(__name__)
_RULE = "-" * 80


def run(configs: Configs, actor: str) -> pathlib.Path:
    """Preprocess `actor` with the resolved `configs`; returns the run dir
    `<PREPROC_OUTPUT_ROOT>/<YYMMDD_HHMMSS>_<RUN_NAME>` holding the artifact tree of docs/preproc_artifacts.md.

    The folder is built under a hidden temporary name and appears only when every stage succeeded
    (status "complete"); a failed run leaves nothing behind, a killed one only the hidden folder."""
    preproc, dataset = configs.preproc, configs.dataset
    run_name = rundir.validate_run_name(preproc.RUN_NAME, "preproc config [RUN_NAME]")
    rundir.validate_run_name(actor, "actor name")
    try:
        with rundir.staged_run_dir(preproc.PREPROC_OUTPUT_ROOT, run_name, configs, stage="preproc", actor=actor) as staged:
            t0 = time.time()
            log.info(_RULE)
            log.info(f"Preprocessing run: {staged.final.name} (actor {actor})")
            log.info(_RULE)
            run_skin(preproc, dataset, actor, staged.path)
            run_tongue(preproc, dataset, actor, staged.path)
            run_deploy(preproc, dataset, actor, staged.path, configs.modifiers.get("dataset"))
            log.info(f"Total preprocessing time: {time.time() - t0:.2f} sec")
        log.info(_RULE)
        log.info(f"Preproc Run Name Full: {staged.final.name}")
        log.info(_RULE)
    finally:
        rundir.detach_log_file()
    return staged.final
