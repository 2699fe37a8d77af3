"""A corpus of malformed dataset roots, each run through ``robench3d data prepare`` and ``data verify``.

Every root is a faithful fixture of a real layout (see ``fixtures.py``) with one defect. For each, ``prepare``
must exit 2 and ``verify`` 1, with no traceback, and the message must name the file, the line/row/object where
there is one, and say how to fix it: each case carries a hint fragment of its own, and Python's exception text
("invalid literal for int()", class names) must not leak into the message.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures import (
    aligned_ply_bytes,
    clouds,
    write_modelnet40c,
    write_modelnet_aligned,
    write_modelnet_h5,
    write_modelnet_off,
    write_modelnet_resampled,
    write_scanobjectnn,
)

from robench3d.cli import main

#: Python's own wording: a message that merely wraps an exception shows one of these.
RAW = ("Traceback", "Error:", "Error(", "ValueError", "OverflowError", "IndexError", "KeyError", "TypeError",
       "UnicodeDecodeError", "BadZipFile", "struct.error", "invalid literal", "could not convert", "[Errno",
       "codec can't decode", "unexpected")


@dataclass(frozen=True)
class Case:
    """One malformed root: ``build(tmp) -> data root``; the file, location and hint the message must hold."""

    id: str
    dataset: str
    build: Callable[[Path], Path]
    file: str
    where: str | None
    hint: str
    args: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------- helpers
def _h5_set(path: Path, **arrays: np.ndarray) -> None:
    with h5py.File(path, "r+") as h5:
        for key, value in arrays.items():
            del h5[key]
            h5[key] = value


def _h5_get(path: Path, key: str) -> np.ndarray:
    with h5py.File(path, "r") as h5:
        return h5[key][()]


def mn_h5(mutate: Callable[[Path], None]) -> Callable[[Path], Path]:
    """The PointNet h5 folder, then ``mutate(folder)``."""

    def build(root: Path) -> Path:
        folder, _ = write_modelnet_h5(root)
        mutate(folder)
        return root

    return build


def mn_txt(mutate: Callable[[Path], None]) -> Callable[[Path], Path]:
    """The PointNet++ resampled folder (airplane_0001 .. _0004 are the airplane shapes), then ``mutate``."""

    def build(root: Path) -> Path:
        mutate(write_modelnet_resampled(root))
        return root

    return build


def _set_line(path: Path, num: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[num - 1] = text
    path.write_text("\n".join(lines) + "\n")


def airplane_line(num: int, text: str) -> Callable[[Path], None]:
    return lambda folder: _set_line(folder / "airplane" / "airplane_0001.txt", num, text)


#: A tetrahedron: line 1 keyword, 2 counts, 3-6 vertices, 7-10 faces.
TETRA = ["OFF", "4 4 0", "0 0 0", "1 0 0", "0 1 0", "0 0 1", "3 0 1 2", "3 0 1 3", "3 0 2 3", "3 1 2 3"]


def mn_off(lines: list[str] | bytes) -> Callable[[Path], Path]:
    """The ModelNet40 OFF tree with ``bathtub/train/bathtub_0002.off`` replaced by ``lines``."""

    def build(root: Path) -> Path:
        folder = write_modelnet_off(root)
        target = folder / "bathtub" / "train" / "bathtub_0002.off"
        target.write_bytes(lines if isinstance(lines, bytes) else ("\n".join(lines) + "\n").encode())
        return root

    return build


def mn_aligned(mutate: Callable[[Path, bytes], bytes | None]) -> Callable[[Path], Path]:
    """The aligned PLY tree with ``airplane/train/airplane_0002.ply`` replaced by ``mutate(folder, its bytes)``
    (``None``: the mutation changed the tree itself); the root is the folder holding the tree."""

    def build(root: Path) -> Path:
        folder, _ = write_modelnet_aligned(root)
        target = folder / "airplane" / "train" / ALIGNED
        data = mutate(folder, target.read_bytes())
        if data is not None:
            target.write_bytes(data)
        return root

    return build


def _nan_cloud(folder: Path, data: bytes) -> bytes:
    pts = clouds(1, 64)[0]
    pts[3, 1] = np.nan
    return aligned_ply_bytes(pts)


def _misspell_night_stand(folder: Path, data: bytes) -> None:
    (folder / "night_stand").rename(folder / "nightstand")


def tetra(**changes: str) -> list[str]:
    """:data:`TETRA` with line ``l<N>`` replaced."""
    out = list(TETRA)
    for key, text in changes.items():
        out[int(key[1:]) - 1] = text
    return out


def sonn(mutate: Callable[[Path], None]) -> Callable[[Path], Path]:
    """ScanObjectNN ``h5_files/main_split``, then ``mutate(test file)``; the root is ``h5_files``."""

    def build(root: Path) -> Path:
        h5_files, _ = write_scanobjectnn(root)
        mutate(h5_files / "main_split" / "test_objectdataset_augmentedrot_scale75.h5")
        return h5_files

    return build


def _empty_object(i: int) -> Callable[[Path], None]:
    def mutate(f: Path) -> None:
        mask = _h5_get(f, "mask")
        mask[i] = -1
        _h5_set(f, mask=mask)

    return mutate


def mn40c(mutate: Callable[[Path], None]) -> Callable[[Path], Path]:
    """ModelNet40-C with ``mutate(folder)``; the variant used is ``gaussian_1``."""

    def build(root: Path) -> Path:
        folder, _ = write_modelnet40c(root, files={"gaussian_1": 128})
        mutate(folder)
        return root

    return build


def folder(name: str, data: bytes) -> Callable[[Path], Path]:
    """A small folder dataset (npy clouds in mug/ and lamp/) plus ``mug/test/<name>`` holding ``data``."""

    def build(root: Path) -> Path:
        for j, (cls, split, sid) in enumerate([("mug", "train", "a"), ("mug", "train", "b"), ("mug", "test", "c"),
                                               ("lamp", "train", "d"), ("lamp", "train", "e"), ("lamp", "test", "f")]):
            (root / cls / split).mkdir(parents=True, exist_ok=True)
            np.save(root / cls / split / f"{sid}.npy", clouds(1, 96, seed=j)[0])
        (root / "mug" / "test" / name).write_bytes(data)
        return root

    return build


def _npy(arr: np.ndarray, **kw: bool) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, **kw)
    return buf.getvalue()


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


#: An ASCII tetrahedron: header lines 1-9, vertices on lines 10-13, faces on lines 14-17.
PLY_HEAD = ["ply", "format ascii 1.0", "element vertex 4", "property float x", "property float y",
            "property float z", "element face 4", "property list uchar int vertex_indices", "end_header"]
PLY_BODY = ["0 0 0", "1 0 0", "0 1 0", "0 0 1", "3 0 1 2", "3 0 1 3", "3 0 2 3", "3 1 2 3"]


def ply_ascii(**changes: str) -> bytes:
    """The ASCII tetrahedron with line ``l<N>`` replaced."""
    lines = PLY_HEAD + PLY_BODY
    for key, text in changes.items():
        lines[int(key[1:]) - 1] = text
    return ("\n".join(lines) + "\n").encode()


def ply_binary(count: int = 4, list_len: int = 3, cut: int = 0, count_type: str = "uchar") -> bytes:
    head = list(PLY_HEAD)
    head[1], head[2] = "format binary_little_endian 1.0", f"element vertex {count}"
    head[7] = f"property list {count_type} int vertex_indices"
    verts = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)]
    body = b"".join(struct.pack("<3f", *v) for v in verts)
    code = {"uchar": "B", "char": "b"}[count_type]
    body += b"".join(struct.pack(f"<{code}3i", list_len, *f) for f in [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)])
    data = ("\n".join(head) + "\n").encode() + body
    return data[: len(data) - cut]


def _rename(path: Path) -> None:
    with h5py.File(path, "r+") as h5:
        h5["points"] = h5["data"][()]
        del h5["data"]


def _with_nan(data: np.ndarray, i: int) -> np.ndarray:
    data = data.copy()
    data[i, 5, 1] = np.nan
    return data


def _group(path: Path) -> None:
    with h5py.File(path, "r+") as h5:
        del h5["data"]
        h5.create_group("data")


def _zip_with_text() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("points.npy", b"not an array")
    return buf.getvalue()


def _npz_object() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, points=np.empty((96, 3), object))
    return buf.getvalue()


TXT = "airplane_0001.txt"
H5 = "ply_data_test0.h5"
SONN = "test_objectdataset_augmentedrot_scale75.h5"
C = "data_gaussian_1.npy"
MN40C = "modelnet40_c:gaussian_1"
BATH = "bathtub_0002.off"
ALIGNED = "airplane_0002.ply"
FIX_H5 = "download it again"

CASES = [
    # ------------------------------------------------------------------------------------ ModelNet40 PointNet h5
    Case("h5-html", "modelnet40", mn_h5(lambda d: (d / H5).write_bytes(b"<!DOCTYPE html><html>404</html>")), H5,
         None, FIX_H5),
    Case("h5-truncated", "modelnet40", mn_h5(lambda d: (d / H5).write_bytes((d / H5).read_bytes()[:3000])), H5,
         None, FIX_H5),
    Case("h5-zero-rows", "modelnet40", mn_h5(lambda d: _h5_set(d / H5, data=np.zeros((0, 128, 3), np.float32),
                                                                label=np.zeros((0, 1), np.uint8))), H5,
         None, "remove its line from test_files.txt"),
    Case("h5-missing-key", "modelnet40", mn_h5(lambda d: _rename(d / H5)), H5,
         None, "replace it with the dataset's original"),
    Case("h5-label-range", "modelnet40", mn_h5(lambda d: _h5_set(d / H5, label=np.array([[0], [1], [40], [0], [1]],
                                                                                        np.uint8))), H5,
         "row 2", "replace it with this dataset's original"),
    Case("h5-nan", "modelnet40", mn_h5(lambda d: _h5_set(d / H5, data=_with_nan(_h5_get(d / H5, "data"), 3))), H5,
         "index 3", "fix or remove them"),
    Case("h5-length-mismatch", "modelnet40", mn_h5(lambda d: _h5_set(d / H5, label=np.zeros((4, 1), np.uint8))),
         H5, None, "download them again"),
    Case("h5-points-2d", "modelnet40", mn_h5(lambda d: _h5_set(d / H5, data=np.zeros((5, 128, 2), np.float32))),
         H5, None, "replace the file with the dataset's original"),
    Case("h5-points-int", "modelnet40", mn_h5(lambda d: _h5_set(d / H5, data=np.zeros((5, 128, 3), np.int32))), H5,
         None, "save the points as float32"),
    Case("h5-label-float", "modelnet40", mn_h5(lambda d: _h5_set(d / H5, label=np.zeros((5, 1), np.float32))), H5,
         None, "replace the file with the dataset's original"),
    Case("h5-group", "modelnet40", mn_h5(lambda d: _group(d / H5)), H5, None, "is a group"),
    Case("h5-json-garbled", "modelnet40", mn_h5(lambda d: (d / "ply_data_test_0_id2file.json").write_text('["a",')),
         "ply_data_test_0_id2file.json", "line 1", FIX_H5),
    Case("h5-json-count", "modelnet40", mn_h5(lambda d: (d / "ply_data_test_0_id2file.json").write_text('["a/b"]')),
         "ply_data_test_0_id2file.json", None, "delete the JSON"),
    Case("h5-json-entry", "modelnet40", mn_h5(lambda d: (d / "ply_data_test_0_id2file.json").write_text(
        '["a", 7, "b", "c", "d"]')), "ply_data_test_0_id2file.json", "entry 1", FIX_H5),
    Case("h5-names-binary", "modelnet40", mn_h5(lambda d: (d / "shape_names.txt").write_bytes(b"\xff\xfe\x00a")),
         "shape_names.txt", None, "save it as UTF-8"),
    Case("h5-names-typo", "modelnet40", mn_h5(lambda d: _set_line(d / "shape_names.txt", 3, "bedd")),
         "shape_names.txt", "line 3", "replace the file with the original"),
    Case("h5-list-missing", "modelnet40", mn_h5(lambda d: (d / "ply_data_train1.h5").unlink()), "train_files.txt",
         "line 2", "restore the file or remove the line"),
    # -------------------------------------------------------------------------- ModelNet40 PointNet++ resampled
    Case("txt-first-row-typo", "modelnet40", mn_txt(airplane_line(1, "0.1O,0.2,0.3,0,0,1")), TXT, "line 1",
         "fix or remove the line"),
    Case("txt-short-row", "modelnet40", mn_txt(airplane_line(5, "0.1,0.2")), TXT, "line 5", "fix or remove the line"),
    Case("txt-underscore", "modelnet40", mn_txt(airplane_line(3, "1_0,0.2,0.3,0,0,1")), TXT, "line 3",
         "fix or remove the line"),
    Case("txt-unicode-digit", "modelnet40", mn_txt(airplane_line(7, "\u0661,0.2,0.3,0,0,1")), TXT, "line 7",
         "fix or remove the line"),
    Case("txt-nan", "modelnet40", mn_txt(airplane_line(4, "nan,0.2,0.3,0,0,1")), TXT, "line 4",
         "fix or remove the line"),
    Case("txt-empty", "modelnet40", mn_txt(lambda d: (d / "airplane" / TXT).write_text("")), TXT, None,
         "remove the file"),
    Case("txt-binary", "modelnet40", mn_txt(lambda d: (d / "airplane" / TXT).write_bytes(b"\x89PNG\r\n\x1a\n\xff")),
         TXT, None, "save it as UTF-8"),
    Case("txt-header-only", "modelnet40", mn_txt(lambda d: (d / "airplane" / TXT).write_text("x,y,z\n")), TXT, None,
         "add the points or remove the file"),
    Case("txt-too-few-points", "modelnet40", mn_txt(lambda d: (d / "airplane" / TXT).write_text("0,0,1\n1,0,0\n")),
         TXT, None, "--num-points 2"),
    Case("txt-collapsed", "modelnet40", mn_txt(lambda d: (d / "airplane" / TXT).write_text("0.5,0.5,0.5\n" * 80)),
         TXT, "cloud 0", "dataset.normalize=false"),
    Case("txt-list-bad-id", "modelnet40", mn_txt(lambda d: _set_line(d / "modelnet40_test.txt", 2, "spaceship_01")),
         "modelnet40_test.txt", "line 2", "fix or remove the line"),
    Case("txt-list-missing", "modelnet40", mn_txt(lambda d: (d / "bathtub" / "bathtub_0003.txt").unlink()),
         "modelnet40_test.txt", "line 2", "restore the file or remove the line"),
    # ------------------------------------------------------------------------------------------- ModelNet OFF
    Case("off-vertex-short", "modelnet40", mn_off(tetra(l4="1 0", l5="0 1 0 255 0 0")), BATH, "line 4",
         "re-export the mesh"),
    Case("off-vertex-typo", "modelnet40", mn_off(tetra(l4="1 0 0 255 0 0", l5="0 1O 0")), BATH, "line 5",
         "re-export the mesh"),
    Case("off-vertex-underscore", "modelnet40", mn_off(tetra(l3="1_0 0 0")), BATH, "line 3", "re-export the mesh"),
    Case("off-vertex-nan", "modelnet40", mn_off(tetra(l6="0 nan 1")), BATH, "line 6", "re-export the mesh"),
    Case("off-face-fraction", "modelnet40", mn_off(tetra(l9="3 0 2 2.7")), BATH, "line 9", "re-export the mesh"),
    Case("off-face-huge", "modelnet40", mn_off(tetra(l8="3 0 1 99999999999999999999999")), BATH, "line 8",
         "re-export the mesh"),
    Case("off-face-short", "modelnet40", mn_off(tetra(l10="3 1 2")), BATH, "line 10", "re-export the mesh"),
    Case("off-face-count-inf", "modelnet40", mn_off(tetra(l7="inf 0 1 2")), BATH, "line 7", "re-export the mesh"),
    Case("off-counts-word", "modelnet40", mn_off(tetra(l2="4 four 0")), BATH, "line 2", "check the header"),
    Case("off-counts-negative", "modelnet40", mn_off(tetra(l2="-4 4 0")), BATH, "line 2", "check the header"),
    Case("off-glued-fraction", "modelnet40", mn_off(["OFF4 4.5 0"] + TETRA[2:]), BATH, "line 1", "check the header"),
    Case("off-truncated", "modelnet40", mn_off(TETRA[:8]), BATH, None, "download it again or re-export it"),
    Case("off-not-off", "modelnet40", mn_off(["ply", "format ascii 1.0"]), BATH, None,
         "replace it with the original mesh"),
    Case("off-binary", "modelnet40", mn_off(b"OFF\n\x00\x01\x02"), BATH, None, "give it its real extension"),
    # --------------------------------------------------------------------------- ModelNet40 aligned PLY clouds
    Case("aligned-truncated", "modelnet40", mn_aligned(lambda d, b: b[:-300]), ALIGNED, None, "export it again"),
    Case("aligned-html", "modelnet40", mn_aligned(lambda d, b: b"<!DOCTYPE html><html>404</html>"), ALIGNED, None,
         "replace it with the original file"),
    Case("aligned-no-end-header", "modelnet40", mn_aligned(lambda d, b: b[: b.index(b"end_header")]), ALIGNED, None,
         "export it again"),
    Case("aligned-bad-type", "modelnet40", mn_aligned(lambda d, b: b.replace(b"property float y", b"property flt y")),
         ALIGNED, "header line 6", "check the header"),
    Case("aligned-no-xyz", "modelnet40", mn_aligned(lambda d, b: b.replace(b"property float z", b"property float w")),
         ALIGNED, None, "vertex positions"),
    Case("aligned-nan", "modelnet40", mn_aligned(_nan_cloud), ALIGNED, "vertex 3", "re-export the file"),
    Case("aligned-class-typo", "modelnet40", mn_aligned(_misspell_night_stand),
         "nightstand", None, "rename it to 'night_stand'"),
    Case("off-degenerate", "modelnet40", mn_off(tetra(l6="2 0 0", l5="3 0 0", l4="1 0 0")), BATH, None,
         "re-export the mesh or remove the file"),
    # -------------------------------------------------------------------------------------------- ScanObjectNN
    Case("sonn-empty-object", "scanobjectnn", sonn(_empty_object(4)), SONN, "object 4", "dataset.empty_objects=keep"),
    Case("sonn-empty-object-drop", "scanobjectnn", sonn(_empty_object(1)), SONN, "object 1", "dataset.mask=keep",
         ("--opt", "dataset.mask=drop")),
    Case("sonn-zero-rows", "scanobjectnn", sonn(lambda f: _h5_set(f, data=np.zeros((0, 128, 3), np.float32),
                                                                   label=np.zeros(0, np.int64),
                                                                   mask=np.zeros((0, 128), np.int64))), SONN, None,
         "download it again or remove it"),
    Case("sonn-mask-shape", "scanobjectnn", sonn(lambda f: _h5_set(f, mask=np.zeros((5, 7), np.int64))), SONN, None,
         "replace the file with the original"),
    Case("sonn-label-range", "scanobjectnn", sonn(lambda f: _h5_set(f, label=np.array([0, 1, 2, 15, 0]))), SONN,
         "row 3", "replace it with this dataset's original"),
    Case("sonn-html", "scanobjectnn", sonn(lambda f: f.write_bytes(b"<html>Not Found</html>")), SONN, None,
         FIX_H5),
    Case("sonn-lfs-pointer", "scanobjectnn", sonn(lambda f: f.write_bytes(b"version https://git-lfs.github.com/spec"
                                                                          b"/v1\noid sha256:0\nsize 9\n")),
         SONN, None, "git lfs pull"),
    # -------------------------------------------------------------------------------------------- ModelNet40-C
    Case("c-truncated", MN40C, mn40c(lambda d: (d / C).write_bytes((d / C).read_bytes()[:-500])), C, None,
         "download or export it again"),
    Case("c-zero-rows", MN40C, mn40c(lambda d: np.save(d / C, np.zeros((0, 128, 3), np.float32))), C, None,
         FIX_H5),
    Case("c-header", MN40C, mn40c(lambda d: (d / C).write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': <f4, }\n")),
         C, None, FIX_H5),
    Case("c-object-array", MN40C, mn40c(lambda d: (d / C).write_bytes(_npy(np.empty((6, 128, 3), object),
                                                                           allow_pickle=True))), C, None,
         "numeric dtype"),
    Case("c-label-html", MN40C, mn40c(lambda d: (d / "label.npy").write_bytes(b"<html></html>")), "label.npy", None,
         FIX_H5),
    Case("c-label-count", MN40C, mn40c(lambda d: np.save(d / "label.npy", np.zeros((5, 1), np.uint8))), "label.npy",
         None, "download them again"),
    Case("c-nan", MN40C, mn40c(lambda d: np.save(d / C, _with_nan(np.load(d / C), 2))), C, "index 2",
         "fix or remove them"),
    # ------------------------------------------------------------------------------------------ folder: PLY
    Case("ply-index-int64", "folder", folder("bad.ply", ply_ascii(l15="3 0 1 99999999999999999999")), "bad.ply",
         "line 15", "export it again"),
    Case("ply-index-fraction", "folder", folder("bad.ply", ply_ascii(l16="3 0 2 2.7")), "bad.ply", "line 16",
         "fix the value"),
    Case("ply-index-underscore", "folder", folder("bad.ply", ply_ascii(l14="3 0 1_0 2")), "bad.ply", "line 14",
         "fix the value"),
    Case("ply-float-underscore", "folder", folder("bad.ply", ply_ascii(l11="1_0.5 0 0")), "bad.ply", "line 11",
         "fix the value"),
    Case("ply-count-underscore", "folder", folder("bad.ply", ply_ascii(l3="element vertex 1_0")), "bad.ply",
         "header line 3", "check the header"),
    Case("ply-binary-negative-count", "folder", folder("bad.ply", ply_binary(count=-1)), "bad.ply", "header line 3",
         "check the header"),
    Case("ply-binary-negative-list", "folder", folder("bad.ply", ply_binary(list_len=-1, count_type="char")),
         "bad.ply", "row 0", "export it again"),
    Case("ply-binary-truncated", "folder", folder("bad.ply", ply_binary(cut=9)), "bad.ply", None, "export it again"),
    Case("ply-unknown-type", "folder", folder("bad.ply", ply_ascii(l4="property flaot x")), "bad.ply",
         "header line 4", "check the header"),
    Case("ply-short-row", "folder", folder("bad.ply", ply_ascii(l12="0 1")), "bad.ply", "line 12", "check the header"),
    # ------------------------------------------------------------------------------------ folder: other files
    Case("obj-face-word", "folder", folder("bad.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 x\n"), "bad.obj", "line 4",
         "re-export the mesh"),
    Case("obj-face-range", "folder", folder("bad.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\n\nf 1 2 9\n"), "bad.obj",
         "line 5", "re-export the mesh"),
    Case("obj-vertex-typo", "folder", folder("bad.obj", b"v 0 0 0\nv 1 0,5 0\nv 0 1 0\nf 1 2 3\n"), "bad.obj",
         "line 2", "re-export the mesh"),
    Case("xyz-first-row-typo", "folder", folder("bad.xyz", b"0.1O 0.2 0.3\n" + b"0.5 0.1 0.2\n" * 70), "bad.xyz",
         "line 1", "fix or remove the line"),
    Case("csv-bad-field", "folder", folder("bad.csv", b"x,y,z\n0.1,0.2,0.3\n0.1,abc,0.3\n" + b"1,2,3\n" * 70),
         "bad.csv", "line 3", "fix or remove the line"),
    Case("npz-corrupt", "folder", folder("bad.npz", _npz(points=clouds(1, 96)[0])[:200]), "bad.npz", None,
         "export it again"),
    Case("npz-not-npy", "folder", folder("bad.npz", _zip_with_text()), "bad.npz", None, "np.savez"),
    Case("npz-object", "folder", folder("bad.npz", _npz_object()), "bad.npz", None, "numeric dtype"),
    Case("npy-int", "folder", folder("bad.npy", _npy(np.zeros((96, 3), np.int64))), "bad.npy", None,
         "(K, 3) float32"),
    Case("npy-truncated", "folder", folder("bad.npy", _npy(clouds(1, 96)[0])[:-40]), "bad.npy", None,
         "download or export it again"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_root(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: Case) -> None:
    root = case.build(tmp_path / "data")
    common = ["--dataset", case.dataset, "--data-root", str(root), "--cache-dir", str(tmp_path / "cache"),
              "--num-points", "64", "-q", *case.args]
    code = main(["data", "prepare", *common])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    message = err.strip()
    assert message.startswith("robench3d data: error: "), message
    _check(case, message, out + err)
    code = main(["data", "verify", *common])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    problems = [line for line in out.splitlines() if line.startswith("PROBLEM: ")]
    assert problems, out
    matching = [p for p in problems if case.file in p and (case.where is None or case.where in p)]
    assert matching, problems
    _check(case, matching[0], out + err)


def _check(case: Case, message: str, output: str) -> None:
    assert "Traceback" not in output
    assert case.file in message, message
    if case.where is not None:
        assert case.where in message, message
    assert case.hint.lower() in message.lower(), message
    leaked = [r for r in RAW if r in message]
    assert not leaked, f"{leaked} in {message}"


def test_corpus_size() -> None:
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
