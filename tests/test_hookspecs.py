"""Every hook is documented with its contract and exercised by a test."""

from __future__ import annotations

import inspect
from pathlib import Path

from robench3d import hookspecs

HOOKS = [n for n, f in vars(hookspecs).items() if n.startswith("robench3d_") and inspect.isfunction(f)]


def test_every_hook_documented() -> None:
    assert len(HOOKS) <= 8, "keep the hook surface small (style.md)"
    for name in HOOKS:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert ":return:" in doc or "ignored" in doc, name
        assert "versionadded" in doc, name
        assert ("first non-None" in doc) == bool(getattr(hookspecs, name).robench3d_spec.get("firstresult")), name


def test_every_hook_named_in_readme_and_used_in_tests() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    tests = "".join(p.read_text() for p in Path(__file__).parent.rglob("*.py") if p.name != "test_hookspecs.py")
    example = Path(__file__).parents[1] / "plugins" / "robench3d-example" / "robench3d_example" / "plugin.py"
    tests += example.read_text()
    for name in HOOKS:
        assert name in readme, f"{name} missing from README"
        assert name in tests, f"{name} has no test"
