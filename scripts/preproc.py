"""Preprocess one actor: `python scripts/preproc.py --config configs/<name> --actor <actor> [--config.preproc.KEY=value ...] [--debug]`.

Writes `<PREPROC_OUTPUT_ROOT>/<YYMMDD_HHMMSS>_<RUN_NAME>/` (skin/tongue PCA, deploy artifacts) and ends
with the line `Preproc Run Name Full: <name>` to paste into config_train's PREPROC_RUN_NAME_FULL.
"""

import sys

from a2f_jax import cli


def _extra(parser):
    parser.add_argument("--actor", required=True, help="actor name (a key of the dataset config's per-actor dicts)")


@cli.main_guard
def main(argv: list[str] | None = None) -> int:
    from a2f_jax.preproc import run

    configs, args = cli.parse(argv, description=__doc__, extra_args=_extra)
    run(configs, args.actor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
