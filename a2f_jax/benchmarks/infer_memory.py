"""Peak memory of `scripts/infer.py` against audio length: a regression bundle on 1 min and 10 min of audio.

The bundle holds a real ConvW2VAutocorr (tiny random-init encoder, so the run takes seconds per minute of audio)
and a 3,804-vertex skin mesh (the size of a recorded actor's face); `quick` uses 2 s / 10 s of audio and a
100-vertex mesh. Each `infer.py` run is its own subprocess (npy + Maya cache outputs, the defaults); its peak
RSS comes from `os.wait4` (the child's own `ru_maxrss`). Bounded inference keeps `ratio` (long / short) near 1.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

# lazy imports: `bench.py --only X` discovers every area module and must not import every area's stack

REPO = pathlib.Path(__file__).resolve().parents[2]
ACTOR = "bench"
EMOTIONS = ["e0", "e1", "e2"]


def _model_data(vs: int, vt: int, ks: int, kt: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    mean_skin = f32(vs, 3)
    mean_skin[:, 1] = np.linspace(-1, 1, vs)
    mean_tongue = f32(vt, 3)
    return {"shapes_matrix_skin": 0.01 * f32(ks, vs, 3), "shapes_mean_skin": mean_skin, "neutral_skin": mean_skin,
            "lip_open_pose_delta": 0.1 * f32(vs, 3), "eye_close_pose_delta": 0.1 * f32(vs, 3),
            "shapes_matrix_tongue": 0.01 * f32(kt, vt, 3), "shapes_mean_tongue": mean_tongue, "neutral_tongue": mean_tongue,
            "neutral_jaw": f32(5, 3), "blink_keys": np.linspace(0, 1, 10).astype(np.float32),
            "saccade_rot_matrix": f32(50, 2)}


def build_bundle(out_dir: pathlib.Path, vs: int, vt: int = 10, ks: int = 16, kt: int = 4) -> pathlib.Path:
    """A regression deploy bundle with a random-init tiny-encoder network and a `vs`-vertex skin."""
    import jax

    from a2f_jax.deploy import bundle
    from a2f_jax.deploy import contract as C
    from a2f_jax.deploy.onnx_regression import export_regression
    from a2f_jax.models.audio_encoder import EncoderConfig
    from a2f_jax.models.regression import ConvW2VAutocorr, RegressionNetConfig, init_params

    enc = EncoderConfig(model_type="wav2vec2", hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        conv_dim=(8,) * 7, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4).extract_features_mode()
    params = {"use_w2v_features": True, "use_autocorr_features": True, "w2v_freeze": True, "w2v_num_layers": 1,
              "implicit_emotion_len": 16, "explicit_emo_emb_len": 8, "explicit_emotions": EMOTIONS,
              "num_shapes_skin": ks, "num_shapes_tongue": kt, "result_jaw_size": 15, "result_eyes_size": 4}
    net = ConvW2VAutocorr(RegressionNetConfig.from_network_params(params, encoder=enc))
    weights = jax.jit(lambda key: init_params(net, key, seq=1))(jax.random.PRNGKey(0))
    info = C.regression_network_info(ACTOR, EMOTIONS, [0.0] * len(EMOTIONS), ks, vs, kt, vt)
    rng = np.random.default_rng(1)
    emo_db = {"emo_db": rng.standard_normal((10, 16)).astype(np.float32), "emo_specs": {"shot": (0, 10)}}
    return bundle.write_bundle(out_dir, network_info=info, onnx_model=export_regression(net, weights, info),
                               model_data={ACTOR: _model_data(vs, vt, ks, kt)}, emo_db=emo_db,
                               inference_config={"source_shot": "shot", "source_frame": 0})


def write_wav(path: pathlib.Path, seconds: float, block: int = 16000 * 30) -> pathlib.Path:
    """Speech-like synthetic 16 kHz float wav, written in blocks (this process stays small too)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    total = int(16000 * seconds)
    with sf.SoundFile(path, "w", samplerate=16000, channels=1, subtype="FLOAT") as f:
        for start in range(0, total, block):
            t = np.arange(start, min(start + block, total)) / 16000.0
            x = 0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(len(t))
            f.write(x.astype(np.float32))
    return path


# Runs argv[1:] and prints its peak RSS in KiB. A child's ru_maxrss starts at its parent's RSS at fork time
# (Linux keeps the larger of the two across exec), so the measured process is started from this small
# launcher, never from the benchmark process that built the bundle (hundreds of MiB with JAX loaded).
_LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def infer_peak_rss(bundle_dir: pathlib.Path, wav: pathlib.Path, out: pathlib.Path) -> dict:
    """Run `scripts/infer.py` on one wav in a subprocess: its peak RSS (MiB) and wall time."""
    cmd = [sys.executable, str(REPO / "scripts" / "infer.py"), "--config", str(REPO / "configs" / "synthetic-regression-min"),
           "--bundle", str(bundle_dir), "--audio", str(wav), "--out", str(out), "--npy"]
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    code, maxrss_kib = (int(x) for x in proc.stdout.split()[-2:])
    if proc.returncode != 0 or code != 0:
        raise RuntimeError(f"infer.py exited {code}: {proc.stderr[-2000:]}")
    return {"peak_rss_mb": round(maxrss_kib / 1024.0, 1), "wall_s": round(wall, 1)}


def _infer_memory(quick: bool) -> dict:
    short_s, long_s, verts = (2.0, 10.0, 100) if quick else (60.0, 600.0, 3804)
    with tempfile.TemporaryDirectory(prefix="a2f_infer_mem_") as tmp:
        root = pathlib.Path(tmp)
        bundle_dir = build_bundle(root / "bundle", verts)
        res: dict = {"skin_vertices": verts, "short_audio_s": short_s, "long_audio_s": long_s}
        for key, seconds in (("short", short_s), ("long", long_s)):
            wav = write_wav(root / f"{key}.wav", seconds)
            r = infer_peak_rss(bundle_dir, wav, root / f"out_{key}")
            res[f"{key}_peak_rss_mb"], res[f"{key}_wall_s"] = r["peak_rss_mb"], r["wall_s"]
            skin = root / f"out_{key}" / f"{key}_skin.npy"
            res[f"{key}_skin_npy_mb"] = round(skin.stat().st_size / 2**20, 1)
            for f in (root / f"out_{key}").iterdir():  # keep the disk use of the next run low
                f.unlink()
            wav.unlink()
    res["ratio"] = round(res["long_peak_rss_mb"] / res["short_peak_rss_mb"], 3)
    return res


BENCHMARKS = {"regression_bundle": _infer_memory}
