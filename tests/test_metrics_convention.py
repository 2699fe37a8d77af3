"""Robust accuracy and attack success rate as the field defines them, checked end to end through run_matrix.

A stub defense is right on the clean input of every other test cloud only, and right on every cloud the stub
attack has shifted: under the old convention the shifted clean-wrong clouds counted as robust (robust 100% above
clean 50%); under RobustBench's they do not (robust 50%, attack success 0% of the clean-correct clouds).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from robench3d import Attack, AttackResult, Budget, DefendedModel, Defense, Norm, hookimpl
from robench3d.config import RunConfig
from robench3d.evaluation.matrix import run_matrix
from robench3d.norms import Setting, Split
from robench3d.plugins import build_plugin_manager, build_registries

SHIFT = 0.01


class _Oracle(nn.Module):
    """Knows the test clouds: right on even-indexed clean clouds and on every cloud shifted along x."""

    def __init__(self, points: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("clouds", torch.from_numpy(points))
        self.labels = torch.from_numpy(labels)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifted = x[..., 0].mean(dim=1) > SHIFT / 2
        base = x - x.mean(dim=1, keepdim=True) * shifted.view(-1, 1, 1)
        idx = ((base[:, None] - self.clouds[None, :, : x.shape[1]]) ** 2).sum((2, 3)).argmin(dim=1)
        right = shifted | (idx % 2 == 0)
        pred = torch.where(right, self.labels[idx], (self.labels[idx] + 1) % self.num_classes)
        return nn.functional.one_hot(pred, self.num_classes).float() * 10 + 0 * x.sum((1, 2), keepdim=False)[:, None]


class OracleDefense(Defense):
    """Defenses never see the test split (their context holds train/val only): the test hands it over."""

    name: ClassVar[str] = "oracle"
    test_split: ClassVar[Any] = None

    def build(self, ctx: Any) -> DefendedModel:
        assert not ctx.dataset.has(Split.TEST)
        test = self.test_split
        return DefendedModel(_Oracle(test.points, test.labels, ctx.dataset.num_classes), backbone=ctx.backbone)


class Shift(Attack):
    name: ClassVar[str] = "shift"
    norm: ClassVar[Norm] = Norm.LINF
    presets: ClassVar[dict[str, dict[str, Any]]] = {p: {"eps": SHIFT, "targeted": False}
                                                    for p in ("standard", "if-defense", "mrpd-paper", "quick")}

    def budget(self, num_points: int) -> Budget:
        return Budget(Norm.LINF, float(self.params["eps"]))

    def perturb(self, victim: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, labels: torch.Tensor,
                targets: torch.Tensor | None) -> AttackResult:
        return AttackResult(points + torch.tensor([SHIFT, 0.0, 0.0]))


def _plugin(log: list[Any]) -> types.ModuleType:
    mod = types.ModuleType("metric_plugin")
    mod.robench3d_register_defenses = hookimpl(lambda: [OracleDefense])  # type: ignore[attr-defined]
    mod.robench3d_register_attacks = hookimpl(lambda: [Shift])  # type: ignore[attr-defined]

    @hookimpl
    def robench3d_run_finished(results: pd.DataFrame, config: RunConfig) -> None:
        log.append((results, config))

    mod.robench3d_run_finished = robench3d_run_finished  # type: ignore[attr-defined]
    return mod


def test_robust_requires_clean_correct_and_asr_counts_clean_correct_only(tmp_path: Path, cache: Path) -> None:
    log: list[Any] = []
    pm = build_plugin_manager(autoload=False, extra=[_plugin(log)])
    registries = build_registries(pm)
    config = RunConfig(cache_dir=cache, output_dir=tmp_path / "out", dataset="shapes:tiny", num_points=128,
                       backbones=("pointnet:test",), defenses=("oracle",), attacks="shift",
                       settings=(Setting.OBLIVIOUS,), preset="quick", n_examples=16,
                       opts={"train": {"epochs": 4}})
    from robench3d.evaluation.components import prepare_dataset

    OracleDefense.test_split = prepare_dataset(registries, "shapes:tiny", cache_dir=cache,
                                               num_points=128).split(Split.TEST)
    result = run_matrix(config, registries)
    # the undefended reference is reported beside the requested defense (a generic rule of every run)
    assert [r["defense"] for r in result.rows] == ["none", "oracle"]
    row = result.rows[1]
    assert row["status"] == "ok"
    assert row["clean_acc"] == pytest.approx(0.5)
    assert row["robust_acc"] == pytest.approx(0.5)  # the 8 clean-wrong clouds the shift "fixes" do not count
    assert row["robust_acc"] <= row["clean_acc"]
    assert row["attack_success_rate"] == pytest.approx(0.0) and row["n_clean_correct"] == 8
    samples = result.store.samples(row)  # type: ignore[union-attr]
    assert samples["adv_correct"].all() and samples["correct"].sum() == 8
    assert (samples["correct"] == (samples["clean_correct"] & samples["adv_correct"])).all()
    # robench3d_run_finished fired from Python (no CLI) with a DataFrame of the rows, as its docstring says
    assert len(log) == 1 and isinstance(log[0][0], pd.DataFrame) and list(log[0][0]["attack"]) == ["shift"] * 2
    assert log[0][1] is config
    # the plugins column names only the plugins whose components this cell used
    assert row["plugins"].split("; ") == sorted(["metric_plugin", "robench3d.builtin.backbones",
                                                 "robench3d.builtin.datasets"])
    assert row["victim"] == "undefended"
