"""Headless previews: shaded face meshes (prediction next to ground truth) with lip distance and audio.

    render_comparison(pred, gt, audio, 16000, 30.0, lip_dist_list, "preview.png", frame=42)
    render_video(pred, gt, audio, 16000, 30.0, lip_dist_list, "preview.mp4", max_frames=150)

Geometry is [T, V, 3] (Y up, Z towards the viewer, X to the character's left; docs/dataset_format.md).
The meshes are triangulated and drawn by `a2f_jax.infer.render`; without given faces, the clip's
most closed frame is triangulated and its other frames find the mouth opening.
Frame i sits at time (i + 0.5) / fps, as in the audio windows of training.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import tempfile
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless; must precede pyplot

import imageio.v3 as iio  # noqa: E402
import imageio_ffmpeg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile  # noqa: E402

from a2f_jax.errors import ConfigError, DataError, describe  # noqa: E402
from a2f_jax.infer.metrics import lip_distance  # noqa: E402
from a2f_jax.infer.render import (  # noqa: E402
    DEFAULT_SKIN,
    MAX_AUTO_VERTICES,
    VIEWS,
    ShadedMesh,
    check_faces,
    frontmost_subset,
    render_mesh,
    shaded_triangles,
    triangulate_surface,
    view_limits,
)
from a2f_jax.io_utils import atomic_path  # noqa: E402

PRED_COLOR = "tab:orange"
GT_COLOR = "tab:blue"
# Light clay tints whose hue matches the curve colour of the same source.
PRED_SKIN = np.array([0.93, 0.78, 0.62])
GT_SKIN = DEFAULT_SKIN


def _load_lip_list(lip_dist_list: Mapping[str, Sequence[int]] | str | os.PathLike | None, num_vertices: int) -> dict | None:
    if lip_dist_list is None:
        return None
    where: object = "lip_dist_list"
    if isinstance(lip_dist_list, (str, os.PathLike)):
        where = lip_dist_list
        try:
            lip_dist_list = json.loads(pathlib.Path(lip_dist_list).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(describe(where, None, "a readable JSON file", f"{type(e).__name__}: {e}")) from e
    if not isinstance(lip_dist_list, Mapping) or "upper" not in lip_dist_list or "lower" not in lip_dist_list:
        raise DataError(describe(where, None, '{"upper": [...], "lower": [...]}', repr(lip_dist_list)[:80]))
    out = {}
    for side in ("upper", "lower"):
        idx = np.asarray(lip_dist_list[side])
        if idx.ndim != 1 or len(idx) == 0 or not np.issubdtype(idx.dtype, np.integer):
            raise DataError(describe(where, side, "a non-empty list of vertex indices", repr(lip_dist_list[side])[:80]))
        if idx.min() < 0 or idx.max() >= num_vertices:
            raise DataError(describe(where, side, f"indices in [0, {num_vertices})", f"range [{idx.min()}, {idx.max()}]"))
        out[side] = idx
    if len(out["upper"]) != len(out["lower"]):
        raise DataError(describe(where, None, "upper and lower lists of equal length (paired)", f"{len(out['upper'])} and {len(out['lower'])}"))
    return out


def _check_inputs(pred: np.ndarray, gt: np.ndarray | None, audio: np.ndarray | None, sr: float, fps: float) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    pred = np.asarray(pred, dtype=np.float64)
    if pred.ndim != 3 or pred.shape[2] != 3 or pred.shape[0] < 1:
        raise DataError(describe("pred", None, "frames [T, V, 3]", f"shape {pred.shape}"))
    if not np.isfinite(pred).all():
        raise DataError(describe("pred", None, "finite values", "NaN or inf"))
    if gt is not None:
        gt = np.asarray(gt, dtype=np.float64)
        if gt.shape != pred.shape:
            raise DataError(describe("gt", None, f"the shape of pred {pred.shape}", f"shape {gt.shape}"))
        if not np.isfinite(gt).all():
            raise DataError(describe("gt", None, "finite values", "NaN or inf"))
    if audio is not None:
        audio = np.asarray(audio, dtype=np.float64)
        if audio.ndim != 1:
            raise DataError(describe("audio", None, "mono samples [N]", f"shape {audio.shape}"))
    if not fps > 0 or (audio is not None and not sr > 0):
        raise ConfigError(describe("fps/sr", None, "positive rates", f"fps={fps}, sr={sr}"))
    return pred, gt, audio


def _reference_frame(frames: np.ndarray, lip: dict | None) -> np.ndarray:
    """The frame with the most closed mouth: triangles there span the lip slit only barely."""
    if lip is None:
        return frames[0]
    return frames[int(np.argmin(lip_distance(frames, lip)))]


def _auto_faces(pred: np.ndarray, gt: np.ndarray | None, lip: dict | None,
                max_vertices: int = MAX_AUTO_VERTICES) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate the clip itself: its most closed frame, with its other frames finding the openings.
    Meshes over `max_vertices` use their `frontmost_subset`; indices always refer to the full mesh."""
    source = gt if gt is not None else pred
    sample = source[np.linspace(0, len(source) - 1, min(len(source), 64)).astype(int)]
    reference = _reference_frame(source, lip)
    keep = frontmost_subset(reference, max_vertices)
    faces, openings = triangulate_surface(reference[keep], poses=sample[:, keep], return_openings=True)
    return keep[faces].astype(np.int32), keep[openings].astype(np.int32)


