"""ScanObjectNN loader: every variant's file names, the background mask, root forms and bad files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures import SONN, write_scanobjectnn

from robench3d.datasets.base import DatasetOptions
from robench3d.datasets.scanobjectnn import SCANOBJECTNN_VARIANTS, ScanObjectNNDataset, detect_format
from robench3d.datasets.tools import verify
from robench3d.errors import ConfigError, DataError

N = 64
Opts = Callable[..., DatasetOptions]


@pytest.mark.parametrize("variant", list(SCANOBJECTNN_VARIANTS))
def test_every_variant(tmp_path: Path, opts: Opts, variant: str) -> None:
    nobg, suffix = SCANOBJECTNN_VARIANTS[variant]
    root, expect = write_scanobjectnn(tmp_path / "data", variants=(suffix,), folder_name="main_split" + nobg)
    p = ScanObjectNNDataset(opts(root, variant=variant)).prepare()
    assert p.class_names == SONN and p.version.startswith(f"h5/{variant}/main_split{nobg}/mask-keep/n64/first/")
    np.testing.assert_array_equal(p.split("test").labels, expect["test"][0])
    assert len(p.split("train")) + len(p.split("val")) == 8
    assert p.split("test").points.shape == (5, N, 3)
    assert [len(b.ids) for b in p.batches("test", 4)] == [4, 1]


def test_default_variant_and_points(tmp_path: Path) -> None:
    root, _ = write_scanobjectnn(tmp_path / "data")
    ds = ScanObjectNNDataset(DatasetOptions(cache_dir=tmp_path / "cache", root=root))
    assert ds.variant == "PB_T50_RS" and ds.num_points == 2048
    with pytest.raises(DataError, match=r"training_objectdataset_augmentedrot_scale75\.h5: clouds have 128 points, "
                                         r"fewer than the 2048 requested"):
        ds.prepare()


def test_mask_keep_stores_foreground(tmp_path: Path, opts: Opts) -> None:
    root, expect = write_scanobjectnn(tmp_path / "data")
    test = ScanObjectNNDataset(opts(root)).prepare().split("test")
    np.testing.assert_array_equal(test.meta["foreground"], expect["test"][1][:, :N])


def test_mask_drop_keeps_object_points_only(tmp_path: Path, opts: Opts) -> None:
    root, _ = write_scanobjectnn(tmp_path / "data", label_shape="column")  # (N, 1) uint8 labels too
    with h5py.File(root / "main_split" / "test_objectdataset_augmentedrot_scale75.h5") as f:
        data, mask = f["data"][()], f["mask"][()]
    p = ScanObjectNNDataset(opts(root, extra={"mask": "drop", "normalize": False})).prepare()
    assert "mask-drop" in p.version and "/raw/" in p.version
    for cloud, src, fg in zip(p.split("test").points, data, mask != -1, strict=True):
        obj = src[fg]
        np.testing.assert_array_equal(cloud, obj[:N])  # first N object points (85 of 128 are object points)


def test_mask_drop_pads_small_objects_cyclically(tmp_path: Path, opts: Opts) -> None:
    root, _ = write_scanobjectnn(tmp_path / "data", num_points=64)  # ~43 object points < N
    p = ScanObjectNNDataset(opts(root, extra={"mask": "drop"})).prepare()
    cloud = p.split("test").points[0]
    k = len(np.unique(cloud, axis=0))
    assert 40 < k < N
    np.testing.assert_array_equal(cloud[k:], cloud[: N - k])


def _empty_object(root: Path, index: int = 2) -> Path:
    """Mark every point of test object ``index`` as background; return the file."""
    f = root / "main_split" / "test_objectdataset_augmentedrot_scale75.h5"
    with h5py.File(f, "r+") as h5:
        mask = h5["mask"][()]
        mask[index] = -1
        h5["mask"][...] = mask
    return f


def test_all_background_object_is_an_error_under_drop(tmp_path: Path, opts: Opts) -> None:
    root, _ = write_scanobjectnn(tmp_path / "data")
    _empty_object(root)
    with pytest.raises(DataError, match=r"test_objectdataset_augmentedrot_scale75\.h5: 1 of 5 object\(s\) have no "
                                         r"object points \(object 2\).*mask=drop would leave nothing"):
        ScanObjectNNDataset(opts(root, extra={"mask": "drop"})).prepare()


def test_all_background_object_is_refused_under_keep(tmp_path: Path, opts: Opts) -> None:
    root, _ = write_scanobjectnn(tmp_path / "data")
    f = _empty_object(root, 4)
    with pytest.raises(DataError, match=r"scale75\.h5: 1 of 5 object\(s\) have no object points \(object 4\).*"
                                         r"--opt dataset\.empty_objects=keep"):
        ScanObjectNNDataset(opts(root)).prepare()
    report = verify(ScanObjectNNDataset(opts(root)), checksums=False)
    assert not report.ok and any(str(f) in p and "(object 4)" in p for p in report.problems)


def test_empty_objects_keep(tmp_path: Path, opts: Opts, caplog: pytest.LogCaptureFixture) -> None:
    root, _ = write_scanobjectnn(tmp_path / "data")
    _empty_object(root, 4)
    default = ScanObjectNNDataset(opts(root, extra={"empty_objects": "refuse"}))
    assert "empty-keep" not in default.version_of(default.scan(), "0" * 8)
    with caplog.at_level("WARNING"):
        p = ScanObjectNNDataset(opts(root, extra={"empty_objects": "keep"})).prepare()
    assert "(object 4)" in caplog.text and "/mask-keep/empty-keep/n64/" in p.version
    assert len(p.split("test")) == 5 and not p.split("test").meta["foreground"][4].any()
    report = verify(ScanObjectNNDataset(opts(root, extra={"empty_objects": "keep"})), checksums=False)
    assert report.ok and any("(object 4)" in n and "empty_objects=keep" in n for n in report.notes)
    with pytest.raises(ConfigError, match="'empty_objects': 'maybe' is not valid; choose one of refuse, keep"):
        ScanObjectNNDataset(opts(root, extra={"empty_objects": "maybe"}))


def test_h5_with_zero_rows_is_an_error(tmp_path: Path, opts: Opts) -> None:
    root, _ = write_scanobjectnn(tmp_path / "data")
    f = root / "main_split" / "training_objectdataset_augmentedrot_scale75.h5"
    with h5py.File(f, "w") as h5:
        h5["data"] = np.zeros((0, 128, 3), np.float32)
        h5["label"] = np.zeros(0, np.int64)
        h5["mask"] = np.zeros((0, 128), np.int64)
    with pytest.raises(DataError, match=r"training_objectdataset_augmentedrot_scale75\.h5 holds 0 shapes"):
        ScanObjectNNDataset(opts(root)).prepare()
    report = verify(ScanObjectNNDataset(opts(root)), checksums=False)
    assert [p for p in report.problems if "holds 0 shapes" in p and f.name in p]


def test_mask_drop_needs_a_mask(tmp_path: Path, opts: Opts) -> None:
    folder = tmp_path / "h5_files" / "main_split"
    folder.mkdir(parents=True)
    with h5py.File(folder / "test_objectdataset_augmentedrot_scale75.h5", "w") as f:
        f["data"] = np.random.default_rng(0).normal(size=(3, 80, 3)).astype(np.float32)
        f["label"] = np.array([0, 1, 2])
    assert ScanObjectNNDataset(opts(tmp_path)).prepare().has("test")  # keep: fine, no foreground meta
    with pytest.raises(DataError, match=r"scale75\.h5 has no 'mask' key"):
        ScanObjectNNDataset(opts(tmp_path, extra={"mask": "drop"})).prepare()


@pytest.mark.parametrize("sub", ["", "h5_files", "h5_files/main_split"])
def test_root_forms(tmp_path: Path, opts: Opts, sub: str) -> None:
    write_scanobjectnn(tmp_path / "data")
    root = tmp_path / "data" / sub
    assert detect_format(root) == "h5"
    assert len(ScanObjectNNDataset(opts(root)).prepare().split("test")) == 5


def test_missing_variant_lists_found_files(tmp_path: Path, opts: Opts) -> None:
    root, _ = write_scanobjectnn(tmp_path / "data")
    with pytest.raises(DataError, match=r"variant OBJ_BG .*found: \['main_split/test_objectdataset_augmentedrot"):
        ScanObjectNNDataset(opts(root, variant="OBJ_BG")).prepare()


def test_variant_case_and_bad_options(tmp_path: Path, opts: Opts) -> None:
    assert ScanObjectNNDataset(opts(tmp_path, variant="pb_t25_r")).variant == "PB_T25_R"
    with pytest.raises(ConfigError, match="no variant 'PB_T99'"):
        ScanObjectNNDataset(opts(tmp_path, variant="PB_T99"))
    with pytest.raises(ConfigError, match="parameter 'mask': 'zero' is not valid; choose one of keep, drop"):
        ScanObjectNNDataset(opts(tmp_path, extra={"mask": "zero"}))
    with pytest.raises(ConfigError, match="split must be one of"):
        ScanObjectNNDataset(opts(tmp_path, extra={"split": "split9"}))


@pytest.mark.parametrize(("key", "value", "match"), [
    ("label", np.array([0, 1, 2, 15, 0]), r"label 15 at row 3 is out of range \[0, 15\)"),
    ("label", np.array([0, 1, 2]), r"5 clouds but 3 labels"),
    ("label", np.zeros(5, np.float64), r"expected integer labels"),
    ("mask", np.zeros((5, 7), np.int64), r"'mask' has shape \(5, 7\)"),
    ("data", np.zeros((5, 128, 2), np.float32), r"expected points of shape \(M, N, 3\)"),
])
def test_bad_arrays_name_the_file(tmp_path: Path, opts: Opts, key: str, value: np.ndarray, match: str) -> None:
    root, _ = write_scanobjectnn(tmp_path / "data")
    f = root / "main_split" / "test_objectdataset_augmentedrot_scale75.h5"
    with h5py.File(f, "r+") as h5:
        del h5[key]
        h5[key] = value
    with pytest.raises(DataError, match=r"test_objectdataset_augmentedrot_scale75\.h5.*" + match):
        ScanObjectNNDataset(opts(root)).prepare()


def test_nan_points_name_the_file(tmp_path: Path, opts: Opts) -> None:
    root, _ = write_scanobjectnn(tmp_path / "data")
    f = root / "main_split" / "training_objectdataset_augmentedrot_scale75.h5"
    with h5py.File(f, "r+") as h5:
        data = h5["data"][()]
        data[4, 10, 1] = np.inf
        h5["data"][...] = data
    with pytest.raises(DataError, match=r"training_objectdataset_augmentedrot_scale75\.h5: 1 cloud\(s\) contain NaN"):
        ScanObjectNNDataset(opts(root)).prepare()
