"""Mesh file readers (OFF, OBJ) and the helpers every mesh reader shares (pure numpy).

A reader returns ``(vertices, faces)``: vertices float64 (V, 3), faces int64 (F, 3), polygons fan-triangulated.
Faces may be empty (a file of points only); callers that need a surface check for that. Problems raise
:class:`~robench3d.errors.DataError` naming the file: a truncated body, indices out of range, NaN coordinates.
PLY lives in :mod:`robench3d.datasets.ply`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from robench3d.datasets import meshes
from robench3d.datasets.formats import sniff
from robench3d.errors import ConfigError, DataError

__all__ = ["UP_AXES", "check_mesh", "fan_triangulate", "read_obj", "read_off", "sample_mesh", "to_y_up",
           "triangulate_polygons"]

logger = logging.getLogger(__name__)

UP_AXES = ("x", "y", "z")
_OFF_KEYWORD = re.compile(r"^([A-Za-z]*OFF)(.*)$")


def to_y_up(points: np.ndarray, up_axis: str) -> np.ndarray:
    """Rotate points (..., 3) whose up axis is ``up_axis`` into robench3d's y-up frame (proper rotations only).

    ``z`` maps (x, y, z) -> (-x, z, y), the ModelNet convention of the PointNet/PointNet++ data; ``x`` maps
    (x, y, z) -> (-y, x, z); ``y`` is the identity.
    """
    if up_axis not in UP_AXES:
        raise ConfigError(f"up_axis must be one of {', '.join(UP_AXES)}, got {up_axis!r}")
    p = np.asarray(points)
    if up_axis == "z":
        return np.stack([-p[..., 0], p[..., 2], p[..., 1]], axis=-1)
    if up_axis == "x":
        return np.stack([-p[..., 1], p[..., 0], p[..., 2]], axis=-1)
    return p


def fan_triangulate(polygons: np.ndarray) -> np.ndarray:
    """Triangles (F * (k - 2), 3) of a (F, k) array of k-gons, fanned around each polygon's first vertex."""
    k = polygons.shape[1]
    if k == 3:
        return polygons
    tris = [np.stack([polygons[:, 0], polygons[:, i], polygons[:, i + 1]], axis=1) for i in range(1, k - 1)]
    return np.concatenate(tris, axis=0)


def triangulate_polygons(polygons: Sequence[Sequence[int]]) -> np.ndarray:
    """Fan-triangulate polygons of mixed sizes (the slow path)."""
    tris = [(p[0], p[i], p[i + 1]) for p in polygons for i in range(1, len(p) - 1)]
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


def check_mesh(vertices: np.ndarray, faces: np.ndarray, *, source: Path) -> tuple[np.ndarray, np.ndarray]:
    """Validate a mesh (finite vertices, face indices in range); return float64 vertices and int64 faces."""
    vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(vertices) == 0:
        raise DataError(f"{source} has no vertices (empty file?)")
    if not np.isfinite(vertices).all():
        row = int(np.argmax(~np.isfinite(vertices).all(axis=1)))
        raise DataError(f"{source}: vertex {row} has a NaN or Inf coordinate; fix or re-export the file")
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        bad = int(np.argmax(((faces < 0) | (faces >= len(vertices))).any(axis=1)))
        raise DataError(f"{source}: face {bad} uses vertex index {faces[bad].tolist()} outside [0, {len(vertices)}); "
                        f"the file is corrupt")
    return vertices, faces


def sample_mesh(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator, *,
                source: Path) -> np.ndarray:
    """``n`` area-weighted surface points (float32 (n, 3)); zero-area faces get none.

    Raises:
        DataError: the mesh has no faces or only degenerate (zero-area) faces.
    """
    if len(faces) == 0:
        raise DataError(f"{source} is a mesh with no faces, so there is no surface to sample")
    try:
        return meshes.sample_surface(vertices, faces, n, rng)
    except ValueError as exc:
        raise DataError(f"{source}: degenerate mesh ({exc}); re-export it or remove the file") from exc


def _text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    raw = path.read_bytes()
    if b"\0" in raw[:4096]:
        raise DataError(f"{path} is binary, not a text {path.suffix} file; it is corrupt or misnamed")
    return raw.decode("utf-8-sig", errors="replace")  # numbers only: stray bytes in comments are harmless


