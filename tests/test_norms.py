from __future__ import annotations

import pytest
import torch

from robench3d.errors import BudgetViolationError, ConfigError
from robench3d.norms import Budget, Norm, Setting


def _pts(b: int = 2, n: int = 64) -> torch.Tensor:
    return torch.randn(b, n, 3, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    ("norm", "eps", "delta_scale", "ok"),
    [(Norm.LINF, 0.05, 0.05, True), (Norm.LINF, 0.05, 0.06, False),
     (Norm.L2_POINT, 0.1, 0.05, True), (Norm.L2_POINT, 0.1, 0.2, False)],
)
def test_perturbation_norms(norm: Norm, eps: float, delta_scale: float, ok: bool) -> None:
    x = _pts()
    delta = torch.zeros_like(x)
    delta[:, 0, 0] = delta_scale  # one coordinate of one point moves
    if ok:
        Budget(norm, eps).check(x, x + delta)
    else:
        with pytest.raises(BudgetViolationError, match=norm.value):
            Budget(norm, eps).check(x, x + delta)


def test_l2_global_counts_whole_cloud() -> None:
    x = _pts()
    delta = torch.full_like(x, 0.01)  # per coordinate tiny, globally sqrt(64*3)*0.01 = 0.139
    Budget(Norm.L2_GLOBAL, 0.14).check(x, x + delta)
    with pytest.raises(BudgetViolationError):
        Budget(Norm.L2_GLOBAL, 0.13).check(x, x + delta)


def test_added_and_dropped_points() -> None:
    x = _pts()
    added = torch.cat([x, torch.rand(2, 8, 3)], dim=1)
    Budget(Norm.POINTS_ADDED, max_added=8).check(x, added)
    with pytest.raises(BudgetViolationError, match="added 8.*at most 4"):
        Budget(Norm.POINTS_ADDED, max_added=4).check(x, added)
    with pytest.raises(BudgetViolationError, match="may only add"):
        Budget(Norm.POINTS_ADDED, max_added=8).check(x, torch.cat([x + 0.1, added[:, 64:]], dim=1))
    dropped = x[:, 10:]
    Budget(Norm.POINTS_DROPPED, max_dropped=10).check(x, dropped)
    with pytest.raises(BudgetViolationError, match="dropped 10"):
        Budget(Norm.POINTS_DROPPED, max_dropped=5).check(x, dropped)
    with pytest.raises(BudgetViolationError, match="moved some"):
        Budget(Norm.POINTS_DROPPED, max_dropped=10).check(x, dropped + 0.01)


def test_nan_output_rejected() -> None:
    x = _pts()
    bad = x.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(BudgetViolationError, match="NaN"):
        Budget(Norm.UNBOUNDED).check(x, bad)


def test_enum_coercion_lists_valid_values() -> None:
    assert Setting.coerce("query") is Setting.QUERY
    with pytest.raises(ConfigError, match="oblivious, adaptive, transfer, query"):
        Setting.coerce("whitebox")
