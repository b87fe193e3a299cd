"""Check an accelerator in one call (the `a2f-device-check` command):

    python scripts/device_check.py [--quick] [--budget-s 480]

A thin wrapper: the command lives in `a2f_jax/commands/device_check.py`; `--help` lists every option.
"""

import sys

from a2f_jax.commands.device_check import main

if __name__ == "__main__":
    sys.exit(main())
