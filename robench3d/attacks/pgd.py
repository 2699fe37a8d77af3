"""Projected gradient descent in L-infinity (``pgd_linf``), with random start and per-sample early stopping.

References:
    Madry et al. Towards Deep Learning Models Resistant to Adversarial Attacks. arXiv:1706.06083.

Budget: linf eps 0.05, step 0.01, 50 steps (``quick``: 10), uniform random start, cross-entropy, untargeted
(protocol.md section 4).

Per-sample early stopping: a sample whose current iterate is already misclassified (or hits its target) leaves
the active set and keeps that iterate, so later steps cost less. It is used only where it is exact
(:meth:`~robench3d.attacks.base.Attack.stops_early`): never against a randomised victim (EOT; a single success can
be luck) and never for clouds replayed on other models (``oblivious``, ``transfer``), which run every step.

Shape:
    points (B, N, 3) -> adv_points (B, N, 3); info["iterations"] (B,).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from robench3d.attacks.base import Attack, AttackResult, victim_logits
from robench3d.norms import Budget, Norm

__all__ = ["PGDLinf", "projected_gradient_loop"]

_STANDARD = {"eps": 0.05, "step": 0.01, "steps": 50, "random_start": True, "targeted": False, "early_stop": True}


def _success(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    pred = logits.argmax(dim=1)
    return pred == targets if targets is not None else pred != labels


def projected_gradient_loop(
    victim: Callable[[torch.Tensor], torch.Tensor],
    points: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor | None,
    *,
    steps: int,
    start: torch.Tensor,
    ascent: Callable[[torch.Tensor], torch.Tensor],
    project: Callable[[torch.Tensor], torch.Tensor],
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor] | None = None,
    early_stop: bool = True,
    direction: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generic batched PGD: ``delta <- project(delta + ascent(grad))`` on the samples still active.

    Args:
        start: initial perturbation delta (B, N, 3).
        ascent: maps the loss gradient to a step (sign step for linf, normalised step for L2).
        project: maps a perturbation back into the budget.
        loss_fn: per-sample loss to *maximise*; default cross-entropy (targeted: minus CE of the target).
        direction: optional ``(grad, current adversarial points) -> grad`` applied before ``ascent`` (e.g. SI-Adv's
            projection onto the tangent planes of the current cloud).

    Returns:
        (adv_points, iterations used per sample).
    """
    if loss_fn is None:
        def loss_fn(logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
            if t is not None:
                return -F.cross_entropy(logits, t, reduction="none")
            return F.cross_entropy(logits, y, reduction="none")

    delta = project(start.clone())
    iters = torch.zeros(points.shape[0], dtype=torch.long, device=points.device)
    active = torch.arange(points.shape[0], device=points.device)
    for _ in range(steps):
        x = (points[active] + delta[active]).requires_grad_(True)
        logits = victim_logits(victim, x)
        t = targets[active] if targets is not None else None
        if early_stop:
            done = _success(logits.detach(), labels[active], t)
            if done.all():
                active = active[:0]
                break
        loss = loss_fn(logits, labels[active], t).sum()
        (grad,) = torch.autograd.grad(loss, x)
        if direction is not None:
            grad = direction(grad, x.detach())
        step = ascent(grad)
        if early_stop:
            step = step * (~done).view(-1, 1, 1)  # successful samples keep their iterate
            iters[active] += (~done).long()
        else:
            iters[active] += 1
        delta[active] = project(delta[active] + step)
        if early_stop:
            active = active[~done]
    return points + delta, iters


class PGDLinf(Attack):
    """PGD in L-infinity with a uniform random start."""

    name: ClassVar[str] = "pgd_linf"
    norm: ClassVar[Norm] = Norm.LINF
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "standard": dict(_STANDARD),
        "if-defense": dict(_STANDARD),
        "mrpd-paper": dict(_STANDARD),
        "quick": {**_STANDARD, "steps": 10},
    }
    description: ClassVar[str] = "PGD, linf eps 0.05, step 0.01, 50 steps, random start"
    references: ClassVar[str] = "Madry et al. 2018, arXiv:1706.06083"

    def budget(self, num_points: int) -> Budget:
        return Budget(Norm.LINF, float(self.params["eps"]))

    def perturb(self, victim: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, labels: torch.Tensor,
                targets: torch.Tensor | None) -> AttackResult:
        eps, step = float(self.params["eps"]), float(self.params["step"])
        if self.params["random_start"]:
            start = (torch.rand(points.shape, generator=self.generator, device=points.device) * 2 - 1) * eps
        else:
            start = torch.zeros_like(points)
        early = self.stops_early(victim)
        adv, iters = projected_gradient_loop(
            victim, points, labels, targets, steps=int(self.params["steps"]), start=start,
            ascent=lambda g: step * g.sign(), project=lambda d: d.clamp(-eps, eps), early_stop=early,
        )
        return AttackResult(adv, {"iterations": iters})
