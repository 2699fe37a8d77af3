"""Shared fixtures: a clean environment per test, an isolated cache, and a tiny trained setting."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No robench3d variables leak in from the developer's shell; hubs are never contacted."""
    for key in list(os.environ):
        if key.startswith("ROBENCH3D_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch

    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache shared by the tests of one session, so tiny models are trained once."""
    return tmp_path_factory.mktemp("robench3d-cache")


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, session_cache: Path) -> Path:
    """Point ROBENCH3D_CACHE at the session cache."""
    monkeypatch.setenv("ROBENCH3D_CACHE", str(session_cache))
    return session_cache
