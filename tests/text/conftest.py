"""Shared fixture of the text-encoder tests: the bundled MiniLM, loaded once per session."""

from __future__ import annotations

import pytest

from robench3d.text import MiniLMTextEncoder


@pytest.fixture(scope="session")
def minilm() -> MiniLMTextEncoder:
    """The bundled MiniLM, loaded once (~2 s)."""
    return MiniLMTextEncoder()
