"""Gradient-masking flags: transfer/query beating white-box, and the huge-budget PGD sanity check."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import torch

from robench3d import PreprocessingDefense, hookimpl
from robench3d.config import RunConfig
from robench3d.evaluation.masking import flag_unreliable
from robench3d.evaluation.matrix import run_matrix
from robench3d.norms import Setting
from robench3d.plugins import build_plugin_manager, build_registries


def _row(attack: str, setting: str, acc: float, **kw: Any) -> dict[str, Any]:
    return {"attack": attack, "setting": setting, "robust_acc": acc, "n_examples": 100, "status": "ok",
            "is_control": False, "norm": "linf", "surrogate": "pointnet2_ssg", **kw}


def test_transfer_beating_whitebox_flags_the_adaptive_row() -> None:
    rows = [_row("pgd_linf", "adaptive", 0.60), _row("pgd_linf", "transfer", 0.40), _row("fgsm", "adaptive", 0.5),
            _row("fgsm", "transfer", 0.495)]  # a one-sample difference is not a flag
    changed = flag_unreliable(rows)
    assert [r["attack"] for r in changed] == ["pgd_linf"]
    assert rows[0]["unreliable"] and "transfer" in rows[0]["unreliable_reason"]
    assert not rows[2].get("unreliable")


def test_query_attack_and_sanity_check() -> None:
    rows = [_row("pgd_linf", "adaptive", 0.30), _row("fgsm", "adaptive", 0.5), _row("simba", "query", 0.10)]
    flag_unreliable(rows)
    assert rows[0]["unreliable"] and "simba" in rows[0]["unreliable_reason"] and rows[1]["unreliable"]
    rows = [_row("pgd_linf", "adaptive", 0.05), _row("fgsm", "adaptive", 0.5), _row("simba", "query", 0.10)]
    assert flag_unreliable(rows) == []  # beating FGSM but not PGD is no evidence of masking
    rows = [_row("pgd_linf", "adaptive", 0.30)]
    flag_unreliable(rows, sanity_acc=0.4)
    assert "eps 1.0 leaves 40.0%" in rows[0]["unreliable_reason"]


class _Masking(PreprocessingDefense):
    """Claims to be differentiable but rounds coordinates: zero gradients, a textbook case of masking."""

    name = "masking_test"
    differentiable = True
    variants = {"default": {}}

    def transform(self, points: torch.Tensor) -> torch.Tensor:
        return torch.round(points * 4) / 4


def test_sanity_check_flags_a_masking_defense(tmp_path: Path, session_cache: Path) -> None:
    plugin = types.ModuleType("masking_plugin")
    plugin.robench3d_register_defenses = hookimpl(lambda: [_Masking])  # type: ignore[attr-defined]
    regs = build_registries(build_plugin_manager(autoload=False, extra=[plugin]))
    config = RunConfig(cache_dir=session_cache, output_dir=tmp_path, dataset="shapes:tiny", num_points=128,
                       backbones=("pointnet:test",), defenses=("masking_test",), attacks="pgd_linf",
                       settings=(Setting.ADAPTIVE,), preset="quick", n_examples=16, opts={"train": {"epochs": 4}})
    rows = [r for r in run_matrix(config, regs).rows if r["defense"] == "masking_test"]
    assert rows[0]["unreliable"] and "eps 1.0" in rows[0]["unreliable_reason"]
