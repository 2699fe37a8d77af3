"""``robench3d run --dataset <each> --data-root <fixture>`` end to end: train where a train split exists,
evaluate only (with a model trained on the dataset it declares) otherwise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures import write_folder, write_modelnet40c, write_modelnet_h5, write_modelnet_off, write_scanobjectnn

from robench3d.cli import main
from robench3d.evaluation.results import read_table

RUN = ["--backbone", "pointnet:test", "--num-points", "64", "--opt", "train.epochs=1", "--attacks", "fgsm",
       "--setting", "oblivious,adaptive", "-q"]

CASES: list[tuple[str, Callable[[Path], Path]]] = [
    ("modelnet40", lambda r: write_modelnet_h5(r)[0]),
    ("modelnet10", lambda r: write_modelnet_off(r, counts={"bathtub": (2, 1), "desk": (2, 1)}, top="ModelNet10")),
    ("scanobjectnn", lambda r: write_scanobjectnn(r)[0]),
    ("folder", lambda r: write_folder(r)[0]),
]


@pytest.mark.parametrize(("dataset", "write"), CASES, ids=[c[0] for c in CASES])
def test_run_trains_and_evaluates(tmp_path: Path, dataset: str, write: Callable[[Path], Path]) -> None:
    root = write(tmp_path / "data")
    out = tmp_path / "out"
    rc = main(["run", "--dataset", dataset, "--data-root", str(root), "--cache-dir", str(tmp_path / "c"),
               "--output", str(out), *RUN])
    assert rc == 0
    rows = read_table(out / "results.csv")
    assert set(rows["dataset"]) == {dataset} and (rows["status"] == "ok").all() and len(rows) == 2
    assert rows["weights_provenance"].str.startswith(f"trained here on {dataset}@").all()


def test_run_test_only_corruption_set(tmp_path: Path) -> None:
    h5 = write_modelnet_h5(tmp_path / "mn40")[0]
    _, labels = write_modelnet40c(tmp_path / "c40")
    out = tmp_path / "out"
    rc = main(["run", "--dataset", "modelnet40_c:cutout_5", "--data-root", str(tmp_path / "c40"),
               "--train-dataset", "modelnet40", "--train-data-root", str(h5), "--cache-dir", str(tmp_path / "c"),
               "--output", str(out), *RUN])
    assert rc == 0
    rows = read_table(out / "results.csv")
    assert (rows["n_examples"] == len(labels)).all()
    assert rows["data_fields"].str.contains('"corruption": "cutout"').all()
    assert rows["weights_provenance"].str.startswith("trained here on modelnet40@").all()


def test_test_only_data_without_a_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_modelnet40c(tmp_path / "c40")
    rc = main(["run", "--dataset", "modelnet40_c:gaussian_1", "--data-root", str(tmp_path / "c40"),
               "--cache-dir", str(tmp_path / "c"), "--output", str(tmp_path / "o"), *RUN])
    assert rc == 2
    assert "no train split" in capsys.readouterr().err
