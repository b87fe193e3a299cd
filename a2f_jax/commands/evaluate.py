"""Evaluate a training run or a deploy bundle on the held-out VALIDATION_CLIPS of its config:

    a2f-evaluate --config configs/<name> (--run RUN_DIR | --bundle BUNDLE_DIR) [--out DIR] [--debug]
    (or python scripts/evaluate.py ...)

Prints lip vertex error, mean vertex error, FDD, lip-distance MAE and correlation for the model, the
mean training pose and the neutral pose, and writes evaluation.json / evaluation.txt.
"""

import logging

from a2f_jax import cli
from a2f_jax.infer import evaluate


def _extra(parser):
    parser.add_argument("--run", help="training run directory (JAX backend)")
    parser.add_argument("--bundle", help="deploy bundle directory (onnxruntime backend)")
    parser.add_argument("--out", help="output folder (default: <run or bundle>/evaluation)")


@cli.main_guard
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    configs, args = cli.parse(argv, description=__doc__, extra_args=_extra)
    evaluate.run_cli(configs, args.run, args.bundle, args.out)
    return 0
