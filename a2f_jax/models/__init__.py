"""Flax (Linen) modules: audio encoder, autocorrelation, regression and diffusion networks."""
