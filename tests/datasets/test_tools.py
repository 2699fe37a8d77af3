"""Data tooling: describe, verify (checksums, problems, notes), detect_format, and plugin registration."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fixtures import (
    write_folder,
    write_modelnet40c,
    write_modelnet_h5,
    write_modelnet_off,
    write_modelnet_resampled,
    write_scanobjectnn,
)

from robench3d.cache import file_sha256
from robench3d.datasets.base import Dataset, DatasetOptions, PreparedDataset, SplitData
from robench3d.datasets.modelnet import ModelNet40Dataset
from robench3d.datasets.tools import describe, detect_format, verify
from robench3d.errors import ConfigError, DataError
from robench3d.norms import Split

Opts = Callable[..., DatasetOptions]


def test_describe(tmp_path: Path, opts: Opts) -> None:
    write_modelnet_resampled(tmp_path / "data")
    info = describe(ModelNet40Dataset(opts(tmp_path / "data", val_fraction=0.0)).prepare())
    json.dumps(info)  # JSON-able, for --json output
    assert info["num_classes"] == 40 and info["version"].startswith("normal_resampled/")
    assert info["headers"] == ["label", "class", "train", "test"]
    assert info["splits"]["test"]["per_class"]["night_stand"] == 2
    assert info["splits"]["test"]["per_class"]["chair"] == 0  # missing classes are reported as 0
    assert info["splits"]["train"]["points_per_cloud"] == 64
    assert info["rows"][-1] == ["", "total", 9, 5] and len(info["rows"]) == 41
    assert info["notes"] == []


def test_verify_ok_with_checksums(tmp_path: Path, opts: Opts) -> None:
    folder, _ = write_modelnet_h5(tmp_path / "data")
    report = verify(ModelNet40Dataset(opts(tmp_path / "data")))
    assert report.ok and report.format == "h5" and report.root == str(folder)
    names = {f.path for f in report.files}
    assert {"shape_names.txt", "train_files.txt", "ply_data_test0.h5", "ply_data_test_0_id2file.json"} <= names
    row = next(r for r in report.checksum_rows() if r[0] == "ply_data_test0.h5")
    assert row[2] == file_sha256(folder / "ply_data_test0.h5") and row[1] == (folder / row[0]).stat().st_size
    assert any("test counts differ from the official ones" in n for n in report.notes)
    assert any("class(es) have no shapes" in n for n in report.notes)
    assert report.to_dict()["ok"] is True


def test_verify_catches_corruption_after_prepare(tmp_path: Path, opts: Opts) -> None:
    folder, _ = write_modelnet_h5(tmp_path / "data")
    ModelNet40Dataset(opts(folder)).prepare()
    (folder / "ply_data_test0.h5").write_bytes(b"<html>gone</html>")
    report = verify(ModelNet40Dataset(opts(folder)), checksums=False)
    assert not report.ok and "ply_data_test0.h5 is not a valid HDF5 file" in report.problems[0]


def test_verify_reports_layout_problems(tmp_path: Path, opts: Opts) -> None:
    report = verify(ModelNet40Dataset(opts(None)))
    assert not report.ok and "--data-root" in report.problems[0] and report.root is None
    (tmp_path / "empty").mkdir()
    assert "holds no ModelNet layout" in verify(ModelNet40Dataset(opts(tmp_path / "empty"))).problems[0]


def test_verify_reports_a_reader_gap_instead_of_crashing(tmp_path: Path, opts: Opts,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from robench3d.datasets import modelnet_formats

    write_modelnet_resampled(tmp_path / "data")

    def broken(path: Path) -> np.ndarray:
        raise ValueError("a case no reader foresaw")

    monkeypatch.setattr(modelnet_formats, "read_point_text", broken)
    report = verify(ModelNet40Dataset(opts(tmp_path / "data")), checksums=False)
    assert report.problems == ["unexpected ValueError while reading the modelnet40 files: a case no reader foresaw. "
                               "This is a robench3d bug (its readers should explain every bad file): please report "
                               "it with the file that caused it"]


class _Generated(Dataset):
    """A dataset with no source files (like the embedded ``shapes``)."""

    name = "generated"
    variants = ("tiny",)

    def prepare(self) -> PreparedDataset:
        labels = np.array([0, 1])
        split = SplitData(np.zeros((2, 4, 3), np.float32), labels, labels[::-1].copy(), np.array(["a", "b"]))
        return PreparedDataset(self.name, "v1", ("x", "y"), {Split.TEST: split})


def test_verify_generated_dataset(tmp_path: Path) -> None:
    report = verify(_Generated(DatasetOptions(cache_dir=tmp_path, variant="tiny")))
    assert report.ok and report.dataset == "generated:tiny" and report.files == [] and report.notes


def test_detect_format_per_family(tmp_path: Path) -> None:
    write_modelnet_h5(tmp_path / "a")
    write_modelnet_off(tmp_path / "b", top="ModelNet10")
    root, _ = write_scanobjectnn(tmp_path / "c")
    write_modelnet40c(tmp_path / "d")
    write_folder(tmp_path / "e")
    assert detect_format(tmp_path / "a", "modelnet40") == "h5"
    assert detect_format(tmp_path / "b", "modelnet10") == "off"
    assert detect_format(root, "scanobjectnn") == "h5"
    assert detect_format(tmp_path / "d", "modelnet40_c") == "npy"
    assert detect_format(tmp_path / "e", "folder") == "folder"
    with pytest.raises(DataError):
        detect_format(tmp_path / "e", "scanobjectnn")
    with pytest.raises(ConfigError, match="unknown dataset family 'kitti'"):
        detect_format(tmp_path, "kitti")


def test_registered_as_builtin_plugins() -> None:
    from robench3d.plugins import build_plugin_manager, build_registries

    names = set(build_registries(build_plugin_manager(autoload=False)).datasets.names())
    assert {"modelnet40", "modelnet10", "scanobjectnn", "modelnet40_c", "folder", "shapes"} <= names
