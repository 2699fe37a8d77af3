"""``robench3d data info|prepare`` on each real-format fixture, through the CLI's ``main``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures import write_folder, write_modelnet40c, write_modelnet_h5, write_modelnet_resampled, write_scanobjectnn

from robench3d.cli import main

# ``data info`` trains a model for its confusion table when the data has train and test: keep it tiny.
TINY = ["--num-points", "64", "--backbone", "pointnet:test", "--opt", "train.epochs=1", "-q"]


def _h5(root: Path) -> Path:
    write_modelnet_h5(root)
    return root


def _resampled(root: Path) -> Path:
    write_modelnet_resampled(root)
    return root


def _scanobjectnn(root: Path) -> Path:
    return write_scanobjectnn(root)[0]


def _modelnet40c(root: Path) -> Path:
    write_modelnet40c(root)
    return root


def _folder(root: Path) -> Path:
    return write_folder(root)[0]


CASES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("modelnet40", _h5, "version h5/n64/first/"),
    ("modelnet10", _resampled, "version normal_resampled/n64/first/"),
    ("scanobjectnn", _scanobjectnn, "version h5/PB_T50_RS/main_split/mask-keep/n64/first/"),
    ("modelnet40_c:cutout_5", _modelnet40c, "version npy/cutout_5/n64/first/"),
    ("folder", _folder, "version folder/up-y/"),
]


@pytest.mark.parametrize(("dataset", "write", "version"), CASES, ids=[c[0] for c in CASES])
def test_data_info(tmp_path: Path, capsys: pytest.CaptureFixture[str], dataset: str,
                   write: Callable[[Path], Path], version: str) -> None:
    root = write(tmp_path / "data")
    rc = main(["data", "info", "--dataset", dataset, "--data-root", str(root), "--cache-dir", str(tmp_path / "c"),
               *TINY])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"dataset {dataset.split(':')[0]}" in out and version in out and "total" in out


def test_data_prepare_with_dataset_opts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _scanobjectnn(tmp_path / "data")
    rc = main(["data", "prepare", "--dataset", "scanobjectnn:obj_bg", "--data-root", str(root), "--cache-dir",
               str(tmp_path / "c"), "--num-points", "64", "--opt", "dataset.mask=drop", "-q"])
    assert rc == 2  # only the PB_T50_RS files exist
    assert "no training_objectdataset.h5 or test_objectdataset.h5 for variant OBJ_BG" in capsys.readouterr().err
    rc = main(["data", "prepare", "--dataset", "scanobjectnn", "--data-root", str(root), "--cache-dir",
               str(tmp_path / "c"), "--num-points", "64", "--opt", "dataset.mask=drop",
               "--opt", "dataset.sampling=fps", "-q"])
    assert rc == 0 and "mask-drop/n64/fps/" in capsys.readouterr().out


def test_data_errors_exit_2_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, _ = write_modelnet_h5(tmp_path / "data")
    (folder / "ply_data_test0.h5").write_bytes(b"<!DOCTYPE html><html>404</html>")
    rc = main(["data", "prepare", "--dataset", "modelnet40", "--data-root", str(folder), "--cache-dir",
               str(tmp_path / "c"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "ply_data_test0.h5 is not a valid HDF5 file: it is an HTML" in err
    rc = main(["data", "info", "--dataset", "modelnet40", "--cache-dir", str(tmp_path / "c"), "-q"])
    assert rc == 2 and "ROBENCH3D_MODELNET40_ROOT" in capsys.readouterr().err
