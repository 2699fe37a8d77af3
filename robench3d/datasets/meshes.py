"""Triangle-mesh utilities shared by the procedural generator and the mesh-file loaders (pure numpy).

A mesh is a pair ``(vertices, faces)``: vertices float64 (V, 3), faces int64 (F, 3) indexing into the vertices.
Our frame is y-up. Besides area-weighted surface sampling, normalisation and farthest-point sampling, this module
holds the few parametric primitives (boxes, surfaces of revolution, tori) the generator composes objects from.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

__all__ = [
    "Mesh",
    "box",
    "farthest_point_sample",
    "merge_meshes",
    "normalize_unit_sphere",
    "revolve",
    "rod",
    "rotate",
    "rotate_about_up",
    "sample_surface",
    "scale",
    "smooth_profile",
    "torus",
    "translate",
    "triangle_areas",
    "vessel",
]

logger = logging.getLogger(__name__)

#: (vertices float64 (V, 3), faces int64 (F, 3)).
Mesh = tuple[np.ndarray, np.ndarray]

_AXES = {"x": 0, "y": 1, "z": 2}


def triangle_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area of every triangle.

    Shape: vertices (V, 3), faces (F, 3) int -> (F,) float64.
    """
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces, dtype=np.int64)]
    return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sample ``n`` points uniformly over the surface (faces chosen by area, uniform barycentric inside).

    Degenerate (zero-area) faces get no samples: real meshes often carry them (collapsed edges, cone tips) and
    they must not bias the distribution or produce duplicate points.

    Args:
        vertices: (V, 3) vertex coordinates.
        faces: (F, 3) vertex indices.
        n: number of points to draw.
        rng: source of randomness (the draw is fully determined by it).

    Returns:
        (n, 3) float32 points.

    Raises:
        ValueError: the mesh has no faces, non-finite vertices, or zero total area.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(faces) == 0:
        raise ValueError("cannot sample the surface of a mesh with no faces")
    if not np.isfinite(vertices).all():
        raise ValueError("cannot sample a mesh whose vertices contain NaN or Inf")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ValueError(f"face indices must lie in [0, {len(vertices)}), got [{faces.min()}, {faces.max()}]")
    areas = triangle_areas(vertices, faces)
    total = float(areas.sum())
    if not np.isfinite(total) or total <= 0.0:
        raise ValueError(f"cannot sample a mesh with total surface area {total}; every face is degenerate")
    # A relative threshold drops faces that are zero up to rounding, whatever the mesh's units.
    keep = areas > total * 1e-12
    faces, areas = faces[keep], areas[keep]
    # Inverse-CDF face choice: cheaper than rng.choice(p=...), which renormalises and validates p on every call.
    cdf = np.cumsum(areas)
    idx = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    idx = np.minimum(idx, len(faces) - 1)
    a, b, c = (vertices[faces[idx, k]] for k in range(3))
    # sqrt trick: (1 - s, s(1 - r2), s r2) with s = sqrt(r1) is uniform over the triangle.
    r = rng.random((n, 2))
    s = np.sqrt(r[:, :1])
    pts = (1.0 - s) * a + s * (1.0 - r[:, 1:]) * b + s * r[:, 1:] * c
    return pts.astype(np.float32)


