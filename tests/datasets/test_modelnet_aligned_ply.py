"""ModelNet40's ``aligned_ply`` layout (binary PLY clouds with a ``camera`` element) and the duplicate report and
``test_duplicates`` option every file dataset shares, on tiny fixtures of the official layout."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fixtures import MN10, MN40, aligned_ply_bytes, ply_bytes, write_modelnet_aligned, write_modelnet_h5

from robench3d.cli import main
from robench3d.datasets import modelnet_formats
from robench3d.datasets.base import DatasetOptions
from robench3d.datasets.folder import FolderDataset
from robench3d.datasets.modelnet import ModelNet10Dataset, ModelNet40Dataset, detect_format
from robench3d.datasets.tools import describe, verify
from robench3d.errors import ConfigError, DataError

N = 64
Opts = Callable[..., DatasetOptions]
#: What the fixture's copies make: 3 groups of 2; plant/flower_pot and dresser/night_stand cross classes; the
#: dresser and airplane groups span train and test.
DUPLICATES = {"groups": 3, "clouds": 6, "cross_class": 2, "train_test": 2, "test_with_train_copy": 2}


def _expected(raw: np.ndarray) -> np.ndarray:
    """The protocol's cloud of raw z-up points: (x, y, z) -> (-x, z, y), centred, scaled into the unit sphere."""
    p = np.stack([-raw[:, 0], raw[:, 2], raw[:, 1]], axis=1).astype(np.float64)
    p -= p.mean(axis=0)
    return p / np.linalg.norm(p, axis=1).max()


def _ids(p) -> dict[str, list[str]]:
    return {str(s): sorted(map(str, d.ids)) for s, d in p.splits.items()}


def test_round_trip_detection_frame_and_ids(tmp_path: Path, opts: Opts) -> None:
    folder, raw = write_modelnet_aligned(tmp_path / "data")
    assert detect_format(folder) == "aligned_ply" and detect_format(tmp_path / "data") == "aligned_ply"
    p = ModelNet40Dataset(opts(folder, val_fraction=0.0)).prepare()
    assert p.class_names == MN40 and p.version.startswith("aligned_ply/n64/first/src-")
    assert p.provenance["format"] == "aligned_ply" and p.provenance["test_duplicates"] == "keep"
    test = p.split("test")
    assert sorted(test.ids) == ["airplane_0003", "bathtub_0003", "dresser_0002", "flower_pot_0003",
                                "night_stand_0003", "plant_0002"]  # the official ids, not paths
    assert len(p.split("train")) == 10 and test.points.shape == (6, N, 3) and test.points.dtype == np.float32
    for i, shape_id in enumerate(test.ids):
        assert MN40[test.labels[i]] == str(shape_id).rsplit("_", 1)[0]
        np.testing.assert_allclose(test.points[i], _expected(raw[str(shape_id)]), atol=1e-6)
    # z was the tall axis of every raw cloud: it is y, the protocol's up axis, after loading
    extent = test.points.max(axis=1) - test.points.min(axis=1)
    assert (extent[:, 1] > extent[:, 0]).all() and (extent[:, 1] > extent[:, 2]).all()


@pytest.mark.parametrize("name", ["modelnet40_aligned_1024", "aligned_ModelNet40_pc"])
def test_root_may_be_the_folder_holding_it(tmp_path: Path, opts: Opts, name: str) -> None:
    folder, _ = write_modelnet_aligned(tmp_path / "data", top=name)
    a = ModelNet40Dataset(opts(folder)).prepare()
    b = ModelNet40Dataset(opts(tmp_path / "data")).prepare()
    assert a.version == b.version and b.provenance["root"] == str(folder)
    np.testing.assert_array_equal(a.split("test").points, b.split("test").points)


def test_version_never_matches_the_h5_release(tmp_path: Path, opts: Opts) -> None:
    write_modelnet_aligned(tmp_path / "aligned")
    write_modelnet_h5(tmp_path / "h5")
    a = ModelNet40Dataset(opts(tmp_path / "aligned")).prepare().version
    h = ModelNet40Dataset(opts(tmp_path / "h5")).prepare().version
    assert a.split("/")[0] == "aligned_ply" and h.split("/")[0] == "h5"
    forced = ModelNet40Dataset(opts(tmp_path / "aligned", format="aligned_ply", up_axis="y")).prepare().version
    assert forced.startswith("aligned_ply/up-y/") and forced != a  # another frame is another version


