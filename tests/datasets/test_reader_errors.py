"""Malformed files name the file and line (or row) and say how to fix them, instead of a traceback or a silent
wrong value: OFF, PLY, OBJ and text point lists, strict number parsing, npz/npy/JSON/text impostors."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fixtures import clouds

from robench3d.datasets.formats import read_id_list, read_lines, read_npy, read_npz, read_point_text
from robench3d.datasets.meshio import read_obj, read_off
from robench3d.datasets.parsing import as_index, is_float, is_int
from robench3d.datasets.ply import read_ply
from robench3d.errors import DataError


def test_strict_numbers() -> None:
    assert all(is_float(t) for t in ("1", "-1.5", "+.5e-3", "1.", "2E10", "nan", "-Infinity"))
    assert not any(is_float(t) for t in ("1_0", "0x10", "\u0661\u0662", "1,5", "0.1O", "", "1e", "."))
    assert is_int("-12") and not any(is_int(t) for t in ("1_0", "2.0", "\u0661", "+ 3"))
    assert [as_index(t) for t in ("2", "2.0", "2e0", "-3")] == [2, 2, 2, -3]
    assert [as_index(t) for t in ("2.7", "1_0", "nan", "inf", "x")] == [None] * 5


# ------------------------------------------------------------------------------------------------------- OFF
TETRA = "OFF\n4 4 0\n{v}\n3 0 1 2\n3 0 1 3\n3 0 2 3\n3 1 2 3\n"  # vertices on lines 3-6, faces on 7-10


@pytest.mark.parametrize(("verts", "match"), [
    # Rows of mixed length (trailing colours) take the per-line path, which used to crash on these.
    ("0 0 0\n1 0\n0 1 0 255 0 0\n0 0 1", r"line 4: vertex 1 has 2 value\(s\), expected at least 3 \('1 0'\); fix the "
                                         r"line or re-export the mesh"),
    ("0 0 0\n1 0 0 9 9 9\n0 1O 0\n0 0 1", r"line 5: '1O' in vertex 2 is not a plain decimal number"),
    ("1_0 0 0\n1 0 0\n0 1 0\n0 0 1", r"line 3: '1_0' in vertex 0 is not a plain decimal number"),
    ("0 0 0\n1 0 0\n0 1 0\n0 \u0661 1", r"line 6: '\u0661' in vertex 3 is not a plain decimal number"),
])
def test_off_bad_vertex_rows(tmp_path: Path, verts: str, match: str) -> None:
    p = tmp_path / "m.off"
    p.write_text(TETRA.format(v=verts), encoding="utf-8")
    with pytest.raises(DataError, match=r"m\.off, " + match):
        read_off(p)


@pytest.mark.parametrize(("old", "new", "match"), [
    ("3 0 2 3", "3 0 2 2.7", r"line 9: face 2: '2.7' is not a whole-number vertex index"),
    ("3 0 1 3", "3 0 1 99999999999999999999999", r"line 8: face 1 uses vertex 99999999999999999999999, but the file "
                                                 r"has 4 vertices \(0 to 3\)"),
    ("3 1 2 3", "3 1 2", r"line 10: face 3 lists 2 of its 3 vertex indices"),
    ("3 0 1 2", "inf 0 1 2", r"line 7: face 0 starts with 'inf', not a vertex count"),
    ("3 0 1 2", "3 0 1_0 2", r"line 7: face 0: '1_0' is not a whole-number vertex index"),
    ("4 4 0", "4 -4 0", r"line 2: malformed OFF counts line '4 -4 0'.*check the header"),
    ("4 4 0", "4 4_0 0", r"line 2: malformed OFF counts line"),
])
def test_off_bad_faces_and_counts(tmp_path: Path, old: str, new: str, match: str) -> None:
    p = tmp_path / "m.off"
    p.write_text(TETRA.format(v="0 0 0\n1 0 0\n0 1 0\n0 0 1").replace(old, new, 1))
    with pytest.raises(DataError, match=r"m\.off, " + match):
        read_off(p)


def test_off_whole_float_indices_are_accepted(tmp_path: Path) -> None:
    p = tmp_path / "m.off"
    p.write_text(TETRA.format(v="0 0 0\n1 0 0\n0 1 0\n0 0 1").replace("3 0 1 2", "3 0 1 2.0 255"))
    assert read_off(p)[1].tolist() == [[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]]


# ------------------------------------------------------------------------------------------------------- PLY
HEAD = ("ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 2\nproperty list uchar {itype} vertex_indices\nend_header\n")  # 9 header lines
BODY = "0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 2 3\n"  # vertices on lines 10-13, faces on 14-15


def _ascii_ply(tmp_path: Path, old: str = "", new: str = "", itype: str = "int") -> Path:
    p = tmp_path / "m.ply"
    p.write_text(HEAD.format(itype=itype) + (BODY.replace(old, new, 1) if old else BODY))
    return p


@pytest.mark.parametrize(("old", "new", "itype", "match"), [
    # A face index beyond int64 (and beyond the declared type) used to be an OverflowError.
    ("3 0 2 3", "3 0 2 99999999999999999999999", "int", r"line 15: row 1 of element 'face': 99999999999999999999999 "
                                                        r"\(vertex_indices\) does not fit the header's type int32"),
    ("3 0 2 3", "3 0 2 18446744073709551616", "uint", r"line 15: .* does not fit the header's type uint32"),
    # 2.7 used to be read as 2.
    ("3 0 2 3", "3 0 2.7 3", "int", r"line 15: row 1 of element 'face': '2.7' \(vertex_indices\) is not a plain "
                                    r"whole number"),
    # int("1_0") is 10 and float("1_0") 10.0 in Python.
    ("3 0 1 2", "3 0 1_0 2", "int", r"line 14: row 0 of element 'face': '1_0'"),
    ("1 0 0", "1_0 0 0", "int", r"line 11: row 1 of element 'vertex': '1_0' \(x\) is not a plain decimal number"),
    ("0 0 1", "0 0", "int", r"line 13: row 3 of element 'vertex' has 2 values"),
    ("3 0 2 3", "3 0 2", "int", r"line 15: row 1 of element 'face' has 2 of the 3 values"),
])
def test_ascii_ply_bad_values(tmp_path: Path, old: str, new: str, itype: str, match: str) -> None:
    with pytest.raises(DataError, match=r"m\.ply, " + match):
        read_ply(_ascii_ply(tmp_path, old, new, itype))


def test_ascii_ply_whole_float_index_is_accepted(tmp_path: Path) -> None:
    assert read_ply(_ascii_ply(tmp_path, "3 0 1 2", "3 0 1 2.0"))[1].tolist() == [[0, 1, 2], [0, 2, 3]]


@pytest.mark.parametrize(("old", "new", "match"), [
    ("element vertex 4", "element vertex -4", r"header line 3 'element vertex -4': expected 'element <name> "
                                              r"<count>' with a count of 0 or more; check the header"),
    ("element vertex 4", "element vertex 1_0", r"header line 3 'element vertex 1_0'"),
    ("property float x", "property flaot x", r"header line 4 'property flaot x'.*check the header"),
    ("property list uchar int", "property list float int", r"header line 8 .*count type must be an integer type"),
    ("element vertex 4\n", "", r"header line 3 'property float x': a property before any 'element' line"),
    ("format ascii 1.0", "format ascii 1.0\nvertex 4", r"header line 3 'vertex 4': unknown header keyword"),
])
def test_ply_bad_headers(tmp_path: Path, old: str, new: str, match: str) -> None:
    p = tmp_path / "m.ply"
    p.write_text(HEAD.format(itype="int").replace(old, new, 1) + BODY)
    with pytest.raises(DataError, match=r"m\.ply, " + match):
        read_ply(p)


def _binary_ply(count: int = 4, lists: tuple[int, ...] = (3, 3), count_type: str = "uchar",
                index_type: str = "int", indices: tuple[float, ...] = (0, 1, 2)) -> bytes:
    head = HEAD.format(itype=index_type).replace("ascii", "binary_little_endian").replace("element vertex 4",
                                                                                        f"element vertex {count}")
    head = head.replace("list uchar", f"list {count_type}")
    body = struct.pack("<12f", 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1)
    code, icode = {"uchar": "B", "char": "b"}[count_type], {"int": "i", "float": "f"}[index_type]
    for n in lists:
        body += struct.pack(f"<{code}3{icode}", n, *indices)
    return head.encode() + body


def test_binary_ply_negative_vertex_count(tmp_path: Path) -> None:
    p = tmp_path / "m.ply"
    p.write_bytes(_binary_ply(count=-1))  # np.frombuffer(count=-1) reads "everything": silently wrong before
    with pytest.raises(DataError, match=r"m\.ply, header line 3 'element vertex -1'.*check the header"):
        read_ply(p)


@pytest.mark.parametrize("lists", [(-1, 3), (3, -1)])  # row 0 (the one-layout path) and a later row (the slow path)
def test_binary_ply_negative_list_length(tmp_path: Path, lists: tuple[int, ...]) -> None:
    p = tmp_path / "m.ply"
    p.write_bytes(_binary_ply(lists=lists, count_type="char"))
    with pytest.raises(DataError, match=rf"m\.ply: row {lists.index(-1)} of element 'face' announces a list of -1 "
                                        r"values.*export it again"):
        read_ply(p)


def test_binary_ply_float_indices(tmp_path: Path) -> None:
    p = tmp_path / "m.ply"
    p.write_bytes(_binary_ply(index_type="float", indices=(0, 1, 2)))
    assert read_ply(p)[1].tolist() == [[0, 1, 2], [0, 1, 2]]
    p.write_bytes(_binary_ply(index_type="float", indices=(0, 1, 2.5)))
    with pytest.raises(DataError, match=r"m\.ply: the face list holds vertex indices that are not whole numbers"):
        read_ply(p)


def test_ply_ending_at_end_header(tmp_path: Path) -> None:
    p = tmp_path / "m.ply"
    p.write_bytes(_binary_ply().split(b"end_header")[0] + b"end_header")  # no newline, no body
    with pytest.raises(DataError, match=r"m\.ply is truncated: the header promises 4 'vertex' rows"):
        read_ply(p)


# ------------------------------------------------------------------------------------------- text point lists
@pytest.mark.parametrize(("text", "match"), [
    # A typo in the first row used to make it a "header", silently dropping that point.
    ("0.1O,0.2,0.3\n0.4,0.5,0.6\n", r"line 1: '0\.1O' in the point is not a plain decimal number.*fix or remove"),
    ("x,1,2\n0.4,0.5,0.6\n", r"line 1: 'x' in the point is not a plain decimal number"),
    ("# c\nx,y,z\n1,2,3\n4,5_0,6\n", r"line 4: '5_0' in the point"),
    ("1 2 3\n4 \u0665 6\n", r"line 2: '\u0665' in the point"),
    ("1 2 3\n\n4 5 nan\n", r"line 3: the point has a NaN or Inf coordinate"),
    ("1 2 3\n4 5 6 7\n", r"line 2: the point has 4 value\(s\), expected 3, as on line 1"),
])
def test_point_text_names_the_line(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "a.xyz"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=r"a\.xyz, " + match):
        read_point_text(p)


def test_point_text_header_needs_no_number(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("x,y,z,label\n1,2,3,4\n")
    np.testing.assert_array_equal(read_point_text(p), [[1, 2, 3, 4]])


# ------------------------------------------------------------------------------------------------------- OBJ
@pytest.mark.parametrize(("line", "match"), [
    ("f 1 2 x", r"line 4: 'f 1 2 x': 'x' is not a vertex number"),
    ("f 0 1 2", r"line 4: 'f 0 1 2': '0' is not a vertex number"),
    ("f 1 2 9", r"line 4: the face refers to vertex 9, which does not exist \(the file has 3 vertices\)"),
    ("f 1 2 -7", r"line 4: the face refers to vertex -7"),
    ("f 1 2 99999999999999999999999", r"line 4: the face refers to vertex 99999999999999999999999"),
    ("v 1 2 3_0", r"line 4: 'v 1 2 3_0': '3_0' is not a number"),
])
def test_obj_errors_name_the_line(tmp_path: Path, line: str, match: str) -> None:
    p = tmp_path / "m.obj"
    p.write_text(f"v 0 0 0\nv 1 0 0\nv 0 1 0\n{line}\n")
    with pytest.raises(DataError, match=r"m\.obj, " + match):
        read_obj(p)


# -------------------------------------------------------------------------------- npz / npy / JSON / text
def test_npz_corrupt_and_odd_members(tmp_path: Path) -> None:
    p = tmp_path / "x.npz"
    buf = io.BytesIO()
    np.savez(buf, points=clouds(1, 50)[0])
    p.write_bytes(buf.getvalue()[:150])
    with pytest.raises(DataError, match=r"x\.npz is a truncated or corrupt ZIP archive.*export it again"):
        read_npz(p)
    raw = bytearray(buf.getvalue())
    raw[80] ^= 0xFF  # inside the member's data: a CRC error
    p.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"x\.npz is a truncated or corrupt ZIP archive"):
        read_npz(p)
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("points.npy", b"text")
    with pytest.raises(DataError, match=r"x\.npz: member\(s\) \['points'\] are not \.npy arrays"):
        read_npz(p)
    np.savez(p, points=np.empty((3, 3), object))
    with pytest.raises(DataError, match=r"x\.npz holds Python objects.*numeric dtype"):
        read_npz(p)


def test_npy_object_array_and_bad_header(tmp_path: Path) -> None:
    p = tmp_path / "x.npy"
    np.save(p, np.empty((2, 3), object), allow_pickle=True)
    with pytest.raises(DataError, match=r"x\.npy holds Python objects"):
        read_npy(p)
    p.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': <f4, }\n")
    with pytest.raises(DataError, match=r"x\.npy is truncated or corrupt"):
        read_npy(p)


def test_json_and_text_impostors(tmp_path: Path) -> None:
    p = tmp_path / "ply_data_test_0_id2file.json"
    p.write_text('[\n"a/b.ply",\n"c/d.ply"\n')
    with pytest.raises(DataError, match=r"id2file\.json, line 4: not valid JSON .*download it again"):
        read_id_list(p)
    p.write_bytes(b"\xff\xfe[]")
    with pytest.raises(DataError, match=r"id2file\.json is not a UTF-8 text file \(byte 0xff at offset 0\)"):
        read_id_list(p)
    t = tmp_path / "shape_names.txt"
    t.write_bytes(b"airplane\nbath\xe9tub\n")
    with pytest.raises(DataError, match=r"shape_names\.txt is not a UTF-8 text file \(byte 0xe9 at offset 13\)"):
        read_lines(t)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "m.off"
    p.write_text("OFF\n")

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(DataError, match=r"m\.off cannot be read \(Permission denied\); check that it is a readable"):
        read_off(p)
