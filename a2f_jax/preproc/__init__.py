"""Preprocessing: skin and tongue PCA with pruning, and the deploy artifacts (NumPy + scikit-learn).

`run(configs, actor) -> Path` does a whole run; the algorithms (`pca`, `prune`, `select`, `rigid`)
are plain NumPy functions on arrays.
"""

from a2f_jax.preproc.run import run

__all__ = ["run"]
