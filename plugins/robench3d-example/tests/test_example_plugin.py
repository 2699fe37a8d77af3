"""The example plugin installs through its entry point, and its components run (CONTRIBUTING's template)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from robench3d import Budget, Norm, Setting
from robench3d.cli import main
from robench3d.plugins import build_plugin_manager, build_registries
from robench3d_example.point_step import PointStep

TINY = ["--dataset", "shapes:tiny", "--backbone", "example_tinynet:test", "--num-points", "128", "--n", "8", "-q"]


def test_registered_through_entry_point() -> None:
    regs = build_registries(build_plugin_manager())
    assert "example_quantize" in regs.defenses and "example_point_step" in regs.attacks
    assert "example_tinynet" in regs.backbones
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


def test_declarations() -> None:
    assert PointStep.supported_settings == frozenset({Setting.OBLIVIOUS, Setting.ADAPTIVE, Setting.TRANSFER})
    assert PointStep.specs()["eps"].maximum == 1
    regs = build_registries(build_plugin_manager())
    quantize = regs.defenses.get("example_quantize")
    assert (quantize.differentiable, quantize.randomized, quantize.bpda) == (False, False, "pointwise")


def test_runs_in_the_matrix(cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", *TINY, "--defense", "example_quantize", "--attacks", "example_point_step,fgsm",
                 "--setting", "oblivious,adaptive,query", "--output", str(tmp_path / "out")])
    assert code == 0
    assert "example_quantize" in capsys.readouterr().out
    rows = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(rows["defense"]) == {"none", "example_quantize"}  # the undefended reference is always there
    rows = rows[rows["defense"] == "example_quantize"].set_index(["attack", "setting"])
    # Non-differentiable, deterministic, pointwise: BPDA hands each point's gradient back to the same point.
    assert rows.loc[("example_point_step", "adaptive"), "victim"] == "bpda:pointwise"
    assert rows.loc[("example_point_step", "oblivious"), "victim"] == "undefended"
    skipped = rows.loc[("example_point_step", "query")]
    assert skipped["status"] == "skipped" and "does not support the query setting" in skipped["reason"]


def test_parameters_are_checked_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    code = main(["run", *TINY, "--attacks", "example_point_step", "--opt", "attack.example_point_step.eps=2",
                 "--cache-dir", str(cache), "--output", str(tmp_path / "out")])
    assert code == 2
    assert "parameter 'eps': 2 is out of range; give a number > 0 and <= 1" in capsys.readouterr().err
    assert not (cache / "backbones").exists()  # refused before anything trained


def test_an_attack_over_its_budget_fails_its_own_cells(cache: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # A buggy attack: it promises half the eps it uses. The budget check after every call catches it.
    monkeypatch.setattr(PointStep, "budget", lambda self, n: Budget(Norm.L2_POINT, float(self.params["eps"]) / 2))
    code = main(["run", *TINY, "--attacks", "example_point_step,fgsm", "--setting", "oblivious",
                 "--force", "--output", str(tmp_path / "out")])  # --force: no adversarial clouds from the cache
    assert code == 1
    rows = pd.read_csv(tmp_path / "out" / "results.csv").set_index("attack")
    assert rows.loc["fgsm", "status"] == "ok"
    failed = rows.loc["example_point_step"]
    assert failed["status"] == "error"
    assert "plugin example (robench3d-example==0.1.0)" in failed["reason"]
    assert "exceeded its budget" in failed["reason"]


@pytest.mark.parametrize("argv", [["-p", "no:example", "list", "backbones"], ["list", "backbones", "-p", "no:example"]])
def test_blocked_before_or_after_the_subcommand(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    assert "example_tinynet" not in capsys.readouterr().out


def test_autoload_off_drops_first_party_plugins_and_p_loads_one(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ROBENCH3D_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "example" not in out and "baselines" not in out and "robench3d.builtin.attacks" in out
    assert main(["-p", "example", "plugins"]) == 0
    out = capsys.readouterr().out
    assert "robench3d-example" in out and "baselines" not in out
