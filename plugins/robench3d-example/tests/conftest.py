"""Fixtures of the example plugin's tests: a clean environment and one cache per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ROBENCH3D_* variable leaks in from the shell (a set ROBENCH3D_DISABLE_PLUGIN_AUTOLOAD would hide us)."""
    for key in list(os.environ):
        if key.startswith("ROBENCH3D_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session, so the tiny backbone trains once and every CLI test reuses it."""
    return tmp_path_factory.mktemp("example-cache")


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, session_cache: Path) -> Path:
    """Point ROBENCH3D_CACHE at the session cache."""
    monkeypatch.setenv("ROBENCH3D_CACHE", str(session_cache))
    return session_cache