def test_modelnet10_subset(tmp_path: Path, opts: Opts) -> None:
    write_modelnet_aligned(tmp_path / "data")
    p = ModelNet10Dataset(opts(tmp_path / "data", val_fraction=0.0)).prepare()
    assert p.class_names == MN10 and p.version.startswith("aligned_ply/")
    assert sorted(p.split("test").ids) == ["bathtub_0003", "dresser_0002", "night_stand_0003"]
    assert sorted(MN10[c] for c in set(p.split("train").labels)) == ["bathtub", "dresser", "night_stand"]


def test_prepared_clouds_are_cached(tmp_path: Path, opts: Opts, monkeypatch: pytest.MonkeyPatch) -> None:
    write_modelnet_aligned(tmp_path / "data")
    first = ModelNet40Dataset(opts(tmp_path / "data")).prepare()

    def fail(path: Path) -> None:
        raise AssertionError(f"{path} read again")

    monkeypatch.setattr(modelnet_formats, "read_ply", fail)
    again = ModelNet40Dataset(opts(tmp_path / "data")).prepare()
    np.testing.assert_array_equal(first.split("test").points, again.split("test").points)


# ---------------------------------------------------------------------------------------- class folder checks
@pytest.mark.parametrize(("wrong", "fix"), [("night-stand", "rename it to 'night_stand'"),
                                            ("Airplanes", "rename it to 'airplane'"),
                                            ("spaceship", "move it out of")])
def test_wrong_class_folder_is_named_with_the_fix(tmp_path: Path, opts: Opts, wrong: str, fix: str) -> None:
    folder, _ = write_modelnet_aligned(tmp_path / "data")
    target = {"night-stand": "night_stand", "Airplanes": "airplane"}.get(wrong)
    if target:
        (folder / target).rename(folder / wrong)
    else:
        (folder / wrong / "train").mkdir(parents=True)
    with pytest.raises(DataError, match=rf"{wrong} is not a ModelNet class folder.*{fix}"):
        ModelNet40Dataset(opts(folder)).prepare()


def test_missing_class_is_a_partial_copy(tmp_path: Path, opts: Opts) -> None:
    folder, _ = write_modelnet_aligned(tmp_path / "data")
    shutil.rmtree(folder / "bathtub")
    p = ModelNet40Dataset(opts(folder, val_fraction=0.0)).prepare()
    assert describe(p)["splits"]["test"]["per_class"]["bathtub"] == 0
    assert any("class folders are missing" in n and "bathtub" in n for n in p.notes)
    report = verify(ModelNet40Dataset(opts(folder)), checksums=False)
    assert report.ok  # a partial copy is usable; verify says what it lacks
    assert any("class folders are missing" in n and "bathtub" in n for n in report.notes)
    assert any(n.startswith("test counts differ from the official ones") for n in report.notes)
    assert any(n.startswith("train counts differ from the official ones") for n in report.notes)


def test_stray_ply_names_are_skipped_with_a_note(tmp_path: Path, opts: Opts) -> None:
    folder, _ = write_modelnet_aligned(tmp_path / "data")
    shutil.copy(folder / "bathtub" / "train" / "bathtub_0001.ply", folder / "airplane" / "train" / "bed_0001.ply")
    (folder / "airplane" / "train" / "._airplane_0001.ply").write_bytes(b"\x00\x05\x16\x07")  # macOS: silent
    p = ModelNet40Dataset(opts(folder)).prepare()
    assert "bed_0001" not in {i for d in p.splits.values() for i in d.ids}
    assert [n for n in p.notes if "skipped" in n] == [
        "1 .ply file(s) skipped: their names are not <class>_<NNNN>.ply ids of the folder they are in: "
        "airplane/train/bed_0001.ply"]


