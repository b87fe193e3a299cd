"""Headless previews: shaded face meshes (prediction next to ground truth) with lip distance and audio.

    render_comparison(pred, gt, audio, 16000, 30.0, lip_dist_list, "preview.png", frame=42)
    render_video(pred, gt, audio, 16000, 30.0, lip_dist_list, "preview.mp4", max_frames=150)

Geometry is [T, V, 3] (Y up, Z towards the viewer, X to the character's left; spec_data_preproc
§1.3). Datasets ship vertices without topology, so `triangulate_surface` builds triangles from the
front-view projection. Meshes are drawn as 2D polygons in painter's order (far to near) with Lambert
shading from face normals: far faster than mplot3d and exact for a single open surface like a face.
Frame i sits at time (i + 0.5) / fps, as in the audio windows of training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import tempfile
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless; must precede pyplot

import matplotlib.artist  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.spatial  # noqa: E402

from a2f_jax.errors import ConfigError, DataError, describe  # noqa: E402
from a2f_jax.infer.metrics import lip_distance  # noqa: E402
from a2f_jax.io_utils import atomic_path  # noqa: E402

VIEWS = ("front", "side")
PRED_COLOR = "tab:orange"
GT_COLOR = "tab:blue"
# Light clay tints whose hue matches the curve colour of the same source.
PRED_SKIN = np.array([0.93, 0.78, 0.62])
GT_SKIN = np.array([0.72, 0.80, 0.90])
INTERIOR = np.array([0.32, 0.12, 0.12])  # mouth interior, drawn behind the skin
AMBIENT = 0.22

# Screen axes and depth per view: (index of screen-x, sign), (index of screen-y, sign), (depth index, sign),
# with depth growing towards the camera. The side view looks from the character's right (-X), nose to the right.
_VIEW_AXES = {
    "front": ((0, 1.0), (1, 1.0), (2, 1.0)),
    "side": ((2, 1.0), (1, 1.0), (0, -1.0)),
}
# Light direction in camera space (x right, y up, z towards the viewer): upper left, in front.
_LIGHT_CAM = np.array([-0.45, 0.5, 0.75])

MAX_AUTO_VERTICES = 10000  # larger meshes are thinned to their frontmost vertices for automatic triangles (speed)
_TRI_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
_TRI_CACHE_SIZE = 8


# ----------------------------------------------------------------------------------------------
# Triangulation and shading
# ----------------------------------------------------------------------------------------------


def _edge_lengths(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[..., F, 3] lengths of the edges (a-b, b-c, c-a) of each triangle; points [..., V, 3]."""
    a, b, c = points[..., faces[:, 0], :], points[..., faces[:, 1], :], points[..., faces[:, 2], :]
    return np.stack([np.linalg.norm(a - b, axis=-1), np.linalg.norm(b - c, axis=-1), np.linalg.norm(c - a, axis=-1)], axis=-1)


