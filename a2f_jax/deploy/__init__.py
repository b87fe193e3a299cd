"""Deploy: ONNX export and the bundle read by Maya-ACE and the Audio2Face-3D SDK.

- `contract`: file names, JSON keys/types, model_config ranges, npz keys, ONNX tensor shapes, trt_info (docs/bundle_contract.md).
- `bundle`: `write_bundle` (atomic, checked) and `deploy_run` (from a training run dir + its preproc runs).
- `check`: `check_bundle` -> list of `Violation(rule, file, expected, found)`; `scripts/check_bundle.py`.
- `runtime_feed`: feed `network.onnx` as the SDK does (regression windows per frame, diffusion 0.5 s hops
  with carried GRU latents).
- `onnx_utils`: jax2onnx export with contract names, opset-14 legalisation, ORT-vs-JAX comparison.
- `onnx_regression`, `onnx_diffusion`: the two network graphs.
- `run_bundle.animate`: audio -> geometry from a bundle, SDK style (ORT feeding + runtime post-processing).
"""
