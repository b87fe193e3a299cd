"""Evaluate a training run or a deploy bundle on the held-out clips (the `a2f-evaluate` command):

    python scripts/evaluate.py --config configs/<name> (--run RUN_DIR | --bundle DIR)

A thin wrapper: the command lives in `a2f_jax/commands/evaluate.py`; `--help` lists every option.
"""

import sys

from a2f_jax.commands.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
