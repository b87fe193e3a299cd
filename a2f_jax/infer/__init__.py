"""Inference: offline and streaming, post-processing, metrics, previews, blendshape solving."""
