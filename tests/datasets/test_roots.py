"""Data-root resolution: --data-root, then the dataset's env var, then the TOML config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from robench3d.datasets.roots import ENV_CONFIG, config_path, configured_roots, resolve_root
from robench3d.errors import ConfigError, DataError

ENV = "ROBENCH3D_MODELNET40_ROOT"


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    out = {k: tmp_path / k for k in ("opt", "env", "cfg")}
    for d in out.values():
        d.mkdir()
    return out


def _config(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def test_precedence(dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config(tmp_path / "robench3d.toml", f'[datasets]\nmodelnet40 = "{dirs["cfg"]}"\n')
    monkeypatch.setenv(ENV_CONFIG, str(cfg))
    assert resolve_root("modelnet40", None, ENV) == dirs["cfg"]
    monkeypatch.setenv(ENV, str(dirs["env"]))
    assert resolve_root("modelnet40", None, ENV) == dirs["env"]
    assert resolve_root("modelnet40", dirs["opt"], ENV) == dirs["opt"]


def test_xdg_config_and_relative_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_path() == tmp_path / "xdg" / "robench3d" / "datasets.toml"
    (tmp_path / "xdg" / "robench3d" / "data").mkdir(parents=True)
    _config(config_path(), '[datasets]\nscanobjectnn = "data"\n')
    assert resolve_root("scanobjectnn", None, None) == tmp_path / "xdg" / "robench3d" / "data"
    assert configured_roots() == {"scanobjectnn": tmp_path / "xdg" / "robench3d" / "data"}


def test_no_root_names_all_three_ways(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_root("modelnet40", None, ENV)
    msg = str(info.value)
    assert "--data-root" in msg and ENV in msg and "datasets.toml" in msg and "[datasets]" in msg
    assert not isinstance(info.value, DataError)


def test_missing_root_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "gone"))
    with pytest.raises(DataError, match=rf"gone for dataset 'modelnet40' \(from \${ENV}\) does not exist"):
        resolve_root("modelnet40", None, ENV)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        resolve_root("modelnet40", tmp_path / "file", ENV)


@pytest.mark.parametrize(("body", "match"), [
    ("[datasets\nmodelnet40 = 1", r"robench3d\.toml is not valid TOML"),
    ("datasets = 3\n", r"robench3d\.toml: 'datasets' must be a table"),
    ("[datasets]\nmodelnet40 = 3\n", r"robench3d\.toml: \[datasets\] modelnet40 must be a path string"),
])
def test_bad_config_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, match: str) -> None:
    monkeypatch.setenv(ENV_CONFIG, str(_config(tmp_path / "robench3d.toml", body)))
    with pytest.raises(ConfigError, match=match):
        resolve_root("modelnet40", None, ENV)


def test_explicit_config_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_CONFIG, str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match=rf"nope\.toml \(from \${ENV_CONFIG}\) does not exist"):
        resolve_root("modelnet40", None, ENV)


def test_loaders_use_the_env_var_and_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fixtures import write_modelnet40c

    from robench3d.datasets.base import DatasetOptions
    from robench3d.datasets.modelnet40c import ModelNet40CDataset

    write_modelnet40c(tmp_path / "data")
    monkeypatch.setenv("ROBENCH3D_MODELNET40_C_ROOT", str(tmp_path / "data"))
    p = ModelNet40CDataset(DatasetOptions(cache_dir=tmp_path / "c", variant="gaussian_1")).prepare()
    assert p.provenance["root"] == str(tmp_path / "data" / "modelnet40_c")
    monkeypatch.delenv("ROBENCH3D_MODELNET40_C_ROOT")
    monkeypatch.setenv(ENV_CONFIG, str(_config(tmp_path / "cfg.toml", '[datasets]\nmodelnet40_c = "data"\n')))
    p = ModelNet40CDataset(DatasetOptions(cache_dir=tmp_path / "c", variant="cutout_5")).prepare()
    assert p.provenance["root"] == str(tmp_path / "data" / "modelnet40_c")
