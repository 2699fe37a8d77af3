"""Shared fixtures of the backbone tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from robench3d.pointops import single_thread


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small models run fastest (and most reproducibly) on one thread; restore the count afterwards."""
    with single_thread():
        yield