@pytest.mark.parametrize(("data", "match"), [
    (lambda b: b[:-200], r"airplane_0002\.ply is truncated: the header promises 64 'vertex' rows"),
    (lambda b: b"<html>404</html>", r"airplane_0002\.ply is not a PLY file .*HTML"),
    (lambda b: b[: b.index(b"end_header")], r"airplane_0002\.ply: PLY header has no 'end_header' line"),
])
def test_corrupt_ply_names_the_file(tmp_path: Path, opts: Opts, data: Callable[[bytes], bytes], match: str) -> None:
    folder, _ = write_modelnet_aligned(tmp_path / "data")
    bad = folder / "airplane" / "train" / "airplane_0002.ply"
    bad.write_bytes(data(bad.read_bytes()))
    with pytest.raises(DataError, match=match):
        ModelNet40Dataset(opts(folder)).prepare()
    report = verify(ModelNet40Dataset(opts(folder)), checksums=False)
    assert not report.ok and any("airplane_0002.ply" in p for p in report.problems)
    assert report.duplicates is not None and report.duplicates["groups"] == 3  # the other files were still read


def test_a_mesh_is_not_a_cloud(tmp_path: Path, opts: Opts) -> None:
    folder, _ = write_modelnet_aligned(tmp_path / "data")
    verts = np.random.default_rng(0).normal(size=(N, 3))
    (folder / "airplane" / "train" / "airplane_0002.ply").write_bytes(ply_bytes(verts, np.array([[0, 1, 2]])))
    with pytest.raises(DataError, match=r"airplane_0002\.ply is a mesh \(1 faces\).*--dataset folder"):
        ModelNet40Dataset(opts(folder)).prepare()


# ------------------------------------------------------------------------------------------------- duplicates
def test_duplicate_report(tmp_path: Path, opts: Opts) -> None:
    write_modelnet_aligned(tmp_path / "data")
    dups = describe(ModelNet40Dataset(opts(tmp_path / "data", val_fraction=0.0)).prepare())["duplicates"]
    assert {k: dups[k] for k in DUPLICATES} == DUPLICATES
    # leaks first, cross-class leaks before same-class ones; the pairs of copies are named with split and class
    assert dups["examples"][:2] == ["dresser_0002 (test, dresser) = night_stand_0001 (train, night_stand)",
                                    "airplane_0001 (train, airplane) = airplane_0003 (test, airplane)"]
    assert dups["examples"][2] == "flower_pot_0001 (train, flower_pot) = plant_0001 (train, plant)"
    report = verify(ModelNet40Dataset(opts(tmp_path / "data", val_fraction=0.0)), checksums=False)
    assert report.ok and report.duplicates == dups


def test_identity_is_the_exact_points_not_the_file(tmp_path: Path, opts: Opts) -> None:
    """Same points with another camera row are copies; points one float32 ulp apart are not."""
    folder, raw = write_modelnet_aligned(tmp_path / "data")
    nudged = raw["airplane_0001"].copy()
    nudged[5, 2] = np.nextafter(nudged[5, 2], np.float32(1))
    (folder / "airplane" / "test" / "airplane_0003.ply").write_bytes(aligned_ply_bytes(nudged))
    dups = describe(ModelNet40Dataset(opts(folder)).prepare())["duplicates"]
    assert dups["groups"] == 2 and dups["test_with_train_copy"] == 1


def test_drop_test_copies(tmp_path: Path, opts: Opts) -> None:
    write_modelnet_aligned(tmp_path / "data")
    keep = ModelNet40Dataset(opts(tmp_path / "data")).prepare()
    drop = ModelNet40Dataset(opts(tmp_path / "data", extra={"test_duplicates": "drop"})).prepare()
    assert len(drop.split("test")) == len(keep.split("test")) - 2
    assert sorted(set(keep.split("test").ids) - set(drop.split("test").ids)) == ["airplane_0003", "dresser_0002"]
    np.testing.assert_array_equal(drop.split("train").points, keep.split("train").points)  # train untouched
    assert "testdup-drop" in drop.version and "testdup-drop" not in keep.version
    assert drop.version.replace("/testdup-drop", "") == keep.version  # only that tag differs
    assert drop.provenance["test_duplicates"] == "drop (2 test clouds removed)"
    assert drop.provenance["cache"] == keep.provenance["cache"]  # one prepared cache for both
    assert any(n.startswith("test_duplicates=drop: 2 test cloud(s)") for n in drop.notes)
    assert describe(drop)["duplicates"]["test_with_train_copy"] == 0
    assert len(ModelNet40Dataset(opts(tmp_path / "data")).prepare().split("test")) == 6  # keep again: all back


