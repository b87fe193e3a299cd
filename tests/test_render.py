"""Mesh rendering: triangulation of vertex clouds, Lambert shading and painter's order, drawing into axes,
on grids and the synthetic face."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from a2f_jax.data import synthetic_face
from a2f_jax.errors import ConfigError, DataError
from a2f_jax.infer import preview, render


@pytest.fixture(scope="module")
def clip():
    """12 frames of the synthetic face opening and closing its jaw."""
    face = synthetic_face.build_face()
    t = np.arange(12)
    jaw = 0.5 - 0.5 * np.cos(2 * np.pi * t / 12)  # closed at frame 0, fully open at frame 6
    gt = face.neutral[None] + jaw[:, None, None] * face.shapes[synthetic_face.SKIN_POSES.index("jawOpen")][None]
    return {"face": face, "gt": gt.astype(np.float32)}


def _grid(nx: int, ny: int, spacing: float = 1.0) -> np.ndarray:
    x, y = np.meshgrid(np.arange(nx) * spacing, np.arange(ny) * spacing)
    return np.stack([x.ravel(), y.ravel(), np.zeros(nx * ny)], axis=1)


def _signed_areas(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    p = points[:, :2][faces]
    return 0.5 * ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0]))

# ----------------------------------------------------------------------------------------------
# Triangulation
# ----------------------------------------------------------------------------------------------


def test_grid_triangulation_is_complete_and_counter_clockwise():
    pts = _grid(6, 5)
    faces = render.triangulate_surface(pts)
    assert faces.dtype == np.int32 and faces.ndim == 2 and faces.shape[1] == 3
    assert faces.min() >= 0 and faces.max() < len(pts)
    assert len(faces) == 2 * 5 * 4  # two triangles per grid cell
    areas = _signed_areas(pts, faces)
    assert (areas > 0).all()  # front-facing: counter-clockwise in XY
    np.testing.assert_allclose(areas.sum(), 5 * 4)  # the triangles tile the rectangle exactly
    assert len({tuple(sorted(f)) for f in faces.tolist()}) == len(faces)


def test_long_edges_across_a_concave_outline_are_removed():
    pts = _grid(11, 9)
    notch = (pts[:, 0] >= 3) & (pts[:, 0] <= 7) & (pts[:, 1] >= 3)  # a U shape: a 6 x 6 notch open at the top
    pts = pts[~notch]
    full = render.triangulate_surface(pts, max_edge_factor=1e9)
    faces = render.triangulate_surface(pts)
    np.testing.assert_allclose(_signed_areas(pts, full).sum(), 10 * 8)  # Delaunay covers the convex hull
    left_arm, right_arm = (pts[:, 0] <= 2) & (pts[:, 1] >= 3), (pts[:, 0] >= 8) & (pts[:, 1] >= 3)
    bridges = lambda f: left_arm[f].any(axis=1) & right_arm[f].any(axis=1)  # noqa: E731
    assert bridges(full).any() and not bridges(faces).any()
    # What is left is the U (area 44) plus at most slivers at the notch's inner corners.
    area = _signed_areas(pts, faces).sum()
    assert 10 * 8 - 6 * 6 <= area < 10 * 8 - 6 * 6 + 0.15 * 36


def test_slit_that_opens_becomes_openings():
    # Rows at y = 0, 1, 2, 2.01, 3, 4: the two middle rows are the lips of a slit from x = 2 to x = 6.
    ys = np.array([0.0, 1.0, 2.0, 2.01, 3.0, 4.0])
    x, y = np.meshgrid(np.arange(9.0), ys)
    pts = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)
    in_slit = (pts[:, 0] > 1.5) & (pts[:, 0] < 6.5)
    opened = pts.copy()
    opened[in_slit & (pts[:, 1] < 2.005), 1] -= 0.8  # the lower lip drops
    closed_only = render.triangulate_surface(pts)
    faces, openings = render.triangulate_surface(pts, poses=opened[None], return_openings=True)
    assert len(faces) + len(openings) == len(closed_only)
    assert len(openings) > 0
    lower, upper = np.isclose(pts[:, 1], 2.0), np.isclose(pts[:, 1], 2.01)
    for tri in openings:
        assert (lower[tri] | upper[tri]).all() and lower[tri].any() and upper[tri].any()  # spans the slit
        assert in_slit[tri].any()
    # No remaining skin triangle spans the opened part of the slit.
    spans = lower[faces].any(axis=1) & upper[faces].any(axis=1) & in_slit[faces].all(axis=1)
    assert not spans.any()


def test_synthetic_face_mouth_opens_and_cache_returns_copies(clip):
    face, gt = clip["face"], clip["gt"]
    faces, openings = render.triangulate_surface(face.neutral, poses=gt, return_openings=True)
    assert faces.min() >= 0 and faces.max() < len(face.neutral)
    assert len(faces) > 2000  # the whole skin grid, minus the mouth
    centroids = face.neutral[openings].mean(axis=1)
    assert len(openings) > 0
    np.testing.assert_allclose(centroids[:, 1], synthetic_face.MOUTH_Y, atol=0.1)  # only the mouth opens
    assert (np.abs(centroids[:, 0]) < synthetic_face.MOUTH_HALF_WIDTH).all()
    again = render.triangulate_surface(face.neutral, poses=gt)
    np.testing.assert_array_equal(again, faces)
    again[:] = 0  # the cache must hand out copies
    np.testing.assert_array_equal(render.triangulate_surface(face.neutral, poses=gt), faces)


def test_dense_meshes_are_thinned_to_their_front_surface():
    front = _grid(60, 50, spacing=0.1)
    behind = front[(front[:, 0] > 2) & (front[:, 0] < 4)] + [0.0, 0.0, -1.0]  # a hidden layer (mouth bag)
    pts = np.concatenate([behind, front])  # hidden vertices first: the choice must not depend on order
    keep = render.frontmost_subset(pts, 1000)
    assert 500 < len(keep) <= 1000 and (np.diff(keep) > 0).all()
    assert (pts[keep, 2] == 0).all()  # only the front layer
    np.testing.assert_array_equal(render.frontmost_subset(pts, len(pts)), np.arange(len(pts)))
    frames = np.repeat(pts[None], 3, axis=0)
    faces, openings = preview._auto_faces(frames, None, None, max_vertices=1000)
    assert len(openings) == 0 and faces.max() < len(pts)
    assert np.isin(faces, keep).all()  # indices of the full mesh, on the kept vertices
    np.testing.assert_allclose(_signed_areas(pts, faces).sum(), 5.9 * 4.9, rtol=0.05)  # still covers the sheet


def test_triangulation_bad_input():
    with pytest.raises(DataError, match="neutral"):
        render.triangulate_surface(np.zeros((10, 2)))
    with pytest.raises(DataError, match="collinear"):
        render.triangulate_surface(np.stack([np.arange(5.0), np.arange(5.0), np.zeros(5)], axis=1))
    with pytest.raises(DataError, match="poses"):
        render.triangulate_surface(_grid(3, 3), poses=np.zeros((2, 8, 3)))


# ----------------------------------------------------------------------------------------------
# Shading and drawing order
# ----------------------------------------------------------------------------------------------


def test_lambert_shading_and_painters_order():
    light = render._LIGHT_CAM / np.linalg.norm(render._LIGHT_CAM)
    base = np.array([0.8, 0.6, 0.4])
    # A triangle facing +Z (the front camera) and one facing the light, drawn with flat shading.
    u = np.cross(light, [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    w = np.cross(light, u)
    tri_light = np.stack([np.zeros(3), u, w]) + [0.0, 0.0, -5.0]  # behind the other one
    if np.cross(u, w) @ light < 0:
        tri_light = tri_light[[0, 2, 1]]
    tri_front = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    verts = np.concatenate([tri_front, tri_light])
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    tris, rgba = render.shaded_triangles(verts, faces, "front", base, smooth=False)
    assert tris.shape == (2, 3, 2) and rgba.shape == (2, 3, 4)
    # Far first: the triangle at z = -5 is drawn before the one at z = 1.
    np.testing.assert_allclose(tris[0], tri_light[:, :2])
    np.testing.assert_allclose(tris[1], tri_front[:, :2])
    np.testing.assert_allclose(rgba[0, :, :3], np.broadcast_to(base, (3, 3)), atol=1e-12)  # n.l = 1
    expected = base * (render.AMBIENT + (1 - render.AMBIENT) * light[2])
    np.testing.assert_allclose(rgba[1, :, :3], np.broadcast_to(expected, (3, 3)), atol=1e-12)
    # Side view looks from -X: depth is -x, so of two triangles the one at smaller x comes last.
    left = tri_front + [-3.0, 0.0, 0.0]
    tris, _ = render.shaded_triangles(np.concatenate([left, tri_front]), faces, "side", base)
    np.testing.assert_allclose(tris[1], left[:, [2, 1]])


def test_render_mesh_draws_the_face_with_shading(clip):
    face = clip["face"]
    faces = render.triangulate_surface(face.neutral)
    fig, ax = plt.subplots(figsize=(3, 4), dpi=60)
    try:
        artist = render.render_mesh(ax, face.neutral, faces, "front")
        fig.canvas.draw()
        img = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float)
    finally:
        plt.close(fig)
    assert isinstance(artist, render.ShadedMesh)
    covered = (img < 250).any(axis=-1)
    assert 0.25 < covered.mean() < 0.9  # the face fills its axes, with background around it
    assert img[covered].std() > 5  # shaded, not a flat silhouette
    with pytest.raises(DataError, match="faces"):
        render.render_mesh(ax, face.neutral, faces + len(face.neutral), "front")
    with pytest.raises(ConfigError, match="view"):
        render.render_mesh(ax, face.neutral, faces, "top")
