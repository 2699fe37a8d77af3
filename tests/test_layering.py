"""Imports flow one way through the layers of style.md section 5.1 (checked with ast, no extra dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).parents[1] / "robench3d"

LAYER = {
    "errors": -1, "norms": 0, "params": 0, "pointops": 0, "schema": 1, "hookspecs": 0, "cache": 0, "artifacts": 1,
    "registry": 1, "config": 1, "progress": 0,
    "datasets": 2, "training": 3.5,
    "backbones": 3, "defenses": 3, "teachers": 3, "context": 2, "text": 2,
    "attacks": 4,
    "evaluation": 5,
    "leaderboard": 6,
    "report": 6.5,
    "builtin": 7, "plugins": 7, "__init__": 7,
    "cli_commands": 8, "cli": 9, "__main__": 10,
}
# training trains backbones, so it sits above them and below attacks; defenses may use backbones.base for types.
ALLOWED = {("defenses", "backbones")}


def _group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _runtime_imports(tree: ast.Module) -> list[ast.ImportFrom]:
    """ImportFrom nodes outside ``if TYPE_CHECKING:`` blocks (type-only imports may point anywhere)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    return [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and id(n) not in skip]


def test_imports_flow_one_way() -> None:
    problems = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        mod = ".".join(rel.parts)
        src = _group(mod if not mod.endswith("__init__") or mod == "robench3d.__init__" else mod + ".x")
        if mod == "robench3d.__init__":
            src = "__init__"
        for node in _runtime_imports(ast.parse(path.read_text())):
            if node.module and node.module.startswith("robench3d."):
                dst = _group(node.module)
            elif node.module == "robench3d" and src != "__init__":
                names = [a.name for a in node.names]
                dst = _group(f"robench3d.{names[0]}") if all((PKG / f"{n}.py").exists() for n in names) else "__init__"
            else:
                continue
            if src == dst or (src, dst) in ALLOWED:
                continue
            if LAYER.get(dst, 99) >= LAYER.get(src, 0):
                problems.append(f"{mod} imports {node.module}")
    assert not problems, problems
