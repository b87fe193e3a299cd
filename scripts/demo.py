"""The whole pipeline on the built-in synthetic dataset (what `make demo` runs):

    python scripts/demo.py [--network regression|diffusion] [--out demo] [--steps N] [--debug]
"""

import sys

from a2f_jax import cli


@cli.main_guard
def main(argv: list[str] | None = None) -> int:
    from a2f_jax import demo

    demo.main([a for a in argv or [] if a != cli.DEBUG_FLAG])
    return 0


if __name__ == "__main__":
    sys.exit(main())
