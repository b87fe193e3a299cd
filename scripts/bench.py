"""Run the benchmarks and write one JSON file (the `a2f-bench` command):

    python scripts/bench.py [--only AREA] [--quick]

A thin wrapper: the command lives in `a2f_jax/commands/bench.py`; `--help` lists every option.
"""

import sys

from a2f_jax.commands.bench import main

if __name__ == "__main__":
    sys.exit(main())
