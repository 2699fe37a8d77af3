"""Make throw-away plugin distributions on sys.path (a dist-info folder with an entry point), as pip would."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

#: CLI arguments of the tiny end-to-end setting (seconds on a CPU).
TINY_RUN = ["--dataset", "shapes:tiny", "--backbone", "pointnet:test", "--num-points", "128", "--n", "16",
            "--opt", "train.epochs=4", "-q"]


def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dist: str, module: str, source: str,
              entry: str | None = None) -> None:
    """Write ``module.py`` and ``<dist>-0.1.dist-info`` with a ``robench3d`` entry point naming the module."""
    root = tmp_path / "site"
    root.mkdir(exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[robench3d]\n{entry or module} = {module}\n")
    monkeypatch.syspath_prepend(str(root))
    sys.modules.pop(module, None)
