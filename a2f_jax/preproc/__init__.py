"""Preprocessing: skin and tongue PCA with pruning, and the deploy artifacts (NumPy + scikit-learn)."""
