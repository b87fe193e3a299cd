"""Train a network: `a2f-train --config configs/<name> [--resume RUN_DIR] [--max-steps N] [--debug]`
(or `python scripts/train.py ...`).

NETWORK_TYPE in config_train.py chooses the regression or the diffusion network. Multi-device data
parallelism is automatic (every visible device); multi-host runs set JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES and JAX_PROCESS_ID on each host (see README).

Exit codes: 0 finished (or stopped gracefully), 2 bad input, 3 interrupted by a signal (a checkpoint was
saved; resume with --resume), 1 internal error.
"""

import logging

from a2f_jax import cli
from a2f_jax.rundir import setup_logging
from a2f_jax.train import entry


def _extra(parser):
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a training run from its newest checkpoint")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (overrides MAX_TRAIN_STEPS)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")


@cli.main_guard
def main(argv: list[str] | None = None) -> int:
    setup_logging()
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every checkpoint file it writes at INFO
    configs, args = cli.parse(argv, description=__doc__, extra_args=_extra)
    entry.train(configs, resume=args.resume, max_steps=args.max_steps, show_progress=not args.no_progress)
    return 0
