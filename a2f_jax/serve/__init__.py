"""Serve a deploy bundle live over the Audio2Face-3D NIM gRPC API (`A2FControllerService/ProcessAudioStream`).

`session` is the streaming pipeline (network, post-processing, blendshape solver; no gRPC), `protocol` converts
the NIM messages, `server` is the gRPC service, `client` a plain client, `cli` the console entry points.
Needs the `[serve]` extra (grpcio, nvidia-audio2face-3d, nvidia-ace); README "Serving over gRPC".
"""
