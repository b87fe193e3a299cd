"""Solve blendshape weights (ARKit-style per-pose curves) from vertex animation.

    a2f-solve-blendshapes --bs bs_skin.npz --bs-config bs_skin_config.json \
        --input anim.npy --out out/anim_bs [--fps 30] \
        [--tongue-bs bs_tongue.npz --tongue-bs-config bs_tongue_config.json --tongue-input tongue.npy
         [--tongue-rigid-vertices rigid_vertex_list.json]]
    (or python scripts/solve_blendshapes.py ...)

Writes <out>.csv, <out>.json, <out>.npz (and <out>_tongue.* with the tongue options).
--input: npy [T, V, 3], Maya cache (.xml + .mc) or .pc2, absolute positions (--deltas: offsets
from the blendshape neutral). The blendshape files are described in docs/dataset_format.md.
"""

import argparse

from a2f_jax import cli
from a2f_jax.blendshapes import solve_to_files


@cli.main_guard
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bs", required=True, help="skin blendshapes (bs_skin.npz)")
    parser.add_argument("--bs-config", required=True, help="skin solver config (bs_skin_config.json)")
    parser.add_argument("--input", required=True, help="skin animation: .npy, .xml (Maya cache) or .pc2")
    parser.add_argument("--out", required=True, help="output prefix")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate written with the weights")
    parser.add_argument("--deltas", action="store_true", help="inputs hold offsets from the neutral")
    parser.add_argument(
        "--temporal-mode", choices=("sdk", "proximal"), default="sdk",
        help="sdk: the SDK's temporal term (mostly shrinkage); proximal: a real pull to the previous frame",
    )
    parser.add_argument("--tongue-bs", help="tongue blendshapes (bs_tongue.npz)")
    parser.add_argument("--tongue-bs-config", help="tongue solver config (bs_tongue_config.json)")
    parser.add_argument("--tongue-input", help="tongue animation")
    parser.add_argument(
        "--tongue-rigid-vertices",
        help="rigid_vertex_list.json: remove the tongue's jaw motion first (raw dataset caches; not network output)",
    )
    args = parser.parse_args(argv)
    paths = solve_to_files(
        args.input, args.bs, args.bs_config, args.out, args.fps, deltas=args.deltas,
        tongue_geometry=args.tongue_input, tongue_bs_npz=args.tongue_bs, tongue_bs_config=args.tongue_bs_config,
        temporal_mode=args.temporal_mode, tongue_rigid_vertices=args.tongue_rigid_vertices,
    )
    for path in paths.values():
        print(path)
    return 0
