"""Fixtures of the dataset-loader tests: no user config leaks in, and options with a private cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from robench3d.datasets.base import DatasetOptions

N = 64


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A developer's ~/.config/robench3d/datasets.toml must not change what the tests see."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))


@pytest.fixture
def opts(tmp_path: Path) -> Callable[..., DatasetOptions]:
    """``opts(root, **fields)``: DatasetOptions with N=64 and a cache under this test's tmp_path."""

    def make(root: Path | None, **kw: Any) -> DatasetOptions:
        kw.setdefault("num_points", N)
        kw.setdefault("cache_dir", tmp_path / "cache")
        return DatasetOptions(root=root, **kw)

    return make
