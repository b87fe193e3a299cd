"""Check a deploy bundle against the SDK / Maya-ACE contract (the `a2f-check-bundle` command):

    python scripts/check_bundle.py BUNDLE_DIR [--no-run]

A thin wrapper: the command lives in `a2f_jax/commands/check_bundle.py`; `--help` lists every option.
"""

import sys

from a2f_jax.commands.check_bundle import main

if __name__ == "__main__":
    sys.exit(main())
