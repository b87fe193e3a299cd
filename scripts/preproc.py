"""Preprocess one actor (the `a2f-preproc` command):

    python scripts/preproc.py --config configs/<name> --actor <actor>

A thin wrapper: the command lives in `a2f_jax/commands/preproc.py`; `--help` lists every option.
"""

import sys

from a2f_jax.commands.preproc import main

if __name__ == "__main__":
    sys.exit(main())
