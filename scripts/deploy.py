"""Bundle a finished training run for Maya-ACE / the Audio2Face-3D SDK (the `a2f-deploy` command):

    python scripts/deploy.py --config configs/<name> --run RUN_DIR

A thin wrapper: the command lives in `a2f_jax/commands/deploy.py`; `--help` lists every option.
"""

import sys

from a2f_jax.commands.deploy import main

if __name__ == "__main__":
    sys.exit(main())
