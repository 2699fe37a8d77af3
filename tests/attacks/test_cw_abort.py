"""Early stopping in the C&W loop never stops a sample that has not succeeded (attacks/_cw.py)."""

from __future__ import annotations

import torch

from robench3d.attacks._cw import CWTerms, cw_search


def _plateau_then_success(after: int):
    """A flat loss (a plateau from the first check on) whose iterates count as successes from ``after`` calls on."""
    calls = {"n": 0}

    def objective(x: torch.Tensor, idx: torch.Tensor) -> CWTerms:
        calls["n"] += 1
        flat = (x * 0).flatten(1).sum(1) + 1.0
        ok = torch.full((x.shape[0],), calls["n"] > after, dtype=torch.bool)
        return CWTerms(flat, flat * 0, ok, x.detach())

    return objective, calls


def test_a_plateau_does_not_stop_an_unsuccessful_sample() -> None:
    objective, calls = _plateau_then_success(after=50)
    out = cw_search(objective, lambda _: torch.zeros(2, 4, 3), binary_steps=1, iterations=100, lr=0.01,
                    c_init=1.0, c_max=1.0, abort_early=True)
    assert out.success.all()  # the former plateau rule stopped both at iteration 20, before any success
    assert calls["n"] > 50


def test_a_successful_sample_on_a_plateau_stops_early() -> None:
    objective, calls = _plateau_then_success(after=0)
    out = cw_search(objective, lambda _: torch.zeros(2, 4, 3), binary_steps=1, iterations=100, lr=0.01,
                    c_init=1.0, c_max=1.0, abort_early=True, keep_last=True)
    assert out.success.all() and int(out.iterations.max()) == 20  # the second check finds the plateau
