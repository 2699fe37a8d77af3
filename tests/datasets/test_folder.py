"""Bring-your-own ``folder`` loader: every extension, up-axis, class order, val folders and bad files."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fixtures import box_mesh, clouds, off_text, ply_bytes, write_folder

from robench3d.datasets.base import DatasetOptions
from robench3d.datasets.folder import FolderDataset, detect_format, read_shape
from robench3d.datasets.tools import describe, verify
from robench3d.errors import ConfigError, DataError

N = 64
Opts = Callable[..., DatasetOptions]


def test_round_trip_every_extension(tmp_path: Path, opts: Opts, caplog: pytest.LogCaptureFixture) -> None:
    root, ids = write_folder(tmp_path / "mine")
    with caplog.at_level(logging.WARNING):
        p = FolderDataset(opts(root)).prepare()
    assert f"1 file(s) skipped under {root}: lamp/test/README.md (unknown extension .md)" in caplog.text
    assert p.notes == [f"1 file(s) skipped under {root}: lamp/test/README.md (unknown extension .md)"]
    assert p.class_names == ("lamp", "mug") and p.version.startswith("folder/up-y/mesh2048/ds0/n64/first/src-")
    assert sorted(p.split("test").ids) == ids["test"]
    assert sorted(list(p.split("train").ids) + list(p.split("val").ids)) == ids["train"]
    for sid, lab in zip(p.split("test").ids, p.split("test").labels, strict=True):
        assert p.class_names[lab] == sid.split("/")[0]
    pts = p.split("test").points
    assert pts.shape == (3, N, 3)
    np.testing.assert_allclose(np.linalg.norm(pts, axis=-1).max(axis=1), 1.0, rtol=1e-5)
    assert sum(len(b.ids) for b in p.batches("train", 2)) == len(p.split("train"))
    assert detect_format(root) == "folder"


def test_mesh_files_are_sampled_on_the_surface(tmp_path: Path, opts: Opts) -> None:
    root, _ = write_folder(tmp_path / "mine")
    p = FolderDataset(opts(root, extra={"normalize": False})).prepare()
    test = p.split("test")
    box = test.points[list(test.ids).index("mug/e")]  # the OBJ box: 1 x 2 x 0.5 centred at 0
    on_face = np.isclose(np.abs(box), [0.5, 1.0, 0.25], atol=1e-5).any(axis=1)
    assert on_face.all() and len(np.unique(box, axis=0)) == N


def test_up_axis(tmp_path: Path, opts: Opts) -> None:
    v, q = box_mesh((1.0, 1.0, 5.0), (0, 0, 0))  # tall along z
    (tmp_path / "d" / "tower" / "test").mkdir(parents=True)
    (tmp_path / "d" / "tower" / "test" / "t.off").write_text(off_text(v, q))
    for axis, tall in (("z", 1), ("y", 2)):
        p = FolderDataset(opts(tmp_path / "d", up_axis=axis)).prepare()
        pts = p.split("test").points[0]
        assert int((pts.max(axis=0) - pts.min(axis=0)).argmax()) == tall and f"up-{axis}" in p.version
    assert FolderDataset(opts(tmp_path / "d", extra={"up_axis": "x"})).up_axis == "x"
    with pytest.raises(ConfigError, match="up_axis must be one of x, y, z"):
        FolderDataset(opts(tmp_path / "d", up_axis="up"))


def test_classes_txt_sets_the_order(tmp_path: Path, opts: Opts) -> None:
    root, _ = write_folder(tmp_path / "mine")
    (root / "classes.txt").write_text("mug\nlamp\nvase\n")
    p = FolderDataset(opts(root)).prepare()
    assert p.class_names == ("mug", "lamp", "vase")
    (root / "classes.txt").write_text("mug\n")
    with pytest.raises(DataError, match=r"class folder\(s\) \['lamp'\] that .*classes\.txt does not list"):
        FolderDataset(opts(root)).prepare()


def test_val_folder_is_used(tmp_path: Path, opts: Opts) -> None:
    root, _ = write_folder(tmp_path / "mine")
    (root / "lamp" / "val").mkdir()
    np.save(root / "lamp" / "val" / "v1.npy", clouds(1, N)[0])
    p = FolderDataset(opts(root)).prepare()
    assert list(p.split("val").ids) == ["lamp/v1"] and len(p.split("train")) == 8


def test_format_restricts_extensions(tmp_path: Path, opts: Opts) -> None:
    root, _ = write_folder(tmp_path / "mine")
    p = FolderDataset(opts(root, format="npy")).prepare()
    assert sorted(p.split("test").ids) == ["lamp/k"] and p.version.startswith("npy/")


def test_duplicate_ids(tmp_path: Path, opts: Opts) -> None:
    root, _ = write_folder(tmp_path / "mine")
    np.save(root / "mug" / "test" / "e.npy", clouds(1, N)[0])
    with pytest.raises(DataError, match=r"e\.obj and .*e\.npy have the same id 'e'|e\.npy and .*e\.obj"):
        FolderDataset(opts(root)).prepare()


def test_too_few_points(tmp_path: Path, opts: Opts) -> None:
    root, _ = write_folder(tmp_path / "mine", num_points=40)
    with pytest.raises(DataError, match=r"\.(ply|txt|csv|npy|npz|xyz).*: clouds have 40 points, fewer than the 64"):
        FolderDataset(opts(root)).prepare()


def test_nan_point_file(tmp_path: Path, opts: Opts) -> None:
    root, _ = write_folder(tmp_path / "mine")
    f = root / "mug" / "test" / "f.xyz"
    f.write_text(f.read_text().replace("\n", "\nnan 0 0\n", 1))
    with pytest.raises(DataError, match=r"f\.xyz, line 2: the point has a NaN or Inf coordinate"):
        FolderDataset(opts(root)).prepare()


def test_class_without_split_folder(tmp_path: Path, opts: Opts) -> None:
    root, _ = write_folder(tmp_path / "mine")
    (root / "vase").mkdir()
    (root / "vase" / "a.npy").write_bytes(b"")
    with pytest.raises(DataError, match=r"vase has no train/ or test/ folder"):
        FolderDataset(opts(root)).prepare()


def test_empty_root(tmp_path: Path, opts: Opts) -> None:
    (tmp_path / "e").mkdir()
    with pytest.raises(DataError, match=r"e has no class folders"):
        FolderDataset(opts(tmp_path / "e")).prepare()
    with pytest.raises(DataError, match="is not a <class>"):
        detect_format(tmp_path / "e")


@pytest.mark.parametrize(("name", "data", "match"), [
    ("x.npy", np.zeros((4, 3), np.int32), r"x\.npy: expected a \(K, 3\) float array"),
    ("x.npy", np.zeros((2, 4, 3), np.float32), r"x\.npy: expected a \(K, 3\) float array"),
    ("x.npz", {"a": np.zeros((4, 3)), "b": np.zeros((4, 3))}, r"x\.npz holds arrays \['a', 'b'\]"),
    ("x.ply", b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
              b"end_header\n0 0 0\n", r"x\.ply is truncated"),
])
def test_bad_point_files(tmp_path: Path, name: str, data: object, match: str) -> None:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    elif isinstance(data, dict):
        np.savez(path, **data)
    else:
        np.save(path, data)
    with pytest.raises(DataError, match=match):
        read_shape(path)


def test_skipped_files_are_named(tmp_path: Path, opts: Opts, caplog: pytest.LogCaptureFixture,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root, ids = write_folder(tmp_path / "mine")
    test = root / "mug" / "test"
    (test / "loop.ply").symlink_to(test / "loop.ply")
    (test / "gone.npy").symlink_to(test / "nowhere.npy")
    (test / "sub").mkdir()
    (test / ".hidden.npy").write_bytes(b"")
    (test / "locked.npy").write_bytes(b"")
    (root / "mug" / "notes.txt").write_text("not in a split folder")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda f, mode: Path(f).name != "locked.npy" and real_access(f, mode))
    with caplog.at_level(logging.WARNING):
        p = FolderDataset(opts(root)).prepare()
    assert sorted(p.split("test").ids) == ids["test"]  # the readable files are all there
    expected = ["lamp/test/README.md (unknown extension .md)", "mug/notes.txt (not in a train/, val/ or test/ folder)",
                "mug/test/.hidden.npy (hidden file)", "mug/test/gone.npy (broken symbolic link)",
                "mug/test/locked.npy (cannot be read: permission denied)", "mug/test/loop.ply (symbolic link loop)",
                "mug/test/sub (a folder; files must lie directly in <class>/<split>/)"]
    assert len(p.notes) == 1 and p.notes[0].startswith(f"7 file(s) skipped under {root}: ")
    for name in expected:
        assert name in p.notes[0] and name in caplog.text
    assert describe(p)["notes"] == p.notes
    report = verify(FolderDataset(opts(root)), checksums=False)
    assert report.notes[0] == p.notes[0]
    assert [q.split(":")[0] for q in report.problems] == [str(test / n) for n in ("gone.npy", "locked.npy",
                                                                                   "loop.ply")]


def test_skipped_notes_are_truncated_but_the_warning_names_all(tmp_path: Path, opts: Opts,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    root, _ = write_folder(tmp_path / "mine")
    for i in range(25):
        (root / "mug" / "train" / f"x{i:02d}.foo").write_text("")
    with caplog.at_level(logging.WARNING):
        p = FolderDataset(opts(root)).prepare()
    assert p.notes[0].startswith(f"26 file(s) skipped under {root}: ") and p.notes[0].endswith(", and 6 more")
    assert "mug/train/x24.foo (unknown extension .foo)" in caplog.text


def test_ply_mesh_with_extra_elements_in_folder(tmp_path: Path, opts: Opts) -> None:
    v, q = box_mesh((2.0, 1.0, 1.0), (-1.0, -0.5, -0.5))
    d = tmp_path / "d" / "crate" / "train"
    d.mkdir(parents=True)
    (d / "a.ply").write_bytes(ply_bytes(v, q, fmt="binary_big_endian"))
    (d / "b.ply").write_bytes(ply_bytes(v, q, fmt="ascii"))
    p = FolderDataset(opts(tmp_path / "d", val_fraction=0.0, extra={"normalize": False})).prepare()
    pts = p.split("train").points
    assert pts.shape == (2, N, 3) and np.isclose(np.abs(pts).max(axis=(0, 1)), [1.0, 0.5, 0.5], atol=1e-4).all()
