"""Training: losses, samplers, train state, the shared loop, and the two trainers."""
