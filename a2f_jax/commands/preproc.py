"""Preprocess one actor: `a2f-preproc --config configs/<name> --actor <actor> [--config.preproc.KEY=value ...] [--debug]`
(or `python scripts/preproc.py ...`).

Writes `<PREPROC_OUTPUT_ROOT>/<YYMMDD_HHMMSS>_<RUN_NAME>/` (skin/tongue PCA, deploy artifacts; docs/preproc_artifacts.md)
and ends with the line `Preproc Run Name Full: <name>` to paste into config_train's PREPROC_RUN_NAME_FULL.
"""

from a2f_jax import cli
from a2f_jax.preproc import run
from a2f_jax.rundir import setup_logging


def _extra(parser):
    parser.add_argument("--actor", required=True, help="actor name (a key of the dataset config's per-actor dicts)")


@cli.main_guard
def main(argv: list[str] | None = None) -> int:
    configs, args = cli.parse(argv, description=__doc__, extra_args=_extra)
    setup_logging()
    run(configs, args.actor)
    return 0
