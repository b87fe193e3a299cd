"""Check an accelerator in one call: environment, numerics tests, float32/bfloat16 benchmarks, projected
example training times, and a short training compared with a CPU run (a2f_jax/device_check.py).

    a2f-device-check [--quick] [--budget-s 480] [--out device_check.json]
    (or python scripts/device_check.py ...)

--quick runs the same path with tiny shapes in about a minute (on the CPU it checks the harness).
"""

import argparse

from a2f_jax import cli, device_check
from a2f_jax.io_utils import atomic_write_json


@cli.main_guard
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, a few cases (about a minute)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="wall-time budget of the whole check")
    parser.add_argument("--out", default="bench_results/device_check.json", help="output JSON path")
    args = parser.parse_args(argv)
    report = device_check.run(quick=args.quick, budget_s=args.budget_s)
    atomic_write_json(args.out, report, indent=2)
    print(device_check.summary(report))
    print(f"wrote {args.out}")
    return 0
