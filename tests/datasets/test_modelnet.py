"""ModelNet40/ModelNet10 loaders on fixtures of the h5, normal_resampled and OFF layouts."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures import MN10, MN40, clouds, off_text, write_modelnet_h5, write_modelnet_off, write_modelnet_resampled

from robench3d.datasets import modelnet_formats
from robench3d.datasets.base import DatasetOptions
from robench3d.datasets.modelnet import ModelNet10Dataset, ModelNet40Dataset, detect_format
from robench3d.datasets.tools import verify
from robench3d.errors import ConfigError, DataError

N = 64
Opts = Callable[..., DatasetOptions]


def _all_train(p) -> tuple[list[str], list[int]]:
    """Ids and labels of train + val (val is carved from train)."""
    ids = list(p.split("train").ids) + list(p.split("val").ids)
    labels = list(p.split("train").labels) + list(p.split("val").labels)
    return ids, labels


# --------------------------------------------------------------------------------------------------- h5
def test_h5_round_trip(tmp_path: Path, opts: Opts) -> None:
    _, expect = write_modelnet_h5(tmp_path / "data", train_sizes=(6, 4, 3))
    p = ModelNet40Dataset(opts(tmp_path / "data")).prepare()
    assert p.class_names == MN40 and p.version.startswith("h5/n64/first/src-")
    test = p.split("test")
    np.testing.assert_array_equal(test.labels, expect["test"][0])
    assert list(test.ids) == expect["test"][1]  # ids from ply_data_test_0_id2file.json
    assert test.points.shape == (5, N, 3) and test.points.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(test.points, axis=-1).max(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(test.points.mean(axis=1), 0.0, atol=1e-5)
    # all three list-path styles (repo-relative, Windows, absolute) were resolved by basename
    ids, labels = _all_train(p)
    assert len(ids) == 13
    assert sorted(zip(ids, labels, strict=True)) == sorted(zip(*expect["train"][::-1], strict=True))
    assert test.labels.dtype == np.int64 and test.targets.dtype == np.int64
    assert (test.targets != test.labels).all()


def test_h5_folder_as_root_and_parent_as_root_agree(tmp_path: Path, opts: Opts) -> None:
    folder, _ = write_modelnet_h5(tmp_path / "data")
    a = ModelNet40Dataset(opts(folder)).prepare()
    b = ModelNet40Dataset(opts(tmp_path / "data")).prepare()
    assert a.version == b.version
    np.testing.assert_array_equal(a.split("test").points, b.split("test").points)


def test_h5_modelnet10_subset_is_remapped(tmp_path: Path, opts: Opts) -> None:
    _, expect = write_modelnet_h5(tmp_path / "data")
    p = ModelNet10Dataset(opts(tmp_path / "data")).prepare()
    assert p.class_names == MN10
    want = [MN10.index(MN40[c]) for c in expect["test"][0] if MN40[c] in MN10]
    assert list(p.split("test").labels) == want
    assert {MN10[c] for c in p.split("test").labels} <= {"bathtub", "night_stand"}


def test_h5_without_lists_globs_files(tmp_path: Path, opts: Opts) -> None:
    folder, expect = write_modelnet_h5(tmp_path / "data")
    (folder / "train_files.txt").unlink()
    (folder / "test_files.txt").unlink()
    p = ModelNet40Dataset(opts(folder)).prepare()
    assert list(p.split("test").labels) == list(expect["test"][0])


def test_h5_list_naming_missing_file(tmp_path: Path, opts: Opts) -> None:
    folder, _ = write_modelnet_h5(tmp_path / "data")
    (folder / "ply_data_train1.h5").unlink()
    with pytest.raises(DataError, match=r"train_files\.txt, line 2 names ply_data_train1\.h5"):
        ModelNet40Dataset(opts(folder)).prepare()


def test_h5_unexpected_class_names(tmp_path: Path, opts: Opts) -> None:
    folder, _ = write_modelnet_h5(tmp_path / "data")
    (folder / "shape_names.txt").write_text("\n".join(MN40[:-1] + ("spaceship",)))
    with pytest.raises(DataError, match=r"shape_names\.txt, line 40: 'spaceship' where the class list has 'xbox'"):
        ModelNet40Dataset(opts(folder)).prepare()


def test_h5_json_length_mismatch(tmp_path: Path, opts: Opts) -> None:
    folder, _ = write_modelnet_h5(tmp_path / "data")
    (folder / "ply_data_test_0_id2file.json").write_text('["airplane/airplane_0001.ply"]')
    with pytest.raises(DataError, match=r"ply_data_test_0_id2file\.json lists 1 shapes"):
        ModelNet40Dataset(opts(folder)).prepare()


def test_h5_with_zero_rows_is_an_error(tmp_path: Path, opts: Opts) -> None:
    folder, _ = write_modelnet_h5(tmp_path / "data", train_sizes=(6, 4))
    with h5py.File(folder / "ply_data_train1.h5", "w") as f:  # its split used to vanish without a word
        f["data"] = np.zeros((0, 128, 3), np.float32)
        f["label"] = np.zeros((0, 1), np.uint8)
    (folder / "ply_data_train_1_id2file.json").write_text("[]")
    match = r"ply_data_train1\.h5 holds 0 shapes .*remove its line from train_files\.txt"
    with pytest.raises(DataError, match=match):
        ModelNet40Dataset(opts(folder)).prepare()
    report = verify(ModelNet40Dataset(opts(folder)), checksums=False)
    assert len(report.problems) == 1 and "ply_data_train1.h5 holds 0 shapes" in report.problems[0]


def test_verify_collects_every_bad_file(tmp_path: Path, opts: Opts) -> None:
    folder = write_modelnet_resampled(tmp_path / "data")
    (folder / "airplane" / "airplane_0002.txt").write_text("0.1,0.2,x\n")
    (folder / "bathtub" / "bathtub_0001.txt").write_bytes(b"\xff\x00")
    with pytest.raises(DataError, match=r"airplane_0002\.txt, line 1"):  # prepare stops at the first
        ModelNet40Dataset(opts(folder)).prepare()
    report = verify(ModelNet40Dataset(opts(folder)), checksums=False)
    assert len(report.problems) == 2, report.problems
    assert "airplane_0002.txt, line 1: 'x'" in report.problems[0] and "bathtub_0001.txt is not a UTF-8" in \
        report.problems[1]
    assert report.notes  # the other shapes were still read and counted


def test_test_only_h5_has_no_train(tmp_path: Path, opts: Opts) -> None:
    folder, _ = write_modelnet_h5(tmp_path / "data")
    for f in folder.glob("ply_data_train*"):
        f.unlink()
    (folder / "train_files.txt").unlink()
    p = ModelNet40Dataset(opts(folder)).prepare()
    assert p.has("test") and not p.has("train") and not p.has("val")


def test_val_split_is_deterministic(tmp_path: Path, opts: Opts) -> None:
    write_modelnet_h5(tmp_path / "data", train_sizes=(12, 12))
    a = ModelNet40Dataset(opts(tmp_path / "data", cache_dir=tmp_path / "c1")).prepare()
    b = ModelNet40Dataset(opts(tmp_path / "data", cache_dir=tmp_path / "c2")).prepare()
    assert list(a.split("val").ids) == list(b.split("val").ids) and len(a.split("val")) > 0
    np.testing.assert_array_equal(a.split("val").targets, b.split("val").targets)
    assert not set(a.split("val").ids) & set(a.split("train").ids)
    c = ModelNet40Dataset(opts(tmp_path / "data", cache_dir=tmp_path / "c3", val_fraction=0.0)).prepare()
    assert not c.has("val") and len(c.split("train")) == 24


def test_cache_hit_and_changed_source_file(tmp_path: Path, opts: Opts) -> None:
    folder, _ = write_modelnet_h5(tmp_path / "data")
    first = ModelNet40Dataset(opts(folder)).prepare()
    again = ModelNet40Dataset(opts(folder)).prepare()
    assert again.provenance["cache"] == first.provenance["cache"]
    assert len(list((tmp_path / "cache" / "datasets" / "modelnet40").glob("*.npz"))) == 1
    # Rewrite one file in place with the same shapes (same size class) and a later mtime.
    h5 = folder / "ply_data_test0.h5"
    with h5py.File(h5, "r+") as f:
        f["data"][...] = clouds(5, 128, seed=99)
    st = h5.stat()
    os.utime(h5, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = ModelNet40Dataset(opts(folder)).prepare()
    assert changed.provenance["cache"] != first.provenance["cache"]
    assert not np.allclose(changed.split("test").points, first.split("test").points)


def test_fps_sampling_and_batches(tmp_path: Path, opts: Opts) -> None:
    write_modelnet_h5(tmp_path / "data")
    first = ModelNet40Dataset(opts(tmp_path / "data")).prepare()
    fps = ModelNet40Dataset(opts(tmp_path / "data", sampling="fps")).prepare()
    assert "/fps/" in fps.version and fps.version != first.version
    assert not np.allclose(fps.split("test").points, first.split("test").points)
    via_extra = ModelNet40Dataset(opts(tmp_path / "data", extra={"sampling": "fps"})).prepare()
    assert via_extra.version == fps.version
    batches = list(fps.batches("test", 2))
    assert [len(b.ids) for b in batches] == [2, 2, 1] and batches[0].points.shape == (2, N, 3)


def test_bad_options(tmp_path: Path, opts: Opts) -> None:
    with pytest.raises(ConfigError, match="sampling"):
        ModelNet40Dataset(opts(tmp_path, sampling="random"))
    with pytest.raises(ConfigError, match="dataset 'modelnet40' has no parameter 'smapling'; valid: .*sampling"):
        ModelNet40Dataset(opts(tmp_path, extra={"smapling": "fps"}))
    with pytest.raises(ConfigError, match="parameter 'data_seed': '1_0' is not an integer"):
        ModelNet40Dataset(opts(tmp_path, extra={"data_seed": "1_0"}))
    with pytest.raises(ConfigError, match="parameter 'val_fraction': 2.0 is out of range"):
        ModelNet40Dataset(opts(tmp_path, extra={"val_fraction": 2.0}))
    with pytest.raises(ConfigError, match="parameter 'normalize': 'sometimes' is not true or false"):
        ModelNet40Dataset(opts(tmp_path, extra={"normalize": "sometimes"}))
    with pytest.raises(ConfigError, match="no format 'ply'"):
        ModelNet40Dataset(opts(tmp_path, format="ply"))


def test_too_few_points_names_the_file(tmp_path: Path, opts: Opts) -> None:
    write_modelnet_h5(tmp_path / "data", num_points=32)
    with pytest.raises(DataError, match=r"ply_data_train0\.h5: clouds have 32 points, fewer than the 64"):
        ModelNet40Dataset(opts(tmp_path / "data")).prepare()


# --------------------------------------------------------------------------------------- normal_resampled
def test_resampled_round_trip(tmp_path: Path, opts: Opts, caplog: pytest.LogCaptureFixture) -> None:
    write_modelnet_resampled(tmp_path / "data")
    with caplog.at_level(logging.WARNING):
        p = ModelNet40Dataset(opts(tmp_path / "data")).prepare()
    assert p.version.startswith("normal_resampled/")
    test = p.split("test")
    assert sorted(test.ids) == ["airplane_0004", "bathtub_0003", "flower_pot_0003", "night_stand_0003",
                                "night_stand_0004"]
    for sid, lab in zip(test.ids, test.labels, strict=True):  # class names with "_" keep their full name
        assert MN40[lab] == sid.rsplit("_", 1)[0]
    assert len(_all_train(p)[0]) == 9
    assert "36 of 40 classes have no shapes" in caplog.text
    assert sum(len(b.ids) for b in p.batches("train", 3, shuffle=True, seed=1)) == len(p.split("train"))


def test_resampled_windows_edited_lists(tmp_path: Path, opts: Opts) -> None:
    folder = write_modelnet_resampled(tmp_path / "data")
    for name in ("modelnet40_shape_names.txt", "modelnet40_test.txt"):
        text = (folder / name).read_text()
        (folder / name).write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n\r\n").encode())  # BOM, CRLF, blanks
    p = ModelNet40Dataset(opts(folder)).prepare()
    assert len(p.split("test")) == 5


@pytest.mark.parametrize("own_lists", [False, True])
def test_resampled_modelnet10(tmp_path: Path, opts: Opts, own_lists: bool) -> None:
    write_modelnet_resampled(tmp_path / "data", modelnet10_lists=own_lists)
    p = ModelNet10Dataset(opts(tmp_path / "data")).prepare()
    assert p.class_names == MN10
    assert sorted(p.split("test").ids) == ["bathtub_0003", "night_stand_0003", "night_stand_0004"]
    assert {MN10[c] for c in p.split("test").labels} == {"bathtub", "night_stand"}


def test_resampled_list_names_missing_file(tmp_path: Path, opts: Opts) -> None:
    folder = write_modelnet_resampled(tmp_path / "data")
    (folder / "flower_pot" / "flower_pot_0003.txt").unlink()
    with pytest.raises(DataError, match=r"modelnet40_test\.txt, line \d+ names flower_pot_0003 but .*flower_pot_0003"):
        ModelNet40Dataset(opts(folder)).prepare()


def test_resampled_unknown_class_in_list(tmp_path: Path, opts: Opts) -> None:
    folder = write_modelnet_resampled(tmp_path / "data")
    with open(folder / "modelnet40_train.txt", "a") as f:
        f.write("spaceship_0001\n")
    with pytest.raises(DataError, match=r"modelnet40_train\.txt, line \d+: 'spaceship_0001' is not a ModelNet"):
        ModelNet40Dataset(opts(folder)).prepare()


def test_resampled_nan_names_the_file(tmp_path: Path, opts: Opts) -> None:
    folder = write_modelnet_resampled(tmp_path / "data")
    f = folder / "airplane" / "airplane_0002.txt"
    lines = f.read_text().splitlines()
    lines[3] = "nan,0.1,0.2,0,0,1"
    f.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"airplane_0002\.txt.*NaN or Inf"):
        ModelNet40Dataset(opts(folder)).prepare()


# ------------------------------------------------------------------------------------------------- OFF
def test_off_round_trip(tmp_path: Path, opts: Opts) -> None:
    write_modelnet_off(tmp_path / "data")  # glued headers, zero-area faces, __MACOSX/ and ._* strays
    p = ModelNet40Dataset(opts(tmp_path / "data")).prepare()
    assert p.version.startswith("off/mesh2048/ds0/n64/first/src-")
    assert sorted(p.split("test").ids) == ["airplane_0003", "bathtub_0003", "night_stand_0003"]
    assert len(_all_train(p)[0]) == 6
    # the boxes are 300 units tall in z: after (x, y, z) -> (-x, z, y) the y extent is the largest
    pts = p.split("test").points
    extent = pts.max(axis=1) - pts.min(axis=1)
    assert (extent.argmax(axis=1) == 1).all()
    np.testing.assert_allclose(np.linalg.norm(pts, axis=-1).max(axis=1), 1.0, rtol=1e-5)
    assert len(list((tmp_path / "cache" / "datasets" / "modelnet40" / "meshes").rglob("*.npy"))) == 9
    assert [len(b.ids) for b in p.batches("test", 2)] == [2, 1]


def test_damaged_mesh_cache_entry_is_resampled(tmp_path: Path, opts: Opts, caplog: pytest.LogCaptureFixture) -> None:
    write_modelnet_off(tmp_path / "data")
    a = ModelNet40Dataset(opts(tmp_path / "data")).prepare()
    for entry in (tmp_path / "cache" / "datasets" / "modelnet40" / "meshes").rglob("*.npy"):
        entry.write_bytes(entry.read_bytes()[:50])
    with caplog.at_level(logging.WARNING):
        b = ModelNet40Dataset(opts(tmp_path / "data", val_fraction=0.5)).prepare()
    assert "is damaged; resampling" in caplog.text
    np.testing.assert_array_equal(a.split("test").points, b.split("test").points)


def test_off_sampled_clouds_are_cached(tmp_path: Path, opts: Opts, monkeypatch: pytest.MonkeyPatch) -> None:
    write_modelnet_off(tmp_path / "data")
    a = ModelNet40Dataset(opts(tmp_path / "data")).prepare()

    def fail(path: Path) -> None:
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(modelnet_formats, "read_off", fail)
    b = ModelNet40Dataset(opts(tmp_path / "data", val_fraction=0.5)).prepare()  # new prepared key, same meshes
    np.testing.assert_array_equal(a.split("test").points, b.split("test").points)


def test_modelnet10_folder_preferred(tmp_path: Path, opts: Opts) -> None:
    write_modelnet_off(tmp_path / "data", top="ModelNet40")
    write_modelnet_off(tmp_path / "data", {"bathtub": (1, 1), "toilet": (2, 1)}, top="ModelNet10")
    p = ModelNet10Dataset(opts(tmp_path / "data")).prepare()
    assert sorted(p.split("test").ids) == ["bathtub_0002", "toilet_0003"]


def test_off_degenerate_mesh_names_the_file(tmp_path: Path, opts: Opts) -> None:
    folder = write_modelnet_off(tmp_path / "data")
    bad = folder / "bathtub" / "train" / "bathtub_0002.off"
    bad.write_text("OFF\n4 2 0\n0 0 0\n1 1 1\n2 2 2\n3 3 3\n3 0 1 2\n3 1 2 3\n")  # collinear: zero area
    with pytest.raises(DataError, match=r"bathtub_0002\.off: every face of the mesh has zero area"):
        ModelNet40Dataset(opts(folder)).prepare()


def test_off_empty_mesh_names_the_file(tmp_path: Path, opts: Opts) -> None:
    folder = write_modelnet_off(tmp_path / "data")
    (folder / "airplane" / "test" / "airplane_0003.off").write_text("OFF\n0 0 0\n")
    with pytest.raises(DataError, match=r"airplane_0003\.off has no vertices"):
        ModelNet40Dataset(opts(folder)).prepare()


def test_off_unexpected_class_folder(tmp_path: Path, opts: Opts) -> None:
    folder = write_modelnet_off(tmp_path / "data")
    (folder / "spaceship" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match=r"spaceship is not a ModelNet class folder"):
        ModelNet40Dataset(opts(folder)).prepare()


def test_off_class_without_split_folders(tmp_path: Path, opts: Opts) -> None:
    folder = write_modelnet_off(tmp_path / "data")
    (folder / "chair").mkdir()
    with pytest.raises(DataError, match=r"chair has neither a train/ nor a test/ folder"):
        ModelNet40Dataset(opts(folder)).prepare()


def test_off_glued_header_alone(tmp_path: Path) -> None:
    from robench3d.datasets.meshio import read_off

    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=float)
    path = tmp_path / "bathtub_0001.off"
    path.write_text(off_text(v, np.array([[0, 1, 2]]), glued=True, degenerate=False))
    assert path.read_text().startswith("OFF3 1 0\n")
    verts, faces = read_off(path)
    np.testing.assert_array_equal(verts, v)
    np.testing.assert_array_equal(faces, [[0, 1, 2]])


# ---------------------------------------------------------------------------------------------- detection
def test_detect_and_force_format(tmp_path: Path, opts: Opts) -> None:
    write_modelnet_h5(tmp_path / "data")
    write_modelnet_resampled(tmp_path / "data")
    write_modelnet_off(tmp_path / "data")
    assert detect_format(tmp_path / "data") == "h5"  # preferred when several are present
    assert detect_format(tmp_path / "data" / "modelnet40_normal_resampled") == "normal_resampled"
    assert detect_format(tmp_path / "data" / "ModelNet40") == "off"
    p = ModelNet40Dataset(opts(tmp_path / "data", format="normal_resampled")).prepare()
    assert p.version.startswith("normal_resampled/")
    with pytest.raises(DataError, match=r"modelnet40_normal_resampled holds no 'off' layout; expected"):
        ModelNet40Dataset(opts(tmp_path / "data" / "modelnet40_normal_resampled", format="off")).prepare()


def test_nothing_recognisable(tmp_path: Path, opts: Opts) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty holds no ModelNet layout; expected modelnet40_ply_hdf5_2048/"):
        ModelNet40Dataset(opts(tmp_path / "empty")).prepare()
