"""Check a deploy bundle against the Audio2Face-3D SDK / Maya-ACE contract (docs/bundle_contract.md).

    a2f-check-bundle <bundle dir> [--no-run] [--warnings-as-errors] [--debug]
    (or python scripts/check_bundle.py ...)

Prints every violation as (rule, file, expected, found); exits 1 on any error, 2 on bad arguments.
"""

from a2f_jax import cli
from a2f_jax.deploy.check import check_bundle, errors, format_report


@cli.main_guard
def main(argv: list[str] | None = None) -> int:
    ap = cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", help="deploy bundle directory (holds model.json)")
    ap.add_argument("--no-run", action="store_true", help="skip running network.onnx with onnxruntime")
    ap.add_argument("--warnings-as-errors", action="store_true")
    args = ap.parse_args(argv)
    violations = check_bundle(args.bundle, run_onnx=not args.no_run)
    print(format_report(violations))
    failing = violations if args.warnings_as_errors else errors(violations)
    return 1 if failing else 0
