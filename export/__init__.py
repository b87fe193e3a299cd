"""Deploy: ONNX export and the bundle read by Maya-ACE and the Audio2Face-3D SDK."""