def _numbers(lines: Sequence[str], *, source: Path, what: str) -> np.ndarray | None:
    """Parse lines of equally many numbers into (L, C) float64; ``None`` when the rows differ in length."""
    if not lines:
        return np.zeros((0, 0))
    tokens = " ".join(lines).split()
    ncols = len(lines[0].split())
    if len(tokens) != ncols * len(lines):
        return None
    try:
        return np.array(tokens, dtype=np.float64).reshape(len(lines), ncols)
    except ValueError as exc:
        raise DataError(f"{source}: non-numeric {what} ({exc}); the file is corrupt") from exc


def read_off(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an OFF mesh, including ModelNet's glued header (``OFF3514 3546 0`` on the first line).

    Comments (``#``) and blank lines are skipped, polygons are fan-triangulated and trailing per-vertex or per-face
    values (colours, normals of COFF/NOFF) are ignored.
    """
    lines = [s for line in _text(path).splitlines() if (s := line.split("#", 1)[0].strip())]
    match = _OFF_KEYWORD.match(lines[0]) if lines else None
    if match is None:
        raise DataError(f"{path} does not start with the OFF keyword; it is not an OFF file"
                        + (f" (it is {_describe(path)})" if lines else " (it is empty)"))
    # The counts follow the keyword on the same line in ModelNet's glued header, else on the next line.
    counts, start = (match.group(2).split(), 1) if match.group(2).strip() else (
        (lines[1].split() if len(lines) > 1 else []), 2)
    try:
        nv, nf = int(counts[0]), int(counts[1])
    except (IndexError, ValueError) as exc:
        raise DataError(f"{path}: malformed OFF counts line {counts!r}; expected 'nv nf ne'") from exc
    if len(lines) < start + nv + nf:
        raise DataError(f"{path} is truncated: the header promises {nv} vertices and {nf} faces but the file has "
                        f"only {len(lines) - start} data lines")
    vlines, flines = lines[start : start + nv], lines[start + nv : start + nv + nf]
    verts = _numbers(vlines, source=path, what="vertex coordinate")
    if verts is None:  # rows of mixed length: keep xyz of each
        verts = np.array([[float(t) for t in ln.split()[:3]] for ln in vlines], dtype=np.float64)
    if nv and verts.shape[1] < 3:
        raise DataError(f"{path}: vertices have {verts.shape[1]} coordinates, expected 3")
    faces = _off_faces(flines, path)
    return check_mesh(verts[:, :3], faces, source=path)


def _off_faces(flines: list[str], path: Path) -> np.ndarray:
    table = _numbers(flines, source=path, what="face index")
    if table is not None and len(table):
        k = table[:, 0]
        if (k == k[0]).all() and k[0] >= 3 and table.shape[1] >= 1 + int(k[0]):
            idx = table[:, 1 : 1 + int(k[0])]
            if (idx == np.round(idx)).all():
                return fan_triangulate(idx.astype(np.int64))
    polys: list[list[int]] = []
    for i, line in enumerate(flines):  # slow path: mixed polygon sizes or trailing colours
        tok = line.split()
        try:
            k = int(tok[0])
            poly = [int(t) for t in tok[1 : 1 + k]]
        except ValueError as exc:
            raise DataError(f"{path}: face {i} is malformed ({line[:60]!r})") from exc
        if k < 3 or len(poly) != k:
            raise DataError(f"{path}: face {i} has {len(poly)} of {k} indices; a face needs at least 3")
        polys.append(poly)
    return triangulate_polygons(polys)


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the vertices (``v``) and faces (``f``, 1-based or negative relative indices) of a Wavefront OBJ."""
    verts: list[list[float]] = []
    polys: list[list[int]] = []
    for num, line in enumerate(_text(path).splitlines(), 1):
        tok = line.split()
        if not tok:
            continue
        try:
            if tok[0] == "v":
                verts.append([float(t) for t in tok[1:4]])
                if len(verts[-1]) != 3:
                    raise ValueError("a vertex needs 3 coordinates")
            elif tok[0] == "f":
                # "f 1/2/3 4//6 -1": the vertex index is before the first slash; negatives count back.
                idx = [int(t.split("/", 1)[0]) for t in tok[1:]]
                polys.append([i - 1 if i > 0 else len(verts) + i for i in idx])
                if len(idx) < 3:
                    raise ValueError("a face needs at least 3 vertices")
        except ValueError as exc:
            raise DataError(f"{path}:{num}: malformed line {line.strip()[:60]!r} ({exc})") from exc
    return check_mesh(np.asarray(verts, dtype=np.float64), triangulate_polygons(polys), source=path)


def _describe(path: Path) -> str:
    return sniff(path) or "not a recognised mesh"
