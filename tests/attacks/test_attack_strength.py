"""Attacks are attacks: they beat random noise of the same budget, PGD is monotone in eps and breaks an undefended
model at a huge budget, and an attack that oversteps its own budget is caught.

Tolerances are stated in samples of the shared batch of 12 clean-correct clouds (tiny PointNet, quick preset).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
import torch
from attack_setup import SEED, TinySetting, make_attack, n_correct, run, tiny_setting

from robench3d.attacks.base import Attack, AttackResult
from robench3d.errors import BudgetViolationError
from robench3d.evaluation.masking import SANITY_MAX_ACC, SANITY_PARAMS
from robench3d.norms import PRESETS, Budget, Norm, Setting
from robench3d.plugins import build_plugin_manager, build_registries
from robench3d.pointops import single_thread

_REGS = build_registries(build_plugin_manager(autoload=False))
ATTACKS = [n for n in _REGS.attacks.names() if not _REGS.attacks.get(n).is_control]
#: An attack must leave at least this many fewer of the 12 clouds correct than noise of the same budget.
MARGIN = 2


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


@pytest.fixture(scope="module")
def setting() -> TinySetting:
    return tiny_setting()


def noise_like(attack: Attack, points: torch.Tensor, adv: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random perturbation of the same budget as ``attack`` (for unbounded attacks: of the same L2 size as
    ``adv``; for add/drop attacks: as many random points added/dropped)."""
    b, n, _ = points.shape
    budget = attack.budget(n)
    rand = torch.randn(points.shape, generator=gen)
    if budget.norm is Norm.LINF:
        assert budget.eps is not None
        return points + budget.eps * (torch.rand(points.shape, generator=gen) * 2 - 1)
    if budget.norm is Norm.L2_POINT:
        assert budget.eps is not None
        return points + budget.eps * rand / rand.norm(dim=2, keepdim=True)
    if budget.norm in (Norm.L2_GLOBAL, Norm.UNBOUNDED):
        size = torch.full((b,), budget.eps) if budget.eps is not None else (adv - points).flatten(1).norm(dim=1)
        return points + size.view(-1, 1, 1) * rand / rand.flatten(1).norm(dim=1).view(-1, 1, 1)
    if budget.norm is Norm.POINTS_ADDED:
        extra = adv.shape[1] - n
        picks = points[:, torch.randint(0, n, (extra,), generator=gen)]
        return torch.cat([points, picks + 0.05 * torch.randn(picks.shape, generator=gen)], dim=1)
    keep = torch.rand(b, n, generator=gen).argsort(dim=1)[:, : adv.shape[1]].sort(dim=1).values
    return torch.gather(points, 1, keep.unsqueeze(-1).expand(-1, -1, 3))


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_beats_noise_of_the_same_budget(setting: TinySetting, name: str) -> None:
    attack = make_attack(setting, name)
    adv = run(setting, name).adv_points
    # The worst of three noise draws, so the comparison is with noise at its most effective.
    random_correct = min(n_correct(setting.model, noise_like(attack, setting.points, adv,
                                                             torch.Generator().manual_seed(s)), setting.labels)
                         for s in range(3))
    attacked = n_correct(setting.model, adv, setting.labels)
    assert attacked <= max(random_correct - MARGIN, 0), (
        f"{name}: {attacked}/12 still correct vs {random_correct}/12 under noise of the same budget")


@pytest.mark.parametrize(("name", "eps_values"), [("pgd_linf", (0.005, 0.01, 0.02, 0.05, 0.1)),
                                                  ("pgd_l2", (0.005, 0.01, 0.02, 0.04, 0.08))])
def test_pgd_accuracy_does_not_increase_with_eps(setting: TinySetting, name: str,
                                                 eps_values: tuple[float, ...]) -> None:
    counts = []
    for eps in eps_values:
        attack = make_attack(setting, name, "standard",
                             {"eps": eps, "step": eps / 4, "steps": 10, "random_start": False})
        counts.append(n_correct(setting.model, attack(setting.model, setting.points, setting.labels).adv_points,
                                setting.labels))
    # One sample of slack: PGD is a local search, a larger ball can occasionally end in a worse local optimum.
    assert all(b <= a + 1 for a, b in zip(counts, counts[1:], strict=False)), counts
    assert counts[-1] < counts[0], counts


def test_pgd_with_a_huge_budget_breaks_the_undefended_model(setting: TinySetting) -> None:
    test = setting.data.split("test")
    points, labels = torch.from_numpy(test.points), torch.from_numpy(test.labels)
    attack = make_attack(setting, "pgd_linf", "standard", SANITY_PARAMS)
    adv = attack(setting.model, points, labels, seed=SEED).adv_points
    assert n_correct(setting.model, adv, labels) / len(labels) <= SANITY_MAX_ACC


class _Rogue(Attack):
    """Declares a budget and then breaks it in one of several ways."""

    name: ClassVar[str] = "rogue"
    norm: ClassVar[Norm] = Norm.LINF
    presets: ClassVar[dict[str, dict[str, Any]]] = {p: {"mode": "linf"} for p in PRESETS}
    supported_settings: ClassVar[frozenset[Setting]] = frozenset(Setting)
    BUDGETS: ClassVar[dict[str, Budget]] = {
        "linf": Budget(Norm.LINF, 0.05), "l2_point": Budget(Norm.L2_POINT, 0.1),
        "l2_global": Budget(Norm.L2_GLOBAL, 0.5), "add_too_many": Budget(Norm.POINTS_ADDED, max_added=4),
        "add_moves_originals": Budget(Norm.POINTS_ADDED, max_added=4),
        "drop_too_many": Budget(Norm.POINTS_DROPPED, max_dropped=4),
        "drop_moves_points": Budget(Norm.POINTS_DROPPED, max_dropped=4), "nan": Budget(Norm.UNBOUNDED),
    }
    BREAK: ClassVar[dict[str, Callable[[torch.Tensor], torch.Tensor]]] = {
        "linf": lambda x: x + 0.06,
        "l2_point": lambda x: torch.cat([x[:, :1] + 0.2, x[:, 1:]], dim=1),
        "l2_global": lambda x: x + 0.6 / (3 * x.shape[1]) ** 0.5,
        "add_too_many": lambda x: torch.cat([x, x[:, :5]], dim=1),
        "add_moves_originals": lambda x: torch.cat([x + 0.01, x[:, :2]], dim=1),
        "drop_too_many": lambda x: x[:, 5:],
        "drop_moves_points": lambda x: x[:, 2:] + 0.01,
        "nan": lambda x: x * float("nan"),
    }

    def budget(self, num_points: int) -> Budget:
        return self.BUDGETS[self.params["mode"]]

    def perturb(self, victim: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, labels: torch.Tensor,
                targets: torch.Tensor | None) -> AttackResult:
        return AttackResult(self.BREAK[self.params["mode"]](points))


@pytest.mark.parametrize("mode", sorted(_Rogue.BUDGETS))
def test_rogue_attack_is_caught(setting: TinySetting, mode: str) -> None:
    with pytest.raises(BudgetViolationError):
        _Rogue("standard", {"mode": mode})(setting.model, setting.points[:2], setting.labels[:2])
