"""Check a dataset against its config (the `a2f-check-dataset` command):

    python scripts/check_dataset.py --config configs/<name> [--actor NAME]

A thin wrapper: the command lives in `a2f_jax/commands/check_dataset.py`; `--help` lists every option.
"""

import sys

from a2f_jax.commands.check_dataset import main

if __name__ == "__main__":
    sys.exit(main())