def test_drop_trains_the_same_models_as_keep(tmp_path: Path, opts: Opts) -> None:
    """Only test is filtered, so the data models train on keeps keep's version (and every cached artifact)."""
    from robench3d.config import RunConfig
    from robench3d.evaluation.components import training_data

    write_modelnet_aligned(tmp_path / "data")
    keep = ModelNet40Dataset(opts(tmp_path / "data")).prepare()
    drop = ModelNet40Dataset(opts(tmp_path / "data", extra={"test_duplicates": "drop"})).prepare()
    train = training_data(None, RunConfig(cache_dir=tmp_path / "cache"), drop)  # type: ignore[arg-type]
    assert train is not None and train.version == keep.version and drop.version != keep.version
    np.testing.assert_array_equal(train.split("train").points, keep.split("train").points)
    assert training_data(None, RunConfig(cache_dir=tmp_path / "cache"), keep) is keep  # type: ignore[arg-type]


def test_bad_test_duplicates_value(tmp_path: Path, opts: Opts) -> None:
    with pytest.raises(ConfigError, match=r"test_duplicates.*'skip' is not valid; choose one of keep, drop"):
        ModelNet40Dataset(opts(tmp_path, extra={"test_duplicates": "skip"}))


def test_duplicates_of_another_file_dataset(tmp_path: Path, opts: Opts) -> None:
    """The report and the option live in the shared loader: the same tree read as a ``folder`` dataset."""
    folder, _ = write_modelnet_aligned(tmp_path / "data")
    p = FolderDataset(opts(folder, extra={"up_axis": "z", "test_duplicates": "drop"})).prepare()
    assert "testdup-drop" in p.version and len(p.split("test")) == 4
    dups = describe(FolderDataset(opts(folder, extra={"up_axis": "z"})).prepare())["duplicates"]
    assert {k: dups[k] for k in DUPLICATES} == DUPLICATES


def test_cache_without_digests_is_rebuilt(tmp_path: Path, opts: Opts) -> None:
    """A prepared file written before clouds carried digests is rebuilt once, so duplicates can be reported."""
    write_modelnet_aligned(tmp_path / "data")
    p = ModelNet40Dataset(opts(tmp_path / "data")).prepare()
    path = Path(p.provenance["cache"])
    with np.load(path) as z:
        old = {k: z[k] for k in z.files if not k.endswith("/meta/digest")}
    np.savez(path, **old)
    again = ModelNet40Dataset(opts(tmp_path / "data")).prepare()
    assert describe(again)["duplicates"]["groups"] == 3
    with np.load(path) as z:
        assert "test/meta/digest" in z.files


def test_cli_info_and_verify_print_duplicates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_modelnet_aligned(tmp_path / "data")
    common = ["--dataset", "modelnet40", "--data-root", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "c"),
              "--num-points", "64", "-q"]
    assert main(["data", "info", *common, "--no-confusion"]) == 0
    out = capsys.readouterr().out
    assert "version aligned_ply/n64/first/src-" in out
    assert ("duplicates: 3 group(s) of byte-identical clouds (6 clouds); 2 cross classes; 2 span train/val and "
            "test, so 2 test cloud(s) have an identical copy in train/val") in out
    assert "duplicates: e.g. dresser_0002 (test, dresser) = night_stand_0001 (train, night_stand)" in out
    assert main(["data", "verify", *common]) == 0
    out = capsys.readouterr().out
    assert "format aligned_ply" in out and "airplane/train/airplane_0001.ply" in out
    assert "duplicates: 3 group(s)" in out and out.rstrip().endswith("ok")
    assert main(["data", "info", *common, "--no-confusion", "--opt", "dataset.test_duplicates=drop"]) == 0
    out = capsys.readouterr().out
    assert "/testdup-drop/" in out and "note: test_duplicates=drop: 2 test cloud(s)" in out
