"""Run a trained network on audio files (the `a2f-infer` command):

    python scripts/infer.py --config configs/<name> (--run RUN_DIR | --bundle DIR) --audio a.wav --out DIR

A thin wrapper: the command lives in `a2f_jax/commands/infer.py`; `--help` lists every option.
"""

import sys

from a2f_jax.commands.infer import main

if __name__ == "__main__":
    sys.exit(main())
