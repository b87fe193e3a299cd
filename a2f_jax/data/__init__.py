"""Dataset layer: the original's layout, cache formats, audio, and the built-in synthetic dataset."""
