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
from robench3d.datasets.formats import read_bytes, sniff
from robench3d.datasets.parsing import as_index, float_rows, is_float, is_int, plain_text
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
        raise DataError(f"{source} has no vertices (an empty or failed export); re-export the mesh or remove the file")
    if not np.isfinite(vertices).all():
        row = int(np.argmax(~np.isfinite(vertices).all(axis=1)))
        raise DataError(f"{source}: vertex {row} has a NaN or Inf coordinate; fix or re-export the file")
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        bad = int(np.argmax(((faces < 0) | (faces >= len(vertices))).any(axis=1)))
        raise DataError(f"{source}: face {bad} uses vertex index {faces[bad].tolist()} outside [0, {len(vertices)}); "
                        f"the file is corrupt: re-export the mesh")
    return vertices, faces


def sample_mesh(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator, *,
                source: Path) -> np.ndarray:
    """``n`` area-weighted surface points (float32 (n, 3)); zero-area faces get none.

    Raises:
        DataError: the mesh has no faces or only degenerate (zero-area) faces.
    """
    if len(faces) == 0:
        raise DataError(f"{source} is a mesh with no faces, so there is no surface to sample; re-export it with its "
                        f"faces or remove the file")
    vertices, faces = check_mesh(vertices, faces, source=source)
    try:
        return meshes.sample_surface(vertices, faces, n, rng)
    except ValueError as exc:  # the mesh is valid (checked above), so its area is zero
        raise DataError(f"{source}: every face of the mesh has zero area, so there is no surface to sample; "
                        f"re-export the mesh or remove the file") from exc


def _text(path: Path) -> str:
    raw = read_bytes(path)
    if b"\0" in raw[:4096]:
        raise DataError(f"{path} is binary, not a text {path.suffix} file; it is corrupt or misnamed: re-export it "
                        f"or give it its real extension")
    return raw.decode("utf-8-sig", errors="replace")  # numbers only: stray bytes in comments are harmless


_REEXPORT = "fix the line or re-export the mesh"