def _audio_envelope(audio: np.ndarray, sr: float, t_end: float, bins: int = 1200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(time, min, max) per bin over [0, t_end]: a waveform with ~1 point per pixel column."""
    n = min(len(audio), int(np.ceil(t_end * sr)))
    if n == 0:
        return np.array([0.0, t_end]), np.zeros(2), np.zeros(2)
    bins = max(1, min(bins, n))
    edges = np.linspace(0, n, bins + 1).astype(int)
    lo = np.minimum.reduceat(audio[:n], edges[:-1])
    hi = np.maximum.reduceat(audio[:n], edges[:-1])
    t = (edges[:-1] + edges[1:]) / 2 / sr
    return t, lo, hi


@dataclasses.dataclass
class _Panel:
    mesh: ShadedMesh
    frames: np.ndarray
    view: str
    color: np.ndarray


class _PreviewFigure:
    """One figure whose dynamic artists (meshes, cursors, titles) are updated per frame."""

    def __init__(self, pred: np.ndarray, gt: np.ndarray | None, audio: np.ndarray | None, sr: float, fps: float,
                 lip: dict | None, faces: np.ndarray, openings: np.ndarray | None, title: str,
                 figsize: tuple[float, float], dpi: float, animated: bool = False) -> None:
        self.fps, self.num_frames, self.title = fps, len(pred), title
        sources = [("prediction", pred, PRED_SKIN)] + ([("ground truth", gt, GT_SKIN)] if gt is not None else [])
        limits = {v: view_limits([s[1] for s in sources], v) for v in VIEWS}
        widths = [(limits[v][0][1] - limits[v][0][0]) / (limits[v][1][1] - limits[v][1][0]) for _, _, _ in sources for v in VIEWS]

        self.fig = plt.figure(figsize=figsize, dpi=dpi)
        outer = self.fig.add_gridspec(3, 1, height_ratios=[3.2, 0.75, 1.25], hspace=0.25, left=0.07, right=0.98, top=0.9, bottom=0.1)
        top = outer[0].subgridspec(1, len(widths), width_ratios=widths, wspace=0.04)
        self.panels: list[_Panel] = []
        col = 0
        for name, frames, skin in sources:
            for view in VIEWS:
                ax = self.fig.add_subplot(top[0, col])
                mesh = render_mesh(ax, frames[0], faces, view, skin, limits[view], openings=openings)
                mesh.set_animated(animated)
                ax.set_title(f"{name}, {view}", fontsize="medium")
                self.panels.append(_Panel(mesh, frames, view, skin))
                col += 1
        self.faces, self.openings = faces, openings

        t_end = self.num_frames / fps
        t_frames = (np.arange(self.num_frames) + 0.5) / fps
        ax_audio = self.fig.add_subplot(outer[1])
        ax_lip = self.fig.add_subplot(outer[2], sharex=ax_audio)
        if audio is not None:
            t, lo, hi = _audio_envelope(audio, sr, t_end)
            ax_audio.fill_between(t, lo, hi, color="0.35", linewidth=0.5)
            peak = float(max(np.abs(lo).max(), np.abs(hi).max(), 1e-6))
            ax_audio.set_ylim(-1.05 * peak, 1.05 * peak)
        else:
            ax_audio.text(0.5, 0.5, "no audio", ha="center", va="center", transform=ax_audio.transAxes, color="0.5")
        ax_audio.set_ylabel("audio", fontsize="small")
        ax_audio.set_yticks([])
        ax_audio.tick_params(labelbottom=False)
        self.lip_curves: list[tuple[Any, np.ndarray]] = []
        if lip is not None:
            for name, frames, color in ([("ground truth", gt, GT_COLOR)] if gt is not None else []) + [("prediction", pred, PRED_COLOR)]:
                dist = lip_distance(frames, lip)
                ax_lip.plot(t_frames, dist, color=color, linewidth=1.2, label=name)
                (dot,) = ax_lip.plot([t_frames[0]], [dist[0]], "o", color=color, markersize=4, animated=animated)
                self.lip_curves.append((dot, dist))
            ax_lip.legend(loc="upper right", fontsize="small", ncol=2, framealpha=0.8)
        else:
            ax_lip.text(0.5, 0.5, "no lip-distance vertex list", ha="center", va="center", transform=ax_lip.transAxes, color="0.5")
        ax_lip.set_ylabel("lip distance (cm)", fontsize="small")
        ax_lip.set_xlabel("time (s)", fontsize="small")
        ax_lip.set_xlim(0.0, t_end)
        ax_lip.grid(alpha=0.3)
        ax_lip.tick_params(labelsize="small")
        self.cursors = [ax.axvline(t_frames[0], color="crimson", linewidth=1.0, animated=animated) for ax in (ax_audio, ax_lip)]
        self.suptitle = self.fig.suptitle("", fontsize="medium", animated=animated)
        self.animated = [p.mesh for p in self.panels] + [d for d, _ in self.lip_curves] + self.cursors + [self.suptitle]

    def set_frame(self, frame: int) -> None:
        for p in self.panels:
            p.mesh.set_data(*shaded_triangles(p.frames[frame], self.faces, p.view, p.color, openings=self.openings))
        t = (frame + 0.5) / self.fps
        for dot, dist in self.lip_curves:
            dot.set_data([t], [dist[frame]])
        for c in self.cursors:
            c.set_xdata([t, t])
        head = f"{self.title}   " if self.title else ""
        self.suptitle.set_text(f"{head}frame {frame} / {self.num_frames}   t = {t:.2f} s")

    def rgb(self) -> np.ndarray:
        """The canvas as uint8 [H, W, 3]."""
        return np.asarray(self.fig.canvas.buffer_rgba())[..., :3].copy()


def _prepare(pred: np.ndarray, gt: np.ndarray | None, audio: np.ndarray | None, sr: float, fps: float,
             lip_dist_list: Any, faces: np.ndarray | None, openings: np.ndarray | None) -> tuple:
    pred, gt, audio = _check_inputs(pred, gt, audio, sr, fps)
    lip = _load_lip_list(lip_dist_list, pred.shape[1])
    if faces is None:
        faces, auto_openings = _auto_faces(pred, gt, lip)
        openings = auto_openings if openings is None else openings
    faces = check_faces(faces, pred.shape[1])
    openings = None if openings is None else check_faces(openings, pred.shape[1], "openings")
    return pred, gt, audio, lip, faces, openings


def render_comparison(
    pred: np.ndarray,
    gt: np.ndarray | None,
    audio: np.ndarray | None,
    sr: float,
    fps: float,
    lip_dist_list: Mapping[str, Sequence[int]] | str | os.PathLike | None,
    out_png: str | os.PathLike,
    frame: int = 0,
    faces: np.ndarray | None = None,
    openings: np.ndarray | None = None,
    title: str = "",
    figsize: tuple[float, float] = (12.0, 7.0),
    dpi: float = 100.0,
) -> pathlib.Path:
    """Write a PNG: prediction [T, V, 3] and ground truth (or None) at `frame`, front and side views,
    above the audio waveform and the lip distance over time (prediction vs ground truth) with a cursor.

    `lip_dist_list` is the dataset's `{"upper": [...], "lower": [...]}` (or its JSON path, or None).
    `faces` [F, 3] (and `openings` [G, 3], filled dark) default to `triangulate_surface` of the clip.
    Returns the path written.
    """
    pred, gt, audio, lip, faces, openings = _prepare(pred, gt, audio, sr, fps, lip_dist_list, faces, openings)
    if not 0 <= frame < len(pred):
        raise DataError(describe("frame", None, f"an index in [0, {len(pred)})", str(frame)))
    view = _PreviewFigure(pred, gt, audio, sr, fps, lip, faces, openings, title, figsize, dpi)
    try:
        view.set_frame(frame)
        out_png = pathlib.Path(out_png)
        with atomic_path(out_png) as tmp:
            view.fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(view.fig)
    return out_png


def _ffmpeg_available() -> bool:
    try:
        imageio_ffmpeg.get_ffmpeg_exe()  # raises when the package ships no binary for this platform
        return True
    except RuntimeError:
        return False


def render_video(
    pred: np.ndarray,
    gt: np.ndarray | None,
    audio: np.ndarray | None,
    sr: float,
    fps: float,
    lip_dist_list: Mapping[str, Sequence[int]] | str | os.PathLike | None,
    out_path: str | os.PathLike,
    max_frames: int = 300,
    stride: int = 1,
    faces: np.ndarray | None = None,
    openings: np.ndarray | None = None,
    title: str = "",
    figsize: tuple[float, float] = (8.0, 4.8),
    dpi: float = 80.0,
    with_audio: bool = True,
) -> pathlib.Path:
    """Write a preview clip of every `stride`-th frame (at most `max_frames`) at fps / stride (real time).

    ".mp4" is written with imageio-ffmpeg (H.264, with the audio track when `with_audio`); without
    ffmpeg, or for ".gif", a GIF. Returns the path actually written (the suffix may change to .gif).
    """
    out_path = pathlib.Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ConfigError(describe(out_path, None, "a .mp4 or .gif path", f"suffix {out_path.suffix!r}"))
    if stride < 1 or max_frames < 1:
        raise ConfigError(describe("stride/max_frames", None, "integers >= 1", f"stride={stride}, max_frames={max_frames}"))
    if suffix == ".mp4" and not _ffmpeg_available():
        out_path = out_path.with_suffix(".gif")
        suffix = ".gif"
    pred, gt, audio, lip, faces, openings = _prepare(pred, gt, audio, sr, fps, lip_dist_list, faces, openings)
    indices = np.arange(0, len(pred), stride)[:max_frames]
    out_fps = fps / stride

    view = _PreviewFigure(pred, gt, audio, sr, fps, lip, faces, openings, title, figsize, dpi, animated=True)
    try:
        canvas = view.fig.canvas
        canvas.draw()  # static parts once; the animated artists are drawn per frame on top
        background = canvas.copy_from_bbox(view.fig.bbox)

        def frames():
            for i in indices:
                view.set_frame(int(i))
                canvas.restore_region(background)
                for artist in view.animated:
                    view.fig.draw_artist(artist)
                yield view.rgb()

        if suffix == ".gif":
            _write_gif(out_path, list(frames()), out_fps)
        else:
            clip = None
            if with_audio and audio is not None and len(audio):
                start = indices[0] / fps
                clip = audio[int(round(start * sr)) : int(round((indices[-1] + stride) / fps * sr))]
            _write_mp4(out_path, frames(), out_fps, clip, sr)
    finally:
        plt.close(view.fig)
    return out_path


def _write_gif(path: pathlib.Path, frames: list[np.ndarray], fps: float) -> None:
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=1000.0 / fps, loop=0)


def _write_mp4(path: pathlib.Path, frames: Any, fps: float, audio: np.ndarray | None, sr: float) -> None:
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    # yuv420p needs even sizes: pad one row/column of white where needed.
    ph, pw = h % 2, w % 2

    def padded(img: np.ndarray) -> np.ndarray:
        return np.pad(img, ((0, ph), (0, pw), (0, 0)), constant_values=255) if ph or pw else img

    with tempfile.TemporaryDirectory(prefix="a2f_preview_") as tmpdir, atomic_path(path) as tmp:
        audio_path = None
        if audio is not None and len(audio):
            audio_path = os.path.join(tmpdir, "audio.wav")
            peak = max(float(np.abs(audio).max()), 1.0)
            soundfile.write(audio_path, (audio / peak).astype(np.float32), int(round(sr)), subtype="PCM_16")
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (w + pw, h + ph), fps=fps, codec="libx264", quality=6, macro_block_size=1,
            output_params=["-f", "mp4", "-movflags", "+faststart"],
            audio_path=audio_path, audio_codec="aac" if audio_path else None, ffmpeg_log_level="error",
        )
        writer.send(None)  # start the generator
        writer.send(np.ascontiguousarray(padded(first)))
        for img in frames:
            writer.send(np.ascontiguousarray(padded(img)))
        writer.close()