def normalize_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centre each cloud on its centroid and scale it so its farthest point has norm 1 (the unit-sphere protocol).

    Shape: (N, 3) or (B, N, 3) -> same shape and dtype (floating).

    Raises:
        ValueError: a cloud has zero extent (all points coincide) or non-finite coordinates.
    """
    pts = np.asarray(points)
    if pts.ndim not in (2, 3) or pts.shape[-1] != 3:
        raise ValueError(f"expected points of shape (N, 3) or (B, N, 3), got {pts.shape}")
    dtype = pts.dtype if np.issubdtype(pts.dtype, np.floating) else np.float64
    # Work in float64 so the centroid of float32 clouds with large offsets is still accurate.
    work = pts.astype(np.float64)
    work = work - work.mean(axis=-2, keepdims=True)
    radius = np.linalg.norm(work, axis=-1).max(axis=-1, keepdims=True)[..., None]
    if not np.isfinite(radius).all():
        raise ValueError("cannot normalise a cloud containing NaN or Inf")
    if (radius <= 1e-12).any():
        raise ValueError("cannot normalise a cloud of zero extent (all points coincide)")
    return (work / radius).astype(dtype)


def farthest_point_sample(points: np.ndarray, n: int, start_index: int = 0) -> np.ndarray:
    """Deterministic farthest-point sampling.

    Args:
        points: (N, 3) cloud.
        n: number of indices to select, ``1 <= n <= N``.
        start_index: the first selected point.

    Returns:
        (n,) int64 indices, unique as long as the cloud has at least ``n`` distinct points.
    """
    pts = np.asarray(points, dtype=np.float64)
    if not 1 <= n <= len(pts):
        raise ValueError(f"cannot select {n} of {len(pts)} points")
    chosen = np.empty(n, dtype=np.int64)
    chosen[0] = start_index
    # Squared distance from every point to the selected set, updated with the newest pick only: O(N n).
    dist = np.sum((pts - pts[start_index]) ** 2, axis=1)
    dist[start_index] = -1.0
    for i in range(1, n):
        nxt = int(np.argmax(dist))
        chosen[i] = nxt
        np.minimum(dist, np.sum((pts - pts[nxt]) ** 2, axis=1), out=dist)
        # Mark picks explicitly so duplicated coordinates cannot be picked twice before distinct ones run out.
        dist[chosen[: i + 1]] = -1.0
    return chosen


def _rotation_matrix(axis: str, angle: float) -> np.ndarray:
    """Right-handed rotation matrix about a coordinate axis."""
    c, s = np.cos(angle), np.sin(angle)
    i = _AXES[axis]
    j, k = (i + 1) % 3, (i + 2) % 3
    mat = np.eye(3)
    mat[j, j], mat[j, k], mat[k, j], mat[k, k] = c, -s, s, c
    return mat


def rotate(points: np.ndarray, axis: str, angle: float) -> np.ndarray:
    """Rotate points (..., 3) by ``angle`` radians about coordinate ``axis`` ('x', 'y' or 'z')."""
    pts = np.asarray(points)
    return (pts @ _rotation_matrix(axis, angle).T).astype(pts.dtype, copy=False)


def rotate_about_up(points: np.ndarray, angle: float) -> np.ndarray:
    """Rotate points (..., 3) about the up (y) axis by ``angle`` radians."""
    return rotate(points, "y", angle)


def translate(mesh: Mesh, offset: Sequence[float]) -> Mesh:
    """The mesh moved by ``offset`` (3,)."""
    return mesh[0] + np.asarray(offset, dtype=np.float64), mesh[1]


def scale(mesh: Mesh, factor: float | Sequence[float]) -> Mesh:
    """The mesh scaled about the origin by a scalar or per-axis (3,) ``factor``."""
    return mesh[0] * np.asarray(factor, dtype=np.float64), mesh[1]


def merge_meshes(meshes: Sequence[Mesh]) -> Mesh:
    """Concatenate meshes into one (faces re-indexed; shared vertices are not welded)."""
    if not meshes:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    offsets = np.cumsum([0] + [len(v) for v, _ in meshes[:-1]])
    vertices = np.concatenate([np.asarray(v, dtype=np.float64) for v, _ in meshes])
    faces = np.concatenate([np.asarray(f, dtype=np.int64) + o for (_, f), o in zip(meshes, offsets, strict=True)])
    return vertices, faces


def box(size: Sequence[float], center: Sequence[float] = (0.0, 0.0, 0.0)) -> Mesh:
    """An axis-aligned box with edge lengths ``size`` (3,) centred at ``center`` (3,); 8 vertices, 12 faces."""
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    vertices = corners * np.asarray(size, dtype=np.float64) + np.asarray(center, dtype=np.float64)
    # Corner index = 4 ix + 2 iy + iz; two triangles per side.
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))], dtype=np.int64)
    return vertices, faces


def _grid_faces(rows: int, cols: int, wrap: bool) -> np.ndarray:
    """Triangles of a (rows x cols) vertex grid, optionally closing the columns into a ring."""
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols if wrap else cols - 1), indexing="ij")
    r, c = r.ravel(), c.ravel()
    c1 = (c + 1) % cols
    a, b, d, e = r * cols + c, r * cols + c1, (r + 1) * cols + c, (r + 1) * cols + c1
    return np.concatenate([np.stack([a, b, e], 1), np.stack([a, e, d], 1)]).astype(np.int64)


def revolve(radii: Sequence[float], heights: Sequence[float], segments: int = 32) -> Mesh:
    """Surface of revolution about the y axis of the profile polyline ``(radii[i], heights[i])``.

    A profile point with radius 0 closes the surface there (its ring collapses to a point; the resulting
    zero-area triangles are skipped by :func:`sample_surface`). A profile that goes up the outside and back
    down the inside gives a walled, open vessel; ``segments=4`` gives a square pyramid or frustum.

    Shape: radii, heights (K,) -> mesh with K * segments vertices.
    """
    r = np.asarray(radii, dtype=np.float64)
    y = np.asarray(heights, dtype=np.float64)
    theta = np.linspace(0.0, 2.0 * np.pi, segments, endpoint=False)
    vertices = np.stack(
        [
            r[:, None] * np.cos(theta)[None],
            np.broadcast_to(y[:, None], (len(r), segments)),
            r[:, None] * np.sin(theta)[None],
        ],
        axis=-1,
    ).reshape(-1, 3)
    return vertices, _grid_faces(len(r), segments, wrap=True)


def torus(
    major: float,
    minor: float,
    major_segments: int = 24,
    minor_segments: int = 8,
    arc: tuple[float, float] = (0.0, 2.0 * np.pi),
) -> Mesh:
    """A torus (or a tube bent along the arc ``arc`` of its centre circle) lying in the x-y plane.

    An arc of less than a full turn is left open at its ends, which is what a mug handle needs.
    """
    full = np.isclose(arc[1] - arc[0], 2.0 * np.pi)
    u = np.linspace(arc[0], arc[1], major_segments, endpoint=not full)
    v = np.linspace(0.0, 2.0 * np.pi, minor_segments, endpoint=False)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    ring = major + minor * np.cos(vv)
    vertices = np.stack([ring * np.cos(uu), ring * np.sin(uu), minor * np.sin(vv)], axis=-1).reshape(-1, 3)
    faces = _grid_faces(major_segments, minor_segments, wrap=True)
    if full:
        # Close the seam between the last and first ring of the tube.
        last = np.arange(minor_segments)
        seam = np.stack(
            [
                (major_segments - 1) * minor_segments + last,
                (major_segments - 1) * minor_segments + (last + 1) % minor_segments,
                (last + 1) % minor_segments,
                last,
            ],
            1,
        )
        faces = np.concatenate([faces, seam[:, [0, 1, 2]], seam[:, [0, 2, 3]]])
    return vertices, faces


def rod(p0: np.ndarray | list[float], p1: np.ndarray | list[float], radius: float, segments: int = 8) -> Mesh:
    """A closed cylinder of ``radius`` from point ``p0`` to ``p1`` (legs, poles, rungs, slats)."""
    p0, p1 = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
    axis = p1 - p0
    length = float(np.linalg.norm(axis))
    if length <= 0.0:
        raise ValueError("a rod needs two distinct end points")
    v, f = revolve([0.0, radius, radius, 0.0], [0.0, 0.0, length, length], segments)
    # Orthonormal frame (u, d, u x d) with d along the rod: (x, y, z) -> x u + y d + z (u x d) maps the
    # y-aligned cylinder onto p0 -> p1; the helper axis only has to be far from parallel to d.
    d = axis / length
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    u = np.cross(d, helper)
    u /= np.linalg.norm(u)
    return v @ np.stack([u, d, np.cross(u, d)]) + p0, f


def smooth_profile(ys: list[float], rs: list[float], steps: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """A smooth profile through control points (cosine easing between neighbours, ``steps`` points per span).

    Returns:
        (heights, radii), each ((K - 1) * steps + 1,) for K control points.
    """
    t = (1.0 - np.cos(np.linspace(0.0, np.pi, steps, endpoint=False))) / 2.0
    y = np.concatenate([y0 + (y1 - y0) * t for y0, y1 in zip(ys[:-1], ys[1:], strict=True)] + [[ys[-1]]])
    r = np.concatenate([r0 + (r1 - r0) * t for r0, r1 in zip(rs[:-1], rs[1:], strict=True)] + [[rs[-1]]])
    return y, r


def vessel(heights: np.ndarray, radii: np.ndarray, wall: float, segments: int = 28) -> Mesh:
    """An open-topped vessel with a wall: up the outer profile, over the lip, down the inside, across the floor.

    Args:
        heights: (K,) increasing outer-profile heights, starting at 0 (the floor).
        radii: (K,) outer radius at each height.
        wall: wall and floor thickness (the inner surface is ``wall`` inside the outer one).
        segments: points per ring.
    """
    inner = heights > wall
    ys = np.concatenate([[0.0], heights, heights[inner][::-1], [wall, wall]])
    rs = np.concatenate([[0.0], radii, np.maximum(radii[inner][::-1] - wall, 0.0), [max(radii[0] - wall, 0.0), 0.0]])
    return revolve(rs, ys, segments)
