"""Run a trained network (regression or diffusion) on audio files and write npy / Maya cache outputs.

    a2f-infer --config configs/<name> (--run RUN_DIR | --bundle BUNDLE_DIR) --audio a.wav [b.wav ...] \
        --out DIR [--emotion NAME | --emotion-weights angry=0.5,sad=0.2] [--backend jax|onnx] \
        [--mode offline|streaming] [--seed N] [--fps 30] [--actor NAME] [--delta] [--npy] [--blendshapes]
    (or python scripts/infer.py ...)

--run uses the JAX backend, --bundle onnxruntime (diffusion bundles stream only). The network type comes
from the run's model_def.json / the bundle's network_info.json. Diffusion settings (TIMESTEP_RESPACING,
SKIP_STEPS, USE_DDIM, INFERENCE_MODE, CONDITION, ACTOR_NAME, EMOTION_LABEL, DETERMINISTIC_NOISE_PATH,
OUTPUT_MAYA_CACHE, OUTPUT_NPY_FILE) come from config_inference; the options here override them.
--blendshapes solves blendshape weights of the predicted skin (and tongue) with the bundle's bs_* files.
"""

from __future__ import annotations

from a2f_jax import cli
from a2f_jax.infer import run_cli


def _extra(parser):
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="training run directory (JAX backend)")
    src.add_argument("--bundle", help="deploy bundle directory (onnxruntime backend)")
    parser.add_argument("--audio", nargs="+", required=True, help="audio files (resampled to 16 kHz mono)")
    parser.add_argument("--out", required=True, help="output folder")
    emo = parser.add_mutually_exclusive_group()
    emo.add_argument("--emotion", help="an explicit emotion name (or 'neutral')")
    emo.add_argument("--emotion-weights", help="name=weight,... over the explicit emotions")
    parser.add_argument("--backend", choices=("jax", "onnx"), help="must match the source (run: jax, bundle: onnx)")
    parser.add_argument("--mode", choices=("offline", "streaming"), help="diffusion inference mode (default INFERENCE_MODE)")
    parser.add_argument("--seed", type=int, help="diffusion noise seed (default: DETERMINISTIC_NOISE_PATH, else 0)")
    parser.add_argument("--fps", type=float, help="regression output frame rate (default 30); diffusion uses TARGET_FPS")
    parser.add_argument("--actor", help="identity (CONDITION) of a multi-actor diffusion network")
    parser.add_argument("--delta", action="store_true", help="diffusion: write deltas in original units, not positions")
    parser.add_argument("--npy", action="store_true", help="also write npy files (OUTPUT_NPY_FILE)")
    parser.add_argument("--no-maya-cache", action="store_true", help="do not write Maya caches (OUTPUT_MAYA_CACHE)")
    parser.add_argument("--blendshapes", action="store_true", help="solve blendshape weights with the bundle's bs_* files")
    parser.add_argument("--postprocess", action="store_true",
                        help="apply the bundle's model_config post-processing (strengths, smoothing, offsets, saccades) as Maya-ACE does")


@cli.main_guard
def main(argv: list[str] | None = None) -> int:
    configs, args = cli.parse(argv, description=__doc__, extra_args=_extra)
    for path in run_cli.run(configs, args):
        print(path)
    return 0
