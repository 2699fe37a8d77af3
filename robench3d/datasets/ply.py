"""A small PLY reader (numpy only): ASCII, binary little- and big-endian, any elements in any order.

Only the ``vertex`` element's ``x, y, z`` and the ``face`` element's vertex-index list are returned; every other
element (edges, materials, ...) and property (normals, colours) is parsed only as far as needed to skip it.
Binary elements whose lists all have the same length (the usual all-triangle mesh) are read in one
``np.frombuffer`` call; mixed polygon sizes fall back to a per-row loop.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robench3d.datasets.formats import read_bytes, sniff, unreadable
from robench3d.datasets.meshio import check_mesh, fan_triangulate, triangulate_polygons
from robench3d.datasets.parsing import as_index, is_float, is_int
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
        raise DataError(f"{path} is not a PLY file (no 'ply' magic{'; it is ' + what if what else ''}); replace it "
                        f"with the original file or give it its real extension")
    end = data.find(b"end_header")
    if end < 0:
        raise DataError(f"{path}: PLY header has no 'end_header' line; the file is truncated or corrupt: export it "
                        f"again")
    newline = data.find(b"\n", end)  # the header line may end in \r\n; a file may stop right after it
    body = len(data) if newline < 0 else newline + 1
    fmt, elements = "", []
    for num, raw in enumerate(data[:end].decode("ascii", errors="replace").splitlines(), 1):
        tok = raw.split()
        if not tok or tok[0] in ("ply", "comment", "obj_info"):
            continue
        where = f"{path}, header line {num} {raw.strip()[:60]!r}"
        if tok[0] == "format":
            fmt = tok[1] if len(tok) > 1 else ""
        elif tok[0] == "element":
            if len(tok) != 3 or not is_int(tok[2]) or int(tok[2]) < 0:
                raise DataError(f"{where}: expected 'element <name> <count>' with a count of 0 or more; check the "
                                f"header (or export the file again)")
            elements.append(_Element(tok[1], int(tok[2]), []))
        elif tok[0] == "property":
            if not elements:
                raise DataError(f"{where}: a property before any 'element' line; check the header")
            is_list = len(tok) > 1 and tok[1] == "list"
            types = tok[2:4] if is_list else tok[1:2]
            if len(tok) != (5 if is_list else 3) or any(t not in _TYPES for t in types):
                raise DataError(f"{where}: expected 'property <type> <name>' or 'property list <count type> <type> "
                                f"<name>' with types among {', '.join(_TYPES)}; check the header")
            if is_list and _TYPES[tok[2]][0] not in "iu":
                raise DataError(f"{where}: a list's count type must be an integer type, not {tok[2]!r}; check the "
                                f"header")
            prop = _Prop(tok[4], _TYPES[tok[3]], _TYPES[tok[2]]) if is_list else _Prop(tok[2], _TYPES[tok[1]])
            elements[-1].props.append(prop)
        else:
            raise DataError(f"{where}: unknown header keyword {tok[0]!r} (valid: format, element, property, "
                            f"comment, obj_info); check the header")
    if fmt not in _ENDIAN:
        raise DataError(f"{path}: unknown PLY format {fmt!r}; expected one of {', '.join(_ENDIAN)}: check the header")
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
        if n < 0:
            _negative_list(path, el, 0, n)
        lengths.append(n)
        pos += np.dtype(p.count_dtype).itemsize + n * np.dtype(p.dtype).itemsize
    if len(lengths) == len(lists) and pos <= len(buf):  # row 0 fits: try one layout for every row
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
        for row in range(el.count):
            for p in el.props:
                if p.count_dtype is None:
                    out[p.name].append(np.frombuffer(buf, endian + p.dtype, 1, off)[0])
                    off += np.dtype(p.dtype).itemsize
                else:
                    n = int(np.frombuffer(buf, endian + p.count_dtype, 1, off)[0])
                    if n < 0:  # frombuffer would read "the rest of the buffer" for -1
                        _negative_list(path, el, row, n)
                    off += np.dtype(p.count_dtype).itemsize
                    out[p.name].append(np.frombuffer(buf, endian + p.dtype, n, off))
                    off += n * np.dtype(p.dtype).itemsize
    except ValueError:  # frombuffer past the end of the buffer
        _truncated(path, el)
    return {p.name: (out[p.name] if p.count_dtype else np.asarray(out[p.name])) for p in el.props}, off


def _ascii_element(rows: list[tuple[int, list[str]]], el: _Element, path: Path, plain: bool) -> dict:
    """Parse ``el.count`` rows ``(line number, tokens)`` of an ASCII element, each value checked against its type.

    ``plain``: the body holds only ASCII and no ``_``, so numpy's parser is as strict as :func:`is_float`.
    """
    if len(rows) < el.count:
        _truncated(path, el)
    fast = _ascii_table(rows[: el.count], el) if plain else None
    if fast is not None:
        return fast
    out: dict[str, list] = {p.name: [] for p in el.props}
    for r, (num, tok) in enumerate(rows[: el.count]):
        where = f"{path}, line {num}: row {r} of element {el.name!r}"
        i = 0
        for p in el.props:
            if p.count_dtype is None:
                out[p.name].append(_value(tok, i, p.dtype, where, p.name))
                i += 1
                continue
            n = int(_value(tok, i, p.count_dtype, where, f"the length of list {p.name!r}"))
            if n < 0:
                _negative_list(path, el, r, n, where)
            if len(tok) < i + 1 + n:
                raise DataError(f"{where} has {len(tok) - i - 1} of the {n} values its list {p.name!r} announces; "
                                f"the file is truncated or corrupt: export it again")
            out[p.name].append([_value(tok, j, p.dtype, where, p.name) for j in range(i + 1, i + 1 + n)])
            i += 1 + n
    return {p.name: (out[p.name] if p.count_dtype else np.asarray(out[p.name])) for p in el.props}


def _ascii_table(rows: list[tuple[int, list[str]]], el: _Element) -> dict | None:
    """One numpy parse of an element of scalars, or of a single fixed-length list (all triangles); ``None`` when
    the rows are not that regular or a value is invalid (the per-row path then names the line)."""
    toks = [t for _, t in rows]
    widths = {len(t) for t in toks}
    lists = [p for p in el.props if p.count_dtype is not None]
    if len(widths) != 1 or (lists and len(el.props) > 1) or not toks:
        return None
    width = widths.pop()
    if width == 0 or (not lists and width != len(el.props)):
        return None
    try:
        table = np.array(toks, dtype=np.float64)
    except ValueError:
        return None
    if lists:
        n = table[:, 0]
        if not (n == width - 1).all() or not _fits(n, lists[0].count_dtype) or not _fits(table[:, 1:], lists[0].dtype):
            return None
        return {lists[0].name: table[:, 1:]}
    if not all(_fits(table[:, j], p.dtype) for j, p in enumerate(el.props)):
        return None
    return {p.name: table[:, j] for j, p in enumerate(el.props)}


def _fits(values: np.ndarray, dtype: str) -> bool:
    """Whether float ``values`` are valid for a property of ``dtype`` (integers: whole and in range)."""
    kind, lo, hi = _limits(dtype)
    return kind == "f" or bool(np.isfinite(values).all() and (values == np.round(values)).all()
                               and (values >= lo).all() and (values <= hi).all())


@functools.cache
def _limits(dtype: str) -> tuple[str, int, int]:
    kind = np.dtype(dtype)
    if kind.kind == "f":
        return "f", 0, 0
    info = np.iinfo(kind)
    return kind.kind, int(info.min), int(info.max)


def _value(tok: list[str], i: int, dtype: str, where: str, what: str) -> float | int:
    """Token ``i`` of a row as a number of the header's type: integers must be whole and fit the type."""
    if i >= len(tok):
        raise DataError(f"{where} has {len(tok)} values, fewer than the header's properties need; check the header "
                        f"or export the file again")
    t = tok[i]
    kind, lo, hi = _limits(dtype)
    if kind == "f":
        if not is_float(t):
            raise DataError(f"{where}: {t!r} ({what}) is not a plain decimal number; fix the value or export the "
                            f"file again")
        return float(t)
    value = as_index(t)
    if value is None:
        raise DataError(f"{where}: {t!r} ({what}) is not a plain whole number, but the header declares an "
                        f"integer type ({np.dtype(dtype)}); fix the value or export the file again")
    if not lo <= value <= hi:
        raise DataError(f"{where}: {t} ({what}) does not fit the header's type {np.dtype(dtype)} ({lo} to {hi}); "
                        f"the file is corrupt: export it again (or check the header)")
    return value


