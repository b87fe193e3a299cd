"""Configuration: base configs mirroring the original's four config files, and the loader."""