def triangulate_surface(
    neutral: np.ndarray,
    poses: np.ndarray | None = None,
    max_edge_factor: float = 3.0,
    max_stretch: float = 6.0,
    return_openings: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Triangles [F, 3] int32 for a vertex cloud [V, 3] without topology, counter-clockwise seen from the front.

    Delaunay triangulation of the XY projection, minus triangles with a 3D edge longer than
    `max_edge_factor` x the median edge (they bridge concave outlines). `poses` [P, V, 3] are other
    shapes of the same vertices (clip frames, the lip-open pose): a triangle with an edge whose longest
    length over neutral and poses exceeds `max_stretch` x its shortest bridges a slit that opens (the
    mouth) rather than skin, and is moved to the openings, returned as the second item
    [G, 3] with `return_openings` (previews fill them dark: the mouth interior). Results are cached on the
    array contents.
    """
    neutral = np.asarray(neutral, dtype=np.float64)
    if neutral.ndim != 2 or neutral.shape[1] != 3 or len(neutral) < 3:
        raise DataError(describe("neutral", None, "vertices [V>=3, 3]", f"shape {neutral.shape}"))
    if not np.isfinite(neutral).all():
        raise DataError(describe("neutral", None, "finite values", "NaN or inf"))
    if poses is not None:
        poses = np.asarray(poses, dtype=np.float64)
        if poses.ndim == 2:
            poses = poses[None]
        if poses.ndim != 3 or poses.shape[1:] != neutral.shape:
            raise DataError(describe("poses", None, f"[P, {len(neutral)}, 3]", f"shape {poses.shape}"))
    digest = hashlib.sha1(neutral.tobytes())
    if poses is not None:
        digest.update(poses.tobytes())
    key = (neutral.shape, digest.hexdigest(), float(max_edge_factor), float(max_stretch))
    if key not in _TRI_CACHE:
        if len(_TRI_CACHE) >= _TRI_CACHE_SIZE:
            _TRI_CACHE.pop(next(iter(_TRI_CACHE)))
        _TRI_CACHE[key] = _triangulate(neutral, poses, max_edge_factor, max_stretch)
    faces, openings = (f.copy() for f in _TRI_CACHE[key])
    return (faces, openings) if return_openings else faces


def _triangulate(neutral: np.ndarray, poses: np.ndarray | None, max_edge_factor: float, max_stretch: float) -> tuple[np.ndarray, np.ndarray]:
    try:
        faces = scipy.spatial.Delaunay(neutral[:, :2]).simplices.astype(np.int64)
    except scipy.spatial.QhullError as e:
        raise DataError(describe("neutral", None, "vertices spanning an area in X/Y", "a degenerate (collinear) cloud")) from e
    p = neutral[:, :2][faces]  # [F, 3, 2]
    area2 = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0])
    faces[area2 < 0] = faces[area2 < 0][:, ::-1]  # counter-clockwise in XY: normals face +Z (the viewer)
    lengths = _edge_lengths(neutral, faces)  # [F, 3]
    keep = lengths.max(axis=1) <= max_edge_factor * np.median(lengths)
    opening = np.zeros(len(faces), dtype=bool)
    if poses is not None and len(poses):
        shapes = _edge_lengths(poses, faces)  # [P, F, 3]
        longest = np.maximum(shapes.max(axis=0), lengths)
        shortest = np.minimum(shapes.min(axis=0), lengths)
        opening = (longest > max_stretch * np.maximum(shortest, 1e-9)).any(axis=1) & keep
    return faces[keep & ~opening].astype(np.int32), faces[opening].astype(np.int32)


def frontmost_subset(points: np.ndarray, max_vertices: int = MAX_AUTO_VERTICES) -> np.ndarray:
    """Sorted indices (int64) of at most `max_vertices` points [V, 3]: per cell of an XY grid, the point
    nearest the front camera (largest Z). All indices when V <= max_vertices.

    Thins dense scans for display and drops what hides behind the front surface (mouth bag, eyelid
    folds), which a front-view triangulation could not place anyway.
    """
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n <= max_vertices:
        return np.arange(n, dtype=np.int64)
    xy = points[:, :2] - points[:, :2].min(axis=0)
    extent = np.maximum(xy.max(axis=0), 1e-9)
    cell = float(np.sqrt(extent[0] * extent[1] / max_vertices))
    while True:
        ij = np.floor(xy / cell).astype(np.int64)
        key = ij[:, 0] * (int(extent[1] / cell) + 2) + ij[:, 1]
        order = np.lexsort((-points[:, 2], key))  # by cell, frontmost first
        first = np.ones(n, dtype=bool)
        first[1:] = key[order][1:] != key[order][:-1]
        chosen = np.sort(order[first])
        if len(chosen) <= max_vertices:
            return chosen
        cell *= 1.1


def _check_faces(faces: np.ndarray, num_vertices: int, name: str = "faces") -> np.ndarray:
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise DataError(describe(name, None, "integer triangles [F, 3]", f"{faces.dtype} shape {faces.shape}"))
    if len(faces) and (faces.min() < 0 or faces.max() >= num_vertices):
        raise DataError(describe(name, None, f"indices in [0, {num_vertices})", f"range [{faces.min()}, {faces.max()}]"))
    return faces


def _camera(view: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows: screen-x, screen-y, depth towards camera) as a [3, 3] world->camera matrix, light in world."""
    if view not in _VIEW_AXES:
        raise ConfigError(describe("view", None, f"one of {VIEWS}", repr(view)))
    rot = np.zeros((3, 3))
    for row, (axis, sign) in enumerate(_VIEW_AXES[view]):
        rot[row, axis] = sign
    light = rot.T @ (_LIGHT_CAM / np.linalg.norm(_LIGHT_CAM))
    return rot, light


def _shaded_triangles(vertices: np.ndarray, faces: np.ndarray, view: str, base_color: np.ndarray,
                      smooth: bool = True, openings: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Screen triangles [F (+ G), 3, 2] sorted far to near, and RGBA colours per triangle corner [F (+ G), 3, 4].

    Lambert shading, two-sided (a face mask is an open shell, its back is lit like its front); with
    `smooth`, from area-weighted vertex normals (Gouraud), else from face normals (flat). `openings`
    [G, 3] come first, flat INTERIOR colour, so the skin covers them wherever it is in front.
    """
    rot, light = _camera(view)
    cam = vertices @ rot.T  # [V, 3]
    tri = vertices[faces]  # [F, 3, 3]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 x area
    if smooth:
        flat = faces.reshape(-1)  # bincount sums per vertex far faster than np.add.at
        vnormals = np.stack([np.bincount(flat, np.repeat(normals[:, d], 3), minlength=len(vertices)) for d in range(3)], axis=1)
        vnormals /= np.maximum(np.linalg.norm(vnormals, axis=1, keepdims=True), 1e-12)
        corner = (AMBIENT + (1.0 - AMBIENT) * np.abs(vnormals @ light))[faces]  # [F, 3]
    else:
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        corner = np.repeat((AMBIENT + (1.0 - AMBIENT) * np.abs(normals @ light))[:, None], 3, axis=1)
    order = np.argsort(cam[faces, 2].mean(axis=1), kind="stable")  # far first
    rgba = np.empty((len(faces), 3, 4))
    rgba[..., :3] = np.clip(base_color * corner[order, :, None], 0.0, 1.0)
    rgba[..., 3] = 1.0
    tris = cam[:, :2][faces[order]]
    if openings is not None and len(openings):
        inner = np.empty((len(openings), 3, 4))
        inner[..., :3] = INTERIOR
        inner[..., 3] = 1.0
        tris, rgba = np.concatenate([cam[:, :2][openings], tris]), np.concatenate([inner, rgba])
    return tris, rgba


class ShadedMesh(matplotlib.artist.Artist):
    """Triangles drawn in the given order in one renderer call (`draw_gouraud_triangles`).

    Unlike a PolyCollection this builds no Path per triangle, so updating and drawing a few thousand
    triangles per frame stays in the millisecond range.
    """

    def __init__(self, triangles: np.ndarray, colors: np.ndarray) -> None:
        super().__init__()
        self.set_data(triangles, colors)

    def set_data(self, triangles: np.ndarray, colors: np.ndarray) -> None:
        """triangles [F, 3, 2] in data coordinates, colors [F, 3, 4] RGBA per corner."""
        self._triangles = np.ascontiguousarray(triangles, dtype=np.float64)
        self._colors = np.ascontiguousarray(colors, dtype=np.float64)
        self.stale = True

    def get_datalim(self) -> tuple[np.ndarray, np.ndarray]:
        pts = self._triangles.reshape(-1, 2)
        return pts.min(axis=0), pts.max(axis=0)

    @matplotlib.artist.allow_rasterization
    def draw(self, renderer: Any) -> None:
        if not self.get_visible() or not len(self._triangles):
            return
        renderer.open_group("ShadedMesh", gid=self.get_gid())
        gc = renderer.new_gc()
        self._set_gc_clip(gc)
        renderer.draw_gouraud_triangles(gc, self._triangles, self._colors, self.get_transform().frozen())
        gc.restore()
        renderer.close_group("ShadedMesh")
        self.stale = False


def _view_limits(frames: Sequence[np.ndarray], view: str, margin: float = 0.04) -> tuple[tuple[float, float], tuple[float, float]]:
    """Screen bounds ((x0, x1), (y0, y1)) of all frames [..., V, 3] in `view`, with a margin."""
    rot, _ = _camera(view)
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    for f in frames:
        pts = np.asarray(f).reshape(-1, 3)
        lo, hi = np.minimum(lo, pts.min(axis=0)), np.maximum(hi, pts.max(axis=0))
    corners = np.stack([lo, hi]) @ rot.T  # rot is a signed axis permutation: corners map to corners
    slo, shi = corners.min(axis=0)[:2], corners.max(axis=0)[:2]
    pad = margin * float(max(shi - slo))
    return (slo[0] - pad, shi[0] + pad), (slo[1] - pad, shi[1] + pad)


def render_mesh(
    ax: Any,
    vertices: np.ndarray,
    faces: np.ndarray,
    view: str = "front",
    color: Sequence[float] = tuple(GT_SKIN),
    limits: tuple[tuple[float, float], tuple[float, float]] | None = None,
    smooth: bool = True,
    openings: np.ndarray | None = None,
) -> ShadedMesh:
    """Draw one shaded mesh [V, 3] into a matplotlib Axes seen from `view`; returns the artist.

    `faces` [F, 3] as from `triangulate_surface`; `openings` [G, 3] (its second result) are filled
    dark behind the skin. The axes get an equal aspect, no frame, and the mesh bounds (or `limits`:
    ((x0, x1), (y0, y1)) in screen units) as limits.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise DataError(describe("vertices", None, "[V, 3]", f"shape {vertices.shape}"))
    faces = _check_faces(faces, len(vertices))
    openings = None if openings is None else _check_faces(openings, len(vertices), "openings")
    mesh = ShadedMesh(*_shaded_triangles(vertices, faces, view, np.asarray(color, dtype=np.float64), smooth, openings))
    ax.add_artist(mesh)
    mesh.set_clip_path(ax.patch)
    xlim, ylim = limits if limits is not None else _view_limits([vertices], view)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal", adjustable="box")
    ax.set_axis_off()
    return mesh


# ----------------------------------------------------------------------------------------------
# Comparison figure
# ----------------------------------------------------------------------------------------------


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
        limits = {v: _view_limits([s[1] for s in sources], v) for v in VIEWS}
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
            p.mesh.set_data(*_shaded_triangles(p.frames[frame], self.faces, p.view, p.color, openings=self.openings))
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
    faces = _check_faces(faces, pred.shape[1])
    openings = None if openings is None else _check_faces(openings, pred.shape[1], "openings")
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
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
        return True
    except (ImportError, RuntimeError):
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
    import imageio.v3 as iio

    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=1000.0 / fps, loop=0)


def _write_mp4(path: pathlib.Path, frames: Any, fps: float, audio: np.ndarray | None, sr: float) -> None:
    import imageio_ffmpeg
    import soundfile

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
