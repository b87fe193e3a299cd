"""Bundle a finished training run for Maya-ACE / the Audio2Face-3D SDK.

    a2f-deploy --config configs/<name> --run <training run dir or name> [--onnx network.onnx]
        [--out-root DIR] [--no-check-run] [--allow-incomplete] [--debug]
    (or python scripts/deploy.py ...)

Writes `<FINAL_DEPLOY_ROOT>/<run name>/` (network.onnx, network_info.json, model.json, model_config*.json,
model_data*.npz, implicit_emo_db.npz for regression, trt_info.json, blendshape files, README.md; see
docs/bundle_contract.md), checks it against the consumer contract and only then renames it into place. The run must
have finished (status complete or stopped); --allow-incomplete also deploys an interrupted one, with a warning.
"""

from a2f_jax import cli
from a2f_jax.deploy import bundle
from a2f_jax.rundir import setup_logging


def _extra(parser):
    parser.add_argument("--run", required=True, help="training run dir, or its name under TRAIN_OUTPUT_ROOT")
    parser.add_argument("--onnx", help="use this network.onnx instead of the run's (or exporting its checkpoint)")
    parser.add_argument("--out-root", help="write under this folder instead of FINAL_DEPLOY_ROOT")
    parser.add_argument("--no-check-run", action="store_true", help="check the bundle statically only (no onnxruntime run)")
    parser.add_argument("--allow-incomplete", action="store_true",
                        help="also deploy a run that was interrupted (by a signal) before its last step")


@cli.main_guard
def main(argv: list[str] | None = None) -> int:
    setup_logging()
    configs, args = cli.parse(argv, description=__doc__, extra_args=_extra)
    out = bundle.deploy_run(configs, args.run, onnx_model=args.onnx, out_root=args.out_root, run_onnx=not args.no_check_run,
                            allow_incomplete=args.allow_incomplete)
    print(out)
    return 0
