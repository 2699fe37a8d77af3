"""Every registered backbone trains (``robench3d train``) and evaluates (``robench3d run``) through the CLI, on the
embedded default and on a ModelNet40 h5 fixture in the real layout (the ``test`` configuration: seconds each)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from robench3d.cli import main
from robench3d.evaluation.results import read_table
from robench3d.plugins import build_plugin_manager, build_registries

BACKBONES = sorted(build_registries(build_plugin_manager()).backbones.names())
COMMON = ["--num-points", "64", "--opt", "train.epochs=1", "-q"]


def _fixtures() -> ModuleType:
    """``tests/datasets/fixtures.py`` (writers of the real dataset layouts), loaded by path."""
    spec = importlib.util.spec_from_file_location("_r3_dataset_fixtures",
                                                  Path(__file__).parents[1] / "datasets" / "fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_five_builtin_backbones_are_covered() -> None:
    assert {"pointnet", "pointnet2_ssg", "pointnet2_msg", "dgcnn", "uni3d"} <= set(BACKBONES)


@pytest.mark.parametrize("arch", BACKBONES)
def test_trains_and_evaluates_through_the_cli(arch: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = ["--cache-dir", str(tmp_path / "cache")]
    h5 = _fixtures().write_modelnet_h5(tmp_path / "data")[0]
    assert main(["train", "--backbone", f"{arch}:test", "--dataset", "shapes:tiny", *cache, *COMMON]) == 0
    assert (tmp_path / "cache" / "backbones" / arch).is_dir()
    for dataset, root in (("shapes:tiny", []), ("modelnet40", ["--data-root", str(h5)])):
        out = tmp_path / f"out-{dataset.split(':')[0]}"
        rc = main(["run", "--backbone", f"{arch}:test", "--dataset", dataset, *root, "--attacks", "fgsm",
                   "--setting", "oblivious", "--output", str(out), *cache, *COMMON])
        assert rc == 0, capsys.readouterr().err
        row = read_table(out / "results.csv").iloc[0]
        assert row["status"] == "ok" and row["backbone"] == f"{arch}:test"
        assert str(row["weights_provenance"]).startswith(f"trained here on {dataset.split(':')[0]}@")
        assert 0.0 <= row["robust_acc"] <= 1.0 and 0.0 <= row["clean_acc"] <= 1.0
