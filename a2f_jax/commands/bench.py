"""Run every benchmark (or those named) and write one JSON file with the machine description.

    a2f-bench                      # all, full size (or python scripts/bench.py)
    a2f-bench --only blendshapes   # one area (or one benchmark: area.name)
    a2f-bench --quick --out /tmp/b.json
"""

import argparse

from a2f_jax import cli
from a2f_jax.benchmarks import _runner


@cli.main_guard
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="area or area.name to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="small shapes (smoke test)")
    parser.add_argument("--out", default="bench_results/bench.json", help="output JSON path")
    parser.add_argument("--in-process", action="store_true", help="run all in this process")
    args = parser.parse_args(argv)
    _runner.run(args.only, args.quick, args.out, isolate=not args.in_process)
    return 0