def _negative_list(path: Path, el: _Element, row: int, n: int, where: str = "") -> None:
    where = where or f"{path}: row {row} of element {el.name!r}"
    raise DataError(f"{where} announces a list of {n} values; a list length cannot be negative, so the file is "
                    f"corrupt: export it again")


def _truncated(path: Path, el: _Element) -> None:
    raise DataError(f"{path} is truncated: the header promises {el.count} {el.name!r} rows that the file "
                    f"does not hold; export it again (or check the header's element counts)")


def ply_has_faces(path: Path) -> bool:
    """Whether a PLY file declares a non-empty ``face`` element (reads only the header)."""
    head = b""
    try:
        with open(path, "rb") as f:
            while b"end_header" not in head and (chunk := f.read(1 << 16)):  # headers with long comment blocks
                head += chunk
    except OSError as exc:
        raise unreadable(path, exc) from exc
    _fmt, elements, _off = _parse_header(head, path)
    return any(e.name == "face" and e.count > 0 for e in elements)


def read_ply(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a PLY file's vertices and (triangulated) faces; faces are empty for a point cloud.

    Returns:
        vertices float64 (V, 3), faces int64 (F, 3).

    Raises:
        DataError: not a PLY file, bad header, truncated body, no x/y/z properties, out-of-range indices.
    """
    data = read_bytes(path)
    fmt, elements, off = _parse_header(data, path)
    found: dict[str, dict] = {}
    first = data[:off].count(b"\n") + 1  # line number of the first body line, for the messages
    text = data[off:].decode("ascii", errors="replace").splitlines() if fmt == "ascii" else []
    lines = [(num, ln.split()) for num, ln in enumerate(text, first) if ln.strip() and not ln.startswith("comment")]
    plain = fmt == "ascii" and data[off:].isascii() and b"_" not in data[off:]
    for el in elements:
        if "vertex" in found and ("face" in found or not any(e.name == "face" for e in elements)):
            break  # everything after the vertices and faces is irrelevant (edges, materials, ...)
        if fmt == "ascii":
            found[el.name] = _ascii_element(lines, el, path, plain)
            lines = lines[el.count :]
        else:
            found[el.name], off = _binary_element(data, off, el, _ENDIAN[fmt], path)
    vertex = found.get("vertex")
    if vertex is None or not all(k in vertex for k in "xyz"):
        raise DataError(f"{path}: no 'vertex' element with x, y, z properties; it has "
                        f"{[(e.name, [p.name for p in e.props]) for e in elements]}; export the file with its vertex "
                        f"positions (or check the header)")
    verts = np.stack([np.asarray(vertex[k], dtype=np.float64) for k in "xyz"], axis=1)
    faces = np.zeros((0, 3), dtype=np.int64)
    face_el = next((e for e in elements if e.name == "face"), None)
    if face_el is not None and face_el.count:
        prop = next((p for p in face_el.props if p.count_dtype is not None), None)
        if prop is None:
            raise DataError(f"{path}: the 'face' element has no list property (vertex_indices); check the "
                                f"header or export the mesh again")
        idx = found["face"][prop.name]
        if isinstance(idx, np.ndarray) and idx.ndim == 2:
            if idx.shape[1] < 3:
                raise DataError(f"{path}: faces have {idx.shape[1]} vertices; a face needs at least 3: export the "
                                f"mesh again")
            faces = fan_triangulate(_whole(idx, path))
        else:
            short = next((r for r, p in enumerate(idx) if len(p) < 3), None)
            if short is not None:
                raise DataError(f"{path}: face {short} has {len(idx[short])} vertices; a face needs at least 3: "
                                f"export the mesh again")
            faces = triangulate_polygons([_whole(np.asarray(p), path).tolist() for p in idx])
    return check_mesh(verts, faces, source=path)


def _whole(idx: np.ndarray, path: Path) -> np.ndarray:
    """Vertex indices as int64; a float-typed index list must hold whole, finite numbers."""
    if idx.dtype.kind == "f" and not (np.isfinite(idx).all() and (idx == np.round(idx)).all()):
        raise DataError(f"{path}: the face list holds vertex indices that are not whole numbers; export the mesh "
                        f"again with integer indices")
    if idx.dtype.kind == "f" and idx.size and np.abs(idx).max() >= 2**62:
        raise DataError(f"{path}: a face uses vertex index {np.abs(idx).max():.0f}, far beyond any vertex; the file is "
                        f"corrupt: export the mesh again")
    return idx.astype(np.int64)
