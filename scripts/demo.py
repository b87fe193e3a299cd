"""The whole pipeline on the built-in synthetic dataset (what `make demo` runs) (the `a2f-demo` command):

    python scripts/demo.py [--network regression|diffusion]

A thin wrapper: the command lives in `a2f_jax/commands/demo.py`; `--help` lists every option.
"""

import sys

from a2f_jax.commands.demo import main

if __name__ == "__main__":
    sys.exit(main())