def read_off(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an OFF mesh, including ModelNet's glued header (``OFF3514 3546 0`` on the first line).

    Comments (``#``) and blank lines are skipped, polygons are fan-triangulated and trailing per-vertex or per-face
    values (colours, normals of COFF/NOFF) are ignored. Errors name the line of the file.
    """
    numbered = [(n, s) for n, line in enumerate(_text(path).splitlines(), 1) if (s := line.split("#", 1)[0].strip())]
    nums, lines = [n for n, _ in numbered], [s for _, s in numbered]
    match = _OFF_KEYWORD.match(lines[0]) if lines else None
    if match is None:
        raise DataError(f"{path} does not start with the OFF keyword; it is not an OFF file"
                        + (f" (it is {_describe(path)})" if lines else " (it is empty)")
                        + ": replace it with the original mesh or give it its real extension")
    # The counts follow the keyword on the same line in ModelNet's glued header, else on the next line.
    glued = bool(match.group(2).strip())
    counts, start = (match.group(2).split(), 1) if glued else ((lines[1].split() if len(lines) > 1 else []), 2)
    where = f"line {nums[0] if glued else (nums[1] if len(nums) > 1 else nums[0] + 1)}"
    if len(counts) < 2 or not (is_int(counts[0]) and is_int(counts[1])) or int(counts[0]) < 0 or int(counts[1]) < 0:
        raise DataError(f"{path}, {where}: malformed OFF counts line {' '.join(counts)!r}; expected 'nv nf ne' "
                        f"(whole numbers of vertices, faces and edges): check the header")
    nv, nf = int(counts[0]), int(counts[1])
    if len(lines) < start + nv + nf:
        raise DataError(f"{path} is truncated: the header promises {nv} vertices and {nf} faces but the file has "
                        f"only {len(lines) - start} data lines; download it again or re-export it")
    vnums, fnums = nums[start : start + nv], nums[start + nv : start + nv + nf]
    verts = float_rows(lines[start : start + nv], vnums, 3, source=path, what="vertex {i}", exact=False, fix=_REEXPORT)
    bad = ~np.isfinite(verts).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{path}, line {vnums[i]}: vertex {i} has a NaN or Inf coordinate; {_REEXPORT}")
    faces = _off_faces(lines[start + nv : start + nv + nf], fnums, nv, path)
    return check_mesh(verts, faces, source=path)


def _off_faces(flines: list[str], fnums: list[int], nv: int, path: Path) -> np.ndarray:
    rows = [ln.split() for ln in flines]
    widths = {len(r) for r in rows}
    if len(widths) == 1 and plain_text(flines):  # fast path: one polygon size, maybe with trailing colours
        try:
            table = np.array(rows, dtype=np.float64)
        except ValueError:
            table = None  # a non-number: the per-line loop below names it
        if table is not None and np.isfinite(table).all():
            k = table[:, 0]
            k0 = int(k[0]) if k[0] == round(k[0]) else 0
            if (k == k0).all() and k0 >= 3 and table.shape[1] >= 1 + k0:
                idx = table[:, 1 : 1 + k0]
                if (idx == np.round(idx)).all() and (idx >= 0).all() and (idx < nv).all():
                    return fan_triangulate(idx.astype(np.int64))
    polys: list[list[int]] = []
    for i, (tok, num) in enumerate(zip(rows, fnums, strict=True)):  # mixed polygon sizes, or to blame a line
        where = f"{path}, line {num}: face {i}"
        k = as_index(tok[0])
        if k is None or k < 3:
            raise DataError(f"{where} starts with {tok[0]!r}, not a vertex count of at least 3; a face line is "
                            f"'k i1 ... ik': {_REEXPORT}")
        if len(tok) < 1 + k:
            raise DataError(f"{where} lists {len(tok) - 1} of its {k} vertex indices; {_REEXPORT}")
        poly = [as_index(t) for t in tok[1 : 1 + k]]
        bad = next((t for t, v in zip(tok[1 : 1 + k], poly, strict=True) if v is None), None)
        if bad is not None:
            raise DataError(f"{where}: {bad!r} is not a whole-number vertex index; {_REEXPORT}")
        out = next((v for v in poly if not 0 <= v < nv), None)  # type: ignore[operator]
        if out is not None:
            raise DataError(f"{where} uses vertex {out}, but the file has {nv} vertices (0 to {nv - 1}); "
                            f"{_REEXPORT}")
        polys.append(poly)  # type: ignore[arg-type]
    return triangulate_polygons(polys)


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the vertices (``v``) and faces (``f``, 1-based or negative relative indices) of a Wavefront OBJ."""
    verts: list[list[float]] = []
    vnums: list[int] = []
    polys: list[tuple[int, list[str], list[int]]] = []
    for num, line in enumerate(_text(path).splitlines(), 1):
        tok = line.split()
        if not tok or tok[0] not in ("v", "f"):
            continue
        where = f"{path}, line {num}: {line.strip()[:60]!r}"
        if tok[0] == "v":
            if len(tok) < 4:
                raise DataError(f"{where}: a vertex needs 3 coordinates (v x y z); {_REEXPORT}")
            bad = next((t for t in tok[1:4] if not is_float(t)), None)
            if bad is not None:
                raise DataError(f"{where}: {bad!r} is not a number; {_REEXPORT}")
            verts.append([float(t) for t in tok[1:4]])
            vnums.append(num)
            continue
        # "f 1/2/3 4//6 -1": the vertex index is before the first slash; negatives count back.
        refs = [t.split("/", 1)[0] for t in tok[1:]]
        bad = next((t for t in refs if not is_int(t) or int(t) == 0), None)
        if bad is not None:
            raise DataError(f"{where}: {bad!r} is not a vertex number (1, 2, ... or -1, -2, ... counting back); "
                            f"{_REEXPORT}")
        if len(refs) < 3:
            raise DataError(f"{where}: a face needs at least 3 vertices; {_REEXPORT}")
        polys.append((num, refs, [int(t) - 1 if int(t) > 0 else len(verts) + int(t) for t in refs]))
    for num, refs, poly in polys:
        out = next((r for r, i in zip(refs, poly, strict=True) if not 0 <= i < len(verts)), None)
        if out is not None:
            raise DataError(f"{path}, line {num}: the face refers to vertex {out}, which does not exist (the file has "
                            f"{len(verts)} vertices); {_REEXPORT}")
    v = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
    bad_v = ~np.isfinite(v).all(axis=1)
    if bad_v.any():
        raise DataError(f"{path}, line {vnums[int(np.argmax(bad_v))]}: a vertex has a NaN or Inf coordinate; "
                        f"{_REEXPORT}")
    return check_mesh(v, triangulate_polygons([p for _, _, p in polys]), source=path)


def _describe(path: Path) -> str:
    return sniff(path) or "not a recognised mesh"
