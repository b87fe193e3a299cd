"""Train a network (the `a2f-train` command):

    python scripts/train.py --config configs/<name> [--resume RUN_DIR] [--max-steps N]

A thin wrapper: the command lives in `a2f_jax/commands/train.py`; `--help` lists every option.
"""

import sys

from a2f_jax.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
