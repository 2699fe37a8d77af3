"""File readers: HDF5/npy impostors and truncation, text point lists, OFF, OBJ and PLY (all three encodings)."""

from __future__ import annotations

import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures import box_mesh, clouds, ply_bytes

from robench3d.datasets.formats import (
    basename,
    check_labels,
    check_same_length,
    read_h5,
    read_npy,
    read_npy_shape,
    read_point_text,
    unique_ids,
)
from robench3d.datasets.meshio import read_obj, read_off, sample_mesh, to_y_up
from robench3d.datasets.ply import ply_has_faces, read_ply
from robench3d.errors import ConfigError, DataError

HTML = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n"


def _h5(path: Path, **arrays: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v, compression="gzip", chunks=True)
    return path


# ------------------------------------------------------------------------------------------------ HDF5
def test_html_saved_as_h5(tmp_path: Path) -> None:
    p = tmp_path / "ply_data_train0.h5"
    p.write_bytes(HTML)
    with pytest.raises(DataError, match=r"ply_data_train0\.h5 is not a valid HDF5 file: it is an HTML"):
        read_h5(p, ("data",))


def test_empty_and_lfs_pointer_h5(tmp_path: Path) -> None:
    p = tmp_path / "x.h5"
    p.write_bytes(b"")
    with pytest.raises(DataError, match=r"x\.h5 .*empty"):
        read_h5(p, ("data",))
    p.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n")
    with pytest.raises(DataError, match="Git LFS pointer"):
        read_h5(p, ("data",))


def test_truncated_h5(tmp_path: Path) -> None:
    p = _h5(tmp_path / "t.h5", data=clouds(20, 256), label=np.zeros((20, 1), np.uint8))
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"t\.h5 is truncated or corrupt"):
        read_h5(p, ("data", "label"))


def test_missing_key_lists_keys(tmp_path: Path) -> None:
    p = _h5(tmp_path / "k.h5", points=clouds(2, 8))
    with pytest.raises(DataError, match=r"k\.h5 has no key\(s\) \['data'\]; it has \['points'\]"):
        read_h5(p, ("data",))


def test_missing_h5(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.h5 does not exist"):
        read_h5(tmp_path / "nope.h5", ("data",))


def test_label_checks() -> None:
    np.testing.assert_array_equal(check_labels(np.array([[3], [1]], np.uint8), 40, source="f.h5"), [3, 1])
    with pytest.raises(DataError, match=r"f\.h5: label 40 at row 1 is out of range \[0, 40\)"):
        check_labels(np.array([0, 40]), 40, source="f.h5")
    with pytest.raises(DataError, match=r"f\.h5: expected integer labels, got dtype float32"):
        check_labels(np.array([0.0, 1.0], np.float32), 40, source="f.h5")
    with pytest.raises(DataError, match=r"f\.h5: expected labels of shape"):
        check_labels(np.zeros((2, 2), int), 40, source="f.h5")
    with pytest.raises(DataError, match=r"f\.h5: 3 clouds but 2 labels"):
        check_same_length(np.zeros((3, 4, 3)), np.zeros(2), source="f.h5")


# ------------------------------------------------------------------------------------------------ npy / text
def test_npy_impostor_and_truncation(tmp_path: Path) -> None:
    p = tmp_path / "data_gaussian_1.npy"
    p.write_bytes(HTML)
    with pytest.raises(DataError, match=r"data_gaussian_1\.npy is not a valid \.npy file: it is an HTML"):
        read_npy(p)
    np.save(p, clouds(4, 32))
    assert read_npy_shape(p) == (4, 32, 3)
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"data_gaussian_1\.npy is truncated"):
        read_npy(p)


def test_point_text_variants(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("x,y,z\r\n1,2,3\r\n4,5,6\r\n")
    np.testing.assert_array_equal(read_point_text(p), [[1, 2, 3], [4, 5, 6]])
    p.write_text("# comment\n1 2 3 9\n4 5 6 9\n\n")
    assert read_point_text(p).shape == (2, 4)
    p.write_text("1;2;3\n4;5;6\n")
    assert read_point_text(p).shape == (2, 3)


@pytest.mark.parametrize(("text", "match"), [
    ("1,2,3\n4,5\n", r"a\.txt, line 2: the point has 2 value\(s\), expected 3, as on line 1"),
    ("1,2\n3,4\n", r"a\.txt, line 1: expected at least 3 columns"),
    ("1,2,3\n4,x,6\n", r"a\.txt, line 2: 'x' in the point is not a plain decimal number"),
    ("", r"a\.txt holds no points"),
])
def test_point_text_errors(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "a.txt"
    p.write_text(text)
    with pytest.raises(DataError, match=match):
        read_point_text(p)


def test_basename_and_unique_ids() -> None:
    assert basename("C:\\data\\modelnet\\ply_data_test0.h5\r") == "ply_data_test0.h5"
    assert basename("data/modelnet40_ply_hdf5_2048/ply_data_train0.h5") == "ply_data_train0.h5"
    assert unique_ids(["a", "b", "a", "a"]) == ["a", "b", "a#2", "a#3"]


# ------------------------------------------------------------------------------------------------ OFF / OBJ
def test_off_comments_quads_and_colours(tmp_path: Path) -> None:
    p = tmp_path / "m.off"
    p.write_text("OFF\n# a comment\n\n4 2 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3 255 0 0\n3 0 1 2\n")
    v, f = read_off(p)
    assert v.shape == (4, 3) and f.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 2]]


