"""Shaded meshes drawn into matplotlib axes: triangles for vertex clouds, Lambert shading, painter's order.

    faces, openings = triangulate_surface(neutral, poses=clip, return_openings=True)
    render_mesh(ax, clip[0], faces, "front", openings=openings)

Geometry is [V, 3] (Y up, Z towards the viewer, X to the character's left; docs/dataset_format.md).
Datasets ship vertices without topology, so `triangulate_surface` builds triangles from the
front-view projection. Meshes are drawn as 2D triangles in painter's order (far to near) with
two-sided Lambert shading from vertex (or face) normals, in one renderer call per mesh
(`ShadedMesh`): far faster than mplot3d and exact for a single open surface like a face.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import matplotlib.artist
import numpy as np
import scipy.spatial

from a2f_jax.errors import ConfigError, DataError, describe

VIEWS = ("front", "side")
DEFAULT_SKIN = np.array([0.72, 0.80, 0.90])  # light blue-grey clay
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


def check_faces(faces: np.ndarray, num_vertices: int, name: str = "faces") -> np.ndarray:
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


def shaded_triangles(vertices: np.ndarray, faces: np.ndarray, view: str, base_color: np.ndarray,
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


def view_limits(frames: Sequence[np.ndarray], view: str, margin: float = 0.04) -> tuple[tuple[float, float], tuple[float, float]]:
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
    color: Sequence[float] = tuple(DEFAULT_SKIN),
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
    faces = check_faces(faces, len(vertices))
    openings = None if openings is None else check_faces(openings, len(vertices), "openings")
    mesh = ShadedMesh(*shaded_triangles(vertices, faces, view, np.asarray(color, dtype=np.float64), smooth, openings))
    ax.add_artist(mesh)
    mesh.set_clip_path(ax.patch)
    xlim, ylim = limits if limits is not None else view_limits([vertices], view)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal", adjustable="box")
    ax.set_axis_off()
    return mesh
