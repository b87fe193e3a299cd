"""Dataset layer: the original's layout, cache formats, audio, and the built-in synthetic dataset.

Modules:
  caches     shot discovery, npy / PointCache2 / Maya nCache readers and writers -> f32 [T, V, 3]
  audio      wav reading, "w2v" / "nva2f" preprocessing, per-frame windows, muted-shot noise
  actor      ActorData: one actor's dataset files with the original's defaults; shot -> emotion
  check      dataset-vs-config validation and the shot table (scripts/check_dataset.py)
  synthetic  the built-in synthetic dataset (synthetic_speech: audio, synthetic_face: mesh/rig)
"""
