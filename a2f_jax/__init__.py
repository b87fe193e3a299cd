"""a2f-jax: a JAX/Flax training framework for audio-driven 3D facial animation.

Compatible with NVIDIA's Audio2Face-3D Training Framework: same dataset layout, same four config
files, same preprocessing artifacts and the same deploy bundle for Maya-ACE and the Audio2Face-3D SDK.
"""

__version__ = "0.1.0"
