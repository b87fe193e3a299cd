"""Preprocess one actor: `python scripts/preproc.py --config configs/<name> --actor <actor> [--config.preproc.KEY=value ...]`.

Writes `<PREPROC_OUTPUT_ROOT>/<YYMMDD_HHMMSS>_<RUN_NAME>/` (skin/tongue PCA, deploy artifacts) and ends
with the line `Preproc Run Name Full: <name>` to paste into config_train's PREPROC_RUN_NAME_FULL.
"""

import sys

from a2f_jax import cli
from a2f_jax.errors import A2FError
from a2f_jax.preproc import run


def _extra(parser):
    parser.add_argument("--actor", required=True, help="actor name (a key of the dataset config's per-actor dicts)")


if __name__ == "__main__":
    configs, args = cli.parse(description=__doc__, extra_args=_extra)
    try:
        run(configs, args.actor)
    except A2FError as exc:
        sys.exit(f"error: {exc}")
