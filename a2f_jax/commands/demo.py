"""The whole pipeline on the built-in synthetic dataset (what `make demo` runs):

    a2f-demo [--network regression|diffusion] [--out demo] [--steps N] [--debug]
    (or python scripts/demo.py ...)
"""

from a2f_jax import cli, demo


@cli.main_guard
def main(argv: list[str] | None = None) -> int:
    demo.main([a for a in argv or [] if a != cli.DEBUG_FLAG])
    return 0
