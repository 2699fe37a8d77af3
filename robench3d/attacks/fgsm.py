"""FGSM: one signed-gradient step of size eps in L-infinity.

References:
    Goodfellow, Shlens, Szegedy. Explaining and Harnessing Adversarial Examples. arXiv:1412.6572.

Budget: linf, eps 0.05 in every preset (protocol.md section 4); untargeted.

Shape:
    points (B, N, 3) -> adv_points (B, N, 3).

Example:
    >>> attack = FGSM("standard")
    >>> result = attack(model, points, labels)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from robench3d.attacks.base import Attack, AttackResult, victim_logits
from robench3d.norms import Budget, Norm

__all__ = ["FGSM"]

_PARAMS = {"eps": 0.05, "targeted": False}


class FGSM(Attack):
    """Fast gradient sign method (untargeted: ascend the cross-entropy of the true label)."""

    name: ClassVar[str] = "fgsm"
    norm: ClassVar[Norm] = Norm.LINF
    presets: ClassVar[dict[str, dict[str, Any]]] = {p: dict(_PARAMS) for p in
                                                    ("standard", "if-defense", "mrpd-paper", "quick")}
    description: ClassVar[str] = "one-step signed gradient, linf eps 0.05"
    references: ClassVar[str] = "Goodfellow et al. 2015, arXiv:1412.6572"

    def budget(self, num_points: int) -> Budget:
        return Budget(Norm.LINF, float(self.params["eps"]))

    def perturb(self, victim: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, labels: torch.Tensor,
                targets: torch.Tensor | None) -> AttackResult:
        eps = float(self.params["eps"])
        x = points.clone().requires_grad_(True)
        logits = victim_logits(victim, x)
        if targets is not None:
            loss = -F.cross_entropy(logits, targets)
        else:
            loss = F.cross_entropy(logits, labels)
        (grad,) = torch.autograd.grad(loss, x)
        return AttackResult(points + eps * grad.sign())
