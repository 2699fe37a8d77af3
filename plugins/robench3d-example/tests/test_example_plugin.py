"""The example plugin installs through its entry point, and its components run (CONTRIBUTING's template)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from robench3d.cli import main
from robench3d.plugins import build_plugin_manager, build_registries

HERE = Path(__file__).resolve().parents[1]


def test_registered_through_entry_point() -> None:
    pm = build_plugin_manager()
    regs = build_registries(pm)
    assert "example_quantize" in regs.defenses and "example_point_step" in regs.attacks
    assert regs.defenses.owner("example_quantize") == "example (robench3d-example==0.1.0)"


def test_quantize_transform_and_attack_budget() -> None:
    regs = build_registries(build_plugin_manager())
    defense = regs.defenses.get("example_quantize")("coarse")
    pts = torch.rand(2, 32, 3)
    out = defense.transform(pts)
    assert out.shape == pts.shape and torch.allclose(out / 0.05, torch.round(out / 0.05), atol=1e-4)
    attack = regs.attacks.get("example_point_step")("quick")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(96, 4))
    res = attack(model, pts, torch.tensor([0, 1]))
    assert (res.adv_points - pts).norm(dim=2).max() <= 0.02 + 1e-6


def test_runs_in_the_matrix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ROBENCH3D_CACHE", str(tmp_path / "cache"))
    code = main(["run", "--dataset", "shapes:tiny", "--backbone", "pointnet:test", "--num-points", "128", "--n", "8",
                 "--opt", "train.epochs=2", "--defense", "example_quantize", "--attacks", "example_point_step,fgsm",
                 "--output", str(tmp_path / "out"), "-q"])
    assert code == 0
    out = capsys.readouterr().out
    assert "example_quantize" in out and "example_point_step" in out


def test_contributing_snippet_matches_the_plugin() -> None:
    """CONTRIBUTING.md shows the plugin's hook verbatim; keep them in sync."""
    text = (HERE.parents[1] / "CONTRIBUTING.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", text, re.S)
    assert snippet is not None
    body = "\n".join(line[3:] if line.startswith("   ") else line for line in snippet.group(1).splitlines())
    source = (HERE / "robench3d_example" / "plugin.py").read_text()
    assert body.strip().split("\n\n\n")[1] in source
