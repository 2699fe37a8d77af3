"""Projected gradient descent in global L2 (``pgd_l2``), with random start and per-sample early stopping.

References:
    Madry et al. Towards Deep Learning Models Resistant to Adversarial Attacks. arXiv:1706.06083.
    Wu et al. IF-Defense: 3D Adversarial Point Cloud Defense via Implicit Function based Restoration.
    arXiv:2010.05272 (the ``if-defense`` preset: budget scaled by sqrt(3N), C&W logits loss).

Budget: ``l2_global`` (the L2 norm of the whole N x 3 perturbation) of ``eps``, multiplied by sqrt(3N) when
``scale_by_sqrt_3n`` (IF-Defense: 0.08 * sqrt(3 * 1024) = 4.43); the MRPD code uses 0.08 unscaled.

Args (preset parameters; defaults are ``standard``):
    eps (0.08), step (0.0016 = eps / 50): in the same units, both scaled by sqrt(3N) when scale_by_sqrt_3n (True).
    steps (50; ``quick`` 10), random_start (True: uniform per coordinate in +-eps / sqrt(3N) of the scaled
    budget, IF-Defense's start), loss ("cw" logit margin, or "ce"), kappa (0.0), targeted (False; True in
    ``if-defense`` and ``mrpd-paper``), early_stop (True; off for randomised victims).

Each step moves by ``step`` along the gradient normalised in global L2, then projects onto the ball.

Shape:
    points (B, N, 3) -> adv_points (B, N, 3); info["iterations"] (B,).

Example:
    >>> attack = PGDL2("standard")
    >>> result = attack(model, points, labels)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from robench3d.attacks._distances import clip_l2_global
from robench3d.attacks._losses import attack_loss
from robench3d.attacks.base import Attack, AttackResult
from robench3d.attacks.pgd import projected_gradient_loop
from robench3d.norms import Budget, Norm

__all__ = ["PGDL2"]

_STANDARD: dict[str, Any] = {"eps": 0.08, "scale_by_sqrt_3n": True, "step": 0.08 / 50, "steps": 50,
                             "random_start": True, "loss": "cw", "kappa": 0.0, "targeted": False, "early_stop": True}


class PGDL2(Attack):
    """PGD in global L2 with IF-Defense's uniform random start."""

    name: ClassVar[str] = "pgd_l2"
    norm: ClassVar[Norm] = Norm.L2_GLOBAL
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "standard": dict(_STANDARD),
        "if-defense": {**_STANDARD, "targeted": True},
        "mrpd-paper": {**_STANDARD, "scale_by_sqrt_3n": False, "step": 0.004, "steps": 20, "loss": "ce",
                       "targeted": True},
        "quick": {**_STANDARD, "steps": 10},
    }
    suites: ClassVar[frozenset[str]] = frozenset({"paper8"})
    description: ClassVar[str] = "PGD, l2_global eps 0.08*sqrt(3N), 50 steps of eps/50, C&W loss, random start"
    references: ClassVar[str] = "Madry et al. 2018, arXiv:1706.06083; IF-Defense, arXiv:2010.05272"

    def _scale(self, num_points: int) -> float:
        return math.sqrt(3 * num_points) if self.params["scale_by_sqrt_3n"] else 1.0

    def budget(self, num_points: int) -> Budget:
        return Budget(Norm.L2_GLOBAL, float(self.params["eps"]) * self._scale(num_points))

    def perturb(self, victim: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, labels: torch.Tensor,
                targets: torch.Tensor | None) -> AttackResult:
        n = points.shape[1]
        eps = float(self.params["eps"]) * self._scale(n)
        step = float(self.params["step"]) * self._scale(n)
        if self.params["random_start"]:
            # IF-Defense: uniform per coordinate with the per-coordinate share of the budget, eps / sqrt(3N).
            bound = eps / math.sqrt(3 * n)
            start = (torch.rand(points.shape, generator=self.generator, device=points.device) * 2 - 1) * bound
        else:
            start = torch.zeros_like(points)
        kind, kappa = str(self.params["loss"]), float(self.params["kappa"])

        def ascent(grad: torch.Tensor) -> torch.Tensor:
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)
            return step * grad / norm

        def loss_fn(logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
            return -attack_loss(logits, y, t, kind, kappa)  # the loop maximises

        early = self.stops_early(victim)
        adv, iters = projected_gradient_loop(
            victim, points, labels, targets, steps=int(self.params["steps"]), start=start, ascent=ascent,
            project=lambda d: clip_l2_global(d, eps), loss_fn=loss_fn, early_stop=early,
        )
        return AttackResult(adv, {"iterations": iters})