@pytest.mark.parametrize(("text", "match"), [
    ("OFF\n3 1 0\n0 0 0\n1 0 0\n", r"m\.off is truncated: the header promises 3 vertices and 1 faces"),
    ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", r"m\.off, line 6: face 0 uses vertex 7, but the file has 3"),
    ("ply\nformat ascii 1.0\n", r"m\.off does not start with the OFF keyword"),
    ("OFF\nthree 1 0\n", r"m\.off, line 2: malformed OFF counts line 'three 1 0'"),
    ("OFF\n3 1 0\n0 0 0\n1 0 nan\n0 1 0\n3 0 1 2\n", r"m\.off, line 4: vertex 1 has a NaN"),
])
def test_off_errors(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "m.off"
    p.write_text(text)
    with pytest.raises(DataError, match=match):
        read_off(p)


def test_obj_negative_indices_and_slashes(tmp_path: Path) -> None:
    p = tmp_path / "m.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 3/1\nf -4//1 -2//1 -1//1\n")
    v, f = read_obj(p)
    assert f.tolist() == [[0, 1, 2], [0, 2, 3]]
    p.write_text("v 0 0 0\nv 1 0\n")
    with pytest.raises(DataError, match=r"m\.obj, line 2: 'v 1 0': a vertex needs 3 coordinates"):
        read_obj(p)


def test_sample_mesh_skips_zero_area_faces(tmp_path: Path) -> None:
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5]], dtype=float)
    f = np.array([[0, 1, 2], [3, 3, 3]])  # the second face has zero area and lies far away
    pts = sample_mesh(v, f, 500, np.random.default_rng(0), source=tmp_path / "m.off")
    assert pts.shape == (500, 3) and (pts[:, 2] == 0).all() and (pts.sum(axis=1) <= 1 + 1e-6).all()
    with pytest.raises(DataError, match=r"m\.off is a mesh with no faces"):
        sample_mesh(v, np.zeros((0, 3), int), 5, np.random.default_rng(0), source=tmp_path / "m.off")


def test_to_y_up_is_a_rotation() -> None:
    for axis in "xyz":
        e = np.eye(3)
        mapped = to_y_up(e, axis)
        assert np.isclose(np.linalg.det(mapped), 1.0)
        np.testing.assert_allclose(mapped["xyz".index(axis)], [0, 1, 0])
    np.testing.assert_allclose(to_y_up(np.array([1.0, 2.0, 3.0]), "z"), [-1.0, 3.0, 2.0])
    with pytest.raises(ConfigError, match="up_axis"):
        to_y_up(np.eye(3), "w")


# ------------------------------------------------------------------------------------------------------ PLY
@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian", "ascii"])
def test_ply_round_trip(tmp_path: Path, fmt: str) -> None:
    v, quads = box_mesh((1, 2, 3), (0, 0, 0))
    p = tmp_path / "m.ply"
    p.write_bytes(ply_bytes(v, quads, fmt=fmt))  # quads, then an 'edge' element after the faces
    verts, faces = read_ply(p)
    np.testing.assert_allclose(verts, v, atol=1e-6)
    assert faces.shape == (12, 3) and ply_has_faces(p)
    p.write_bytes(ply_bytes(v, None, fmt=fmt))
    verts, faces = read_ply(p)
    assert verts.shape == (8, 3) and faces.shape == (0, 3) and not ply_has_faces(p)


def test_ply_mixed_polygon_sizes(tmp_path: Path) -> None:
    v, quads = box_mesh((1, 1, 1), (0, 0, 0))
    mixed = [list(quads[0]), [0, 1, 2], list(quads[1])]
    p = tmp_path / "m.ply"
    p.write_bytes(ply_bytes(v, mixed))  # type: ignore[arg-type]
    assert read_ply(p)[1].shape == (5, 3)


def test_ply_errors(tmp_path: Path) -> None:
    v, quads = box_mesh((1, 1, 1), (0, 0, 0))
    p = tmp_path / "m.ply"
    data = ply_bytes(v, quads, extra_element=False)
    p.write_bytes(data[:-30])
    with pytest.raises(DataError, match=r"m\.ply is truncated"):
        read_ply(p)
    p.write_bytes(HTML)
    with pytest.raises(DataError, match=r"m\.ply is not a PLY file.*HTML"):
        read_ply(p)
    p.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nend_header\n"
                  + struct.pack("<f", 1.0))
    with pytest.raises(DataError, match=r"m\.ply: no 'vertex' element with x, y, z"):
        read_ply(p)
    p.write_bytes(b"ply\nformat binary_middle_endian 1.0\nend_header\n")
    with pytest.raises(DataError, match=r"m\.ply: unknown PLY format"):
        read_ply(p)
