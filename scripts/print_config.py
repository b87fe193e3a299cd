"""Print the resolved configs of a config directory as JSON (the `a2f-print-config` command):

    python scripts/print_config.py --config configs/<name> [--config.train.KEY=value]

A thin wrapper: the command lives in `a2f_jax/commands/print_config.py`; `--help` lists every option.
"""

import sys

from a2f_jax.commands.print_config import main

if __name__ == "__main__":
    sys.exit(main())
