"""Solve blendshape weights from vertex animation (the `a2f-solve-blendshapes` command):

    python scripts/solve_blendshapes.py --bs bs_skin.npz --bs-config bs_skin_config.json --input anim.npy --out PREFIX

A thin wrapper: the command lives in `a2f_jax/commands/solve_blendshapes.py`; `--help` lists every option.
"""

import sys

from a2f_jax.commands.solve_blendshapes import main

if __name__ == "__main__":
    sys.exit(main())
