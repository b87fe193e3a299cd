"""Run every benchmark (or those named) and write one JSON file with the machine description.

    python scripts/bench.py                      # all, full size
    python scripts/bench.py --only blendshapes   # one area (or one benchmark: area.name)
    python scripts/bench.py --quick --out /tmp/b.json
"""

import argparse
import sys

from a2f_jax import cli


@cli.main_guard
def main(argv: list[str] | None = None) -> int:
    from a2f_jax.benchmarks._runner import run

    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="area or area.name to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="small shapes (smoke test)")
    parser.add_argument("--out", default="bench_results/bench.json", help="output JSON path")
    parser.add_argument("--in-process", action="store_true", help="run all in this process")
    args = parser.parse_args(argv)
    run(args.only, args.quick, args.out, isolate=not args.in_process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
