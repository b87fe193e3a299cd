"""The whole pipeline on the built-in synthetic dataset (what `make demo` runs):

    python scripts/demo.py [--network regression|diffusion] [--out demo] [--steps N]
"""

from a2f_jax.demo import main

if __name__ == "__main__":
    main()
