"""Check a dataset against its config and list its shots:
`a2f-check-dataset --config configs/<name> [--actor NAME]` (or `python scripts/check_dataset.py ...`).

Exits 1 with one line per problem (file, field, expected, found) when the dataset is not usable, 2 on bad
arguments or configs. The rules are those of docs/dataset_format.md.
"""

import sys

from a2f_jax import cli
from a2f_jax.data.check import check_dataset, format_table


def _extra(parser):
    parser.add_argument("--actor", default=None, help="check only this actor (default: every actor of ACTOR_NAMES)")


@cli.main_guard
def main(argv: list[str] | None = None) -> int:
    configs, args = cli.parse(argv, description=__doc__, extra_args=_extra)
    report = check_dataset(configs.dataset, configs.train, configs.preproc, None if args.actor is None else [args.actor])
    if report.rows:
        print(format_table(report.rows))
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    if not report.ok:
        print(f"dataset check failed: {len(report.errors)} problem(s)", file=sys.stderr)
        return 1
    print("dataset OK")
    return 0
