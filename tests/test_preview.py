"""Previews: comparison PNGs and preview clips (GIF, MP4 with audio) on the synthetic face; the meshes
themselves are drawn by `a2f_jax.infer.render` (tests/test_render.py)."""

from __future__ import annotations

import subprocess

import imageio.v2 as iio2
import imageio.v3 as iio
import numpy as np
import pytest

from a2f_jax.data import synthetic_face
from a2f_jax.errors import ConfigError, DataError
from a2f_jax.infer import preview
from a2f_jax.infer.metrics import lip_distance

FPS = 30.0
SR = 16000


@pytest.fixture(scope="module")
def clip():
    """12 frames of the synthetic face opening and closing its jaw, a jittered 'prediction', and audio."""
    face = synthetic_face.build_face()
    t = np.arange(12)
    jaw = 0.5 - 0.5 * np.cos(2 * np.pi * t / 12)  # closed at frame 0, fully open at frame 6
    gt = face.neutral[None] + jaw[:, None, None] * face.shapes[synthetic_face.SKIN_POSES.index("jawOpen")][None]
    rng = np.random.default_rng(0)
    pred = gt + rng.normal(0.0, 0.01, gt.shape)
    audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(12 / FPS * SR)) / SR)).astype(np.float32)
    return {"face": face, "gt": gt.astype(np.float32), "pred": pred.astype(np.float32), "audio": audio}


# ----------------------------------------------------------------------------------------------
# Comparison image and clips
# ----------------------------------------------------------------------------------------------


def test_render_comparison_png(clip, tmp_path):
    lip = clip["face"].lip_dist
    out = preview.render_comparison(clip["pred"], clip["gt"], clip["audio"], SR, FPS, lip, tmp_path / "a.png",
                                    frame=0, title="unit", figsize=(6.0, 4.0), dpi=50)
    img = iio.imread(out)
    assert img.shape[:2] == (200, 300)
    assert img[..., :3].astype(float).std() > 20  # not blank
    # The frame shows: the open mouth (frame 6) differs from the closed one in the face row.
    opened = iio.imread(preview.render_comparison(clip["pred"], clip["gt"], clip["audio"], SR, FPS, lip,
                                                  tmp_path / "b.png", frame=6, figsize=(6.0, 4.0), dpi=50))
    top = slice(20, 110)
    assert np.abs(opened[top].astype(int) - img[top].astype(int)).max() > 100
    # Without ground truth, audio or lip list it still renders (prediction only).
    only = preview.render_comparison(clip["pred"], None, None, SR, FPS, None, tmp_path / "c.png", frame=3,
                                     figsize=(6.0, 4.0), dpi=50)
    assert iio.imread(only).shape[:2] == (200, 300)


