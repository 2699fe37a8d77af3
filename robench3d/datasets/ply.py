"""A small PLY reader (numpy only): ASCII, binary little- and big-endian, any elements in any order.

Only the ``vertex`` element's ``x, y, z`` and the ``face`` element's vertex-index list are returned; every other
element (edges, materials, ...) and property (normals, colours) is parsed only as far as needed to skip it.
Binary elements whose lists all have the same length (the usual all-triangle mesh) are read in one
``np.frombuffer`` call; mixed polygon sizes fall back to a per-row loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robench3d.datasets.formats import sniff
from robench3d.datasets.meshio import check_mesh, fan_triangulate, triangulate_polygons
from robench3d.errors import DataError

__all__ = ["ply_has_faces", "read_ply"]

logger = logging.getLogger(__name__)

_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
          "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
          "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}
_ENDIAN = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": ""}


@dataclass
class _Prop:
    name: str
    dtype: str
    count_dtype: str | None = None  # set for list properties


@dataclass
class _Element:
    name: str
    count: int
    props: list[_Prop]


def _parse_header(data: bytes, path: Path) -> tuple[str, list[_Element], int]:
    """(format, elements, offset of the body)."""
    if not data.startswith(b"ply"):
        what = sniff(path)
        raise DataError(f"{path} is not a PLY file (no 'ply' magic{'; it is ' + what if what else ''})")
    end = data.find(b"end_header")
    if end < 0:
        raise DataError(f"{path}: PLY header has no 'end_header' line; the file is truncated or corrupt")
    body = data.find(b"\n", end) + 1  # the header line may end in \r\n
    fmt, elements = "", []
    for num, raw in enumerate(data[:end].decode("ascii", errors="replace").splitlines(), 1):
        tok = raw.split()
        if not tok or tok[0] in ("ply", "comment", "obj_info"):
            continue
        try:
            if tok[0] == "format":
                fmt = tok[1]
            elif tok[0] == "element":
                elements.append(_Element(tok[1], int(tok[2]), []))
            elif tok[0] == "property" and tok[1] == "list":
                elements[-1].props.append(_Prop(tok[4], _TYPES[tok[3]], _TYPES[tok[2]]))
            elif tok[0] == "property":
                elements[-1].props.append(_Prop(tok[2], _TYPES[tok[1]]))
            else:
                raise ValueError(f"unknown keyword {tok[0]!r}")
        except (IndexError, KeyError, ValueError) as exc:
            raise DataError(f"{path}: bad PLY header line {num} {raw.strip()!r} ({exc})") from exc
    if fmt not in _ENDIAN:
        raise DataError(f"{path}: unknown PLY format {fmt!r}; expected one of {', '.join(_ENDIAN)}")
    return fmt, elements, body


def _layout(el: _Element, lengths: list[int], endian: str) -> np.dtype:
    """Structured dtype of one row, with list ``i`` of the element holding ``lengths[i]`` items."""
    fields: list[tuple] = []
    lists = iter(lengths)
    for p in el.props:
        if p.count_dtype is None:
            fields.append((p.name, endian + p.dtype))
        else:
            fields.append((p.name + "#n", endian + p.count_dtype))
            fields.append((p.name, endian + p.dtype, (next(lists),)))
    return np.dtype(fields)


def _binary_element(buf: bytes, off: int, el: _Element, endian: str, path: Path) -> tuple[dict, int]:
    """Read one element from ``buf`` at ``off``: ({prop: array or list of arrays}, new offset)."""
    lists = [p for p in el.props if p.count_dtype is not None]
    lengths: list[int] = []
    pos = off
    for p in el.props:  # walk row 0 to learn each list's length; assume every row matches, then verify
        if p.count_dtype is None:
            pos += np.dtype(p.dtype).itemsize
            continue
        if pos + np.dtype(p.count_dtype).itemsize > len(buf) or el.count == 0:
            break
        n = int(np.frombuffer(buf, endian + p.count_dtype, 1, pos)[0])
        lengths.append(n)
        pos += np.dtype(p.count_dtype).itemsize + n * np.dtype(p.dtype).itemsize
    if len(lengths) == len(lists):
        dt = _layout(el, lengths, endian)
        if off + dt.itemsize * el.count <= len(buf):
            rows = np.frombuffer(buf, dt, el.count, off)
            if all((rows[p.name + "#n"] == n).all() for p, n in zip(lists, lengths, strict=True)):
                return {p.name: rows[p.name] for p in el.props}, off + dt.itemsize * el.count
        elif not lists or el.count == 0:
            _truncated(path, el)
    return _binary_rows(buf, off, el, endian, path)


def _binary_rows(buf: bytes, off: int, el: _Element, endian: str, path: Path) -> tuple[dict, int]:
    """The slow path: rows whose lists differ in length."""
    out: dict[str, list] = {p.name: [] for p in el.props}
    try:
        for _ in range(el.count):
            for p in el.props:
                if p.count_dtype is None:
                    out[p.name].append(np.frombuffer(buf, endian + p.dtype, 1, off)[0])
                    off += np.dtype(p.dtype).itemsize
                else:
                    n = int(np.frombuffer(buf, endian + p.count_dtype, 1, off)[0])
                    off += np.dtype(p.count_dtype).itemsize
                    out[p.name].append(np.frombuffer(buf, endian + p.dtype, n, off))
                    off += n * np.dtype(p.dtype).itemsize
    except ValueError:  # frombuffer past the end of the buffer
        _truncated(path, el)
    return {p.name: (out[p.name] if p.count_dtype else np.asarray(out[p.name])) for p in el.props}, off


def _ascii_element(lines: list[str], el: _Element, path: Path) -> dict:
    """Parse ``el.count`` lines of an ASCII element."""
    if len(lines) < el.count:
        _truncated(path, el)
    rows = [ln.split() for ln in lines[: el.count]]
    out: dict[str, list] = {p.name: [] for p in el.props}
    for num, tok in enumerate(rows):
        try:
            i = 0
            for p in el.props:
                if p.count_dtype is None:
                    out[p.name].append(float(tok[i]))
                    i += 1
                else:
                    n = int(tok[i])
                    out[p.name].append([int(float(t)) for t in tok[i + 1 : i + 1 + n]])
                    if len(out[p.name][-1]) != n:
                        raise IndexError("list shorter than its count")
                    i += 1 + n
        except (IndexError, ValueError) as exc:
            raise DataError(f"{path}: malformed row {num} of element {el.name!r} ({exc}); the file is corrupt") from exc
    return {p.name: (out[p.name] if p.count_dtype else np.asarray(out[p.name])) for p in el.props}


def _truncated(path: Path, el: _Element) -> None:
    raise DataError(f"{path} is truncated: the header promises {el.count} {el.name!r} rows that the file "
                    f"does not hold; export it again")


def ply_has_faces(path: Path) -> bool:
    """Whether a PLY file declares a non-empty ``face`` element (reads only the header)."""
    head = b""
    with open(path, "rb") as f:
        while b"end_header" not in head and (chunk := f.read(1 << 16)):  # headers with long comment blocks
            head += chunk
    _fmt, elements, _off = _parse_header(head, path)
    return any(e.name == "face" and e.count > 0 for e in elements)


def read_ply(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a PLY file's vertices and (triangulated) faces; faces are empty for a point cloud.

    Returns:
        vertices float64 (V, 3), faces int64 (F, 3).

    Raises:
        DataError: not a PLY file, bad header, truncated body, no x/y/z properties, out-of-range indices.
    """
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    data = path.read_bytes()
    fmt, elements, off = _parse_header(data, path)
    found: dict[str, dict] = {}
    lines = data[off:].decode("ascii", errors="replace").splitlines() if fmt == "ascii" else []
    lines = [ln for ln in lines if ln.strip() and not ln.startswith("comment")]
    for el in elements:
        if "vertex" in found and ("face" in found or not any(e.name == "face" for e in elements)):
            break  # everything after the vertices and faces is irrelevant (edges, materials, ...)
        if fmt == "ascii":
            found[el.name] = _ascii_element(lines, el, path)
            lines = lines[el.count :]
        else:
            found[el.name], off = _binary_element(data, off, el, _ENDIAN[fmt], path)
    vertex = found.get("vertex")
    if vertex is None or not all(k in vertex for k in "xyz"):
        raise DataError(f"{path}: no 'vertex' element with x, y, z properties; it has "
                        f"{[(e.name, [p.name for p in e.props]) for e in elements]}")
    verts = np.stack([np.asarray(vertex[k], dtype=np.float64) for k in "xyz"], axis=1)
    faces = np.zeros((0, 3), dtype=np.int64)
    face_el = next((e for e in elements if e.name == "face"), None)
    if face_el is not None and face_el.count:
        prop = next((p for p in face_el.props if p.count_dtype is not None), None)
        if prop is None:
            raise DataError(f"{path}: the 'face' element has no list property (vertex_indices)")
        idx = found["face"][prop.name]
        if isinstance(idx, np.ndarray) and idx.ndim == 2:
            if idx.shape[1] < 3:
                raise DataError(f"{path}: faces have {idx.shape[1]} vertices; a face needs at least 3")
            faces = fan_triangulate(idx.astype(np.int64))
        else:
            if min(len(p) for p in idx) < 3:
                raise DataError(f"{path}: a face has fewer than 3 vertices; the file is corrupt")
            faces = triangulate_polygons([list(map(int, p)) for p in idx])
    return check_mesh(verts, faces, source=path)
