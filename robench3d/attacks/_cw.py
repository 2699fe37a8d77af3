"""The batched Carlini-Wagner optimisation loop with a binary search over the penalty weight (private helper).

Used by ``cw_perturb``, ``knn``, ``add_cd``/``add_hd``, ``aof`` and ``advpc``. Each attack supplies an *objective*
that maps its optimisation variable (a perturbed cloud, the added points, a low-frequency component...) to
:class:`CWTerms`; the loop minimises ``adv + c * dist`` per sample with Adam and keeps, per sample, the successful
iterate of smallest ``dist`` over all binary steps.

Conventions follow the IF-Defense code (arXiv:2010.05272) the protocol's presets come from: ``c`` weights the
*distance*; after a binary step in which a sample succeeded its ``c`` grows (``lo = c``), otherwise it shrinks
(``hi = c``), and ``c = (lo + hi) / 2``. Samples that never succeed return their last iterate.

Per-sample early stopping is the C&W "abort early" (arXiv:1608.04644) restricted to samples that already succeed:
every tenth of the iterations a sample whose total loss has not decreased by 1e-4 (relative) leaves the
optimisation for the rest of that binary step, but only if it has a successful iterate to return (its last iterate
when ``keep_last``; any iterate of the step otherwise). The original test also stops samples that have not
succeeded, and a plateau is not the end of progress: measured on the default student, those adaptive runs left up
to 4 of 30 clouds unbroken that the same attack run to completion (the replayed oblivious clouds) broke, so an
adaptive attack was weaker than its oblivious counterpart. A sample that never succeeds now runs every iteration.
Early stopping is disabled for randomised victims (EOT), whose loss is noisy. Adam is written out per sample, so
dropping samples from the active set does not disturb the others' moment estimates (each sample's run is
independent of its batch).

Shape:
    start(step) -> variable (B, ...); CWOutcome.points (B, N', 3), success (B,), iterations (B,).

Example:
    >>> out = cw_search(objective, lambda step: points + 1e-7 * torch.randn_like(points), binary_steps=10,
    ...                 iterations=500, lr=0.01, c_init=10.0, c_max=80.0)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["CWOutcome", "CWTerms", "cw_search"]


@dataclass
class CWTerms:
    """What an objective returns for the active samples (b of them).

    Attributes:
        adv: (b,) adversarial loss to minimise (differentiable).
        dist: (b,) the penalised perturbation size (differentiable; also ranks successful iterates).
        success: (b,) bool, whether this iterate counts as a success.
        points: (b, N', 3) the adversarial clouds of this iterate (recorded detached).
    """

    adv: torch.Tensor
    dist: torch.Tensor
    success: torch.Tensor
    points: torch.Tensor


@dataclass
class CWOutcome:
    """Result of :func:`cw_search`. Shape: points (B, N', 3); success, iterations (B,)."""

    points: torch.Tensor
    success: torch.Tensor
    iterations: torch.Tensor


def cw_search(
    objective: Callable[[torch.Tensor, torch.Tensor], CWTerms],
    start: Callable[[int], torch.Tensor],
    *,
    binary_steps: int,
    iterations: int,
    lr: float,
    c_init: float,
    c_max: float,
    project: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    abort_early: bool = True,
    keep_last: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
) -> CWOutcome:
    """Run the binary search (see the module docstring).

    Args:
        objective: ``(variable of active samples, their indices) -> CWTerms``.
        start: ``binary_step -> initial variable (B, ...)``; called once per binary step.
        project: ``(variable, indices) -> variable`` applied after every Adam step (hard budgets).
        keep_last: return the last iterate of every sample instead of the best successful one (attacks that want
            a margin, like kNN with kappa 15, as in their published code).
    """
    var = start(0)
    b = var.shape[0]
    dev = var.device
    c = torch.full((b,), float(c_init), device=dev)
    lo, hi = torch.zeros(b, device=dev), torch.full((b,), float(c_max), device=dev)
    best_dist = torch.full((b,), float("inf"), device=dev)
    found = torch.zeros(b, dtype=torch.bool, device=dev)
    last_ok = torch.zeros(b, dtype=torch.bool, device=dev)
    iters = torch.zeros(b, dtype=torch.long, device=dev)
    best: torch.Tensor | None = None
    last: torch.Tensor | None = None
    check_every = max(iterations // 10, 1)
    b1, b2 = betas
    for bstep in range(binary_steps):
        if bstep > 0:
            var = start(bstep)
        m, v = torch.zeros_like(var), torch.zeros_like(var)
        step_ok = torch.zeros(b, dtype=torch.bool, device=dev)
        prev = torch.full((b,), float("inf"), device=dev)
        active = torch.arange(b, device=dev)
        for it in range(iterations):
            x = var[active].clone().requires_grad_(True)
            terms = objective(x, active)
            with torch.no_grad():
                pts = terms.points.detach()
                if best is None or last is None:
                    best = torch.zeros((b, *pts.shape[1:]), dtype=pts.dtype, device=dev)
                    last = torch.zeros_like(best)
                last[active] = pts
                ok = terms.success.detach()
                last_ok[active] = ok
                step_ok[active] |= ok
                better = ok & (terms.dist.detach() < best_dist[active])
                won = active[better]
                best_dist[won] = terms.dist.detach()[better]
                best[won] = pts[better]
                found[won] = True
            loss = terms.adv + c[active] * terms.dist
            (grad,) = torch.autograd.grad(loss.sum(), x)
            with torch.no_grad():
                t = it + 1
                m[active] = b1 * m[active] + (1 - b1) * grad
                v[active] = b2 * v[active] + (1 - b2) * grad * grad
                denom = (v[active] / (1 - b2**t)).sqrt() + 1e-8
                new = var[active] - lr * (m[active] / (1 - b1**t)) / denom
                var[active] = project(new, active) if project is not None else new
            iters[active] += 1
            if abort_early and (it + 1) % check_every == 0:
                cur = loss.detach()
                progressing = cur < prev[active] - 1e-4 * prev[active].abs().nan_to_num(posinf=0.0)
                succeeded = last_ok[active] if keep_last else step_ok[active]
                prev[active] = cur
                active = active[progressing | ~succeeded]
                if active.numel() == 0:
                    break
        # Binary search on the distance weight: success -> weigh the distance more, failure -> less.
        lo = torch.where(step_ok, torch.maximum(lo, c), lo)
        hi = torch.where(step_ok, hi, torch.minimum(hi, c))
        c = (lo + hi) / 2
    assert best is not None and last is not None
    if keep_last:
        return CWOutcome(last, last_ok, iters)
    out = torch.where(found.view(-1, *([1] * (best.dim() - 1))), best, last)
    return CWOutcome(out, found, iters)
