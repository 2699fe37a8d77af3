"""ModelNet40-C loader: per-corruption files with their own N, shared (M, 1) uint8 labels, row fields."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fixtures import MN40, write_modelnet40c

from robench3d.datasets.base import DatasetOptions
from robench3d.datasets.modelnet40c import ModelNet40CDataset, detect_format, parse_variant
from robench3d.errors import ConfigError, DataError

Opts = Callable[..., DatasetOptions]


@pytest.mark.parametrize(("variant", "n", "fields"), [
    ("gaussian_1", 1024, {"corruption": "gaussian", "severity": 1}),
    ("cutout_5", 724, {"corruption": "cutout", "severity": 5}),
    ("distortion_rbf_inv_2", 1024, {"corruption": "distortion_rbf_inv", "severity": 2}),
])
def test_round_trip(tmp_path: Path, opts: Opts, variant: str, n: int, fields: dict) -> None:
    folder, labels = write_modelnet40c(tmp_path / "data")
    p = ModelNet40CDataset(opts(tmp_path / "data", variant=variant, num_points=None)).prepare()
    assert p.trained_on == "modelnet40" and p.row_fields == fields and p.class_names == MN40
    assert p.version.startswith(f"npy/{variant}/n{n}/first/src-")
    assert list(p.splits) == ["test"] and not p.has("train") and not p.has("val")
    test = p.split("test")
    assert test.points.shape == (6, n, 3)
    np.testing.assert_array_equal(test.labels, labels)
    # not re-normalised: the stored corrupted clouds are kept as they are
    np.testing.assert_array_equal(test.points, np.load(folder / f"data_{variant}.npy"))
    assert sum(len(b.ids) for b in p.batches("test", 4)) == 6


def test_fewer_points_and_renormalising(tmp_path: Path, opts: Opts) -> None:
    write_modelnet40c(tmp_path / "data")
    p = ModelNet40CDataset(opts(tmp_path / "data", variant="cutout_5", num_points=512)).prepare()
    assert p.split("test").points.shape == (6, 512, 3)
    q = ModelNet40CDataset(opts(tmp_path / "data", variant="cutout_5", extra={"normalize": True})).prepare()
    assert "/norm/" in q.version
    np.testing.assert_allclose(np.linalg.norm(q.split("test").points, axis=-1).max(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ConfigError, match=r"data_cutout_5\.npy has 724 points per cloud; --num-points 1024"):
        ModelNet40CDataset(opts(tmp_path / "data", variant="cutout_5", num_points=1024)).prepare()


def test_variant_needed_and_valid(tmp_path: Path, opts: Opts) -> None:
    with pytest.raises(ConfigError, match="needs a variant <corruption>_<severity>, e.g. --dataset modelnet40_c"):
        ModelNet40CDataset(opts(tmp_path))
    with pytest.raises(ConfigError, match="no variant 'gaussian_9'"):
        ModelNet40CDataset(opts(tmp_path, variant="gaussian_9"))
    assert parse_variant("original") == ("original", 0)


def test_missing_variant_file_lists_present(tmp_path: Path, opts: Opts) -> None:
    write_modelnet40c(tmp_path / "data")
    with pytest.raises(DataError, match=r"data_lidar_1\.npy does not exist; variants present .*cutout_5, "
                                         r"distortion_rbf_inv_2, gaussian_1"):
        ModelNet40CDataset(opts(tmp_path / "data", variant="lidar_1")).prepare()


def test_label_length_mismatch(tmp_path: Path, opts: Opts) -> None:
    folder, _ = write_modelnet40c(tmp_path / "data")
    np.save(folder / "label.npy", np.zeros((5, 1), np.uint8))
    with pytest.raises(DataError, match=r"data_gaussian_1\.npy and .*label\.npy: 6 clouds but 5 labels"):
        ModelNet40CDataset(opts(folder, variant="gaussian_1")).prepare()


def test_labels_out_of_range(tmp_path: Path, opts: Opts) -> None:
    folder, _ = write_modelnet40c(tmp_path / "data")
    np.save(folder / "label.npy", np.full((6, 1), 40, np.uint8))
    with pytest.raises(DataError, match=r"label\.npy: label 40 at row 0 is out of range"):
        ModelNet40CDataset(opts(folder, variant="gaussian_1")).prepare()


def test_html_npy(tmp_path: Path, opts: Opts) -> None:
    folder, _ = write_modelnet40c(tmp_path / "data")
    (folder / "data_gaussian_1.npy").write_bytes(b"<html><body>403 Forbidden</body></html>")
    with pytest.raises(DataError, match=r"data_gaussian_1\.npy is not a valid \.npy file: it is an HTML"):
        ModelNet40CDataset(opts(folder, variant="gaussian_1")).prepare()


def test_wrong_shape(tmp_path: Path, opts: Opts) -> None:
    folder, _ = write_modelnet40c(tmp_path / "data")
    np.save(folder / "data_gaussian_1.npy", np.zeros((6, 1024), np.float32))
    with pytest.raises(DataError, match=r"data_gaussian_1\.npy: expected points of shape \(M, N, 3\), got \(6, 1024\)"):
        ModelNet40CDataset(opts(folder, variant="gaussian_1")).prepare()


def test_detect(tmp_path: Path) -> None:
    write_modelnet40c(tmp_path / "data")
    assert detect_format(tmp_path / "data") == "npy" == detect_format(tmp_path / "data" / "modelnet40_c")
    assert detect_format(tmp_path) == "npy"  # data/modelnet40_c/ below the root, as in the ModelNet40-C repo
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty holds no ModelNet40-C files"):
        detect_format(tmp_path / "empty")