def test_render_comparison_bad_input(clip, tmp_path):
    lip = clip["face"].lip_dist
    pred, gt, audio = clip["pred"], clip["gt"], clip["audio"]
    with pytest.raises(DataError, match="gt"):
        preview.render_comparison(pred, gt[:, :10], audio, SR, FPS, lip, tmp_path / "x.png")
    with pytest.raises(DataError, match="frame"):
        preview.render_comparison(pred, gt, audio, SR, FPS, lip, tmp_path / "x.png", frame=12)
    with pytest.raises(DataError, match="upper"):
        preview.render_comparison(pred, gt, audio, SR, FPS, {"upper": [10**6], "lower": [0]}, tmp_path / "x.png")
    with pytest.raises(DataError, match="paired"):
        preview.render_comparison(pred, gt, audio, SR, FPS, {"upper": [1, 2], "lower": [0]}, tmp_path / "x.png")
    with pytest.raises(DataError, match="pred"):
        preview.render_comparison(pred[0], gt, audio, SR, FPS, lip, tmp_path / "x.png")
    bad = pred.copy()
    bad[3, 5, 1] = np.nan
    with pytest.raises(DataError, match="finite"):
        preview.render_comparison(bad, gt, audio, SR, FPS, lip, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_lip_list_from_json_file(clip, tmp_path):
    import json

    path = tmp_path / "lip_dist_vertex_list.json"
    path.write_text(json.dumps(clip["face"].lip_dist))
    loaded = preview._load_lip_list(path, clip["gt"].shape[1])
    np.testing.assert_array_equal(lip_distance(clip["gt"], loaded), lip_distance(clip["gt"], clip["face"].lip_dist))
    path.write_text("{not json")
    with pytest.raises(DataError, match="lip_dist_vertex_list.json"):
        preview._load_lip_list(path, clip["gt"].shape[1])


def test_render_video_gif_frame_count(clip, tmp_path):
    out = preview.render_video(clip["pred"], clip["gt"], clip["audio"], SR, FPS, clip["face"].lip_dist,
                               tmp_path / "clip.gif", stride=2, figsize=(4.0, 2.4), dpi=50)
    assert out == tmp_path / "clip.gif"
    frames = iio.imread(out, index=None)
    assert frames.shape[:3] == (6, 120, 200)  # frames 0, 2, ..., 10
    assert iio.immeta(out)["duration"] == pytest.approx(1000 / 15, abs=10)  # real time: fps / stride
    # Frames differ (the face and the cursor move), and match a still of the same frame closely.
    assert np.abs(frames[3].astype(int) - frames[0].astype(int)).max() > 100
    def still_error(frame: int) -> float:
        still = iio.imread(preview.render_comparison(clip["pred"], clip["gt"], clip["audio"], SR, FPS, clip["face"].lip_dist,
                                                     tmp_path / "still.png", frame=frame, figsize=(4.0, 2.4), dpi=50))
        return float(np.abs(frames[3].astype(float) - still[..., :3].astype(float)).mean())

    # GIF palette error only: the blitted clip frame 3 is the full drawing of frame 6, not of frame 4.
    right, wrong = still_error(6), still_error(4)
    assert right < 0.6 and 2 * right < wrong
    limited = preview.render_video(clip["pred"], clip["gt"], clip["audio"], SR, FPS, clip["face"].lip_dist,
                                   tmp_path / "short.gif", max_frames=4, figsize=(4.0, 2.4), dpi=50)
    assert iio.imread(limited, index=None).shape[0] == 4


def test_render_video_mp4_with_audio(clip, tmp_path):
    import imageio_ffmpeg

    out = preview.render_video(clip["pred"], clip["gt"], clip["audio"], SR, FPS, clip["face"].lip_dist,
                               tmp_path / "clip.mp4", figsize=(4.0, 2.4), dpi=50)
    assert out.suffix == ".mp4"
    reader = iio2.get_reader(out, "ffmpeg")
    try:
        assert reader.count_frames() == 12
        assert reader.get_meta_data()["size"] == (200, 120)
        assert reader.get_meta_data()["fps"] == pytest.approx(FPS)
        assert reader.get_data(6)[..., :3].std() > 20
    finally:
        reader.close()
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(out)], capture_output=True, text=True)
    assert "Audio: aac" in probe.stderr


def test_render_video_falls_back_to_gif_and_rejects_other_suffixes(clip, tmp_path, monkeypatch):
    monkeypatch.setattr(preview, "_ffmpeg_available", lambda: False)
    out = preview.render_video(clip["pred"], None, None, SR, FPS, None, tmp_path / "clip.mp4", max_frames=3,
                               figsize=(4.0, 2.4), dpi=50)
    assert out == tmp_path / "clip.gif" and out.exists() and not (tmp_path / "clip.mp4").exists()
    assert iio.imread(out, index=None).shape[0] == 3
    with pytest.raises(ConfigError, match="suffix"):
        preview.render_video(clip["pred"], None, None, SR, FPS, None, tmp_path / "clip.avi")
    with pytest.raises(ConfigError, match="stride"):
        preview.render_video(clip["pred"], None, None, SR, FPS, None, tmp_path / "clip.gif", stride=0)
