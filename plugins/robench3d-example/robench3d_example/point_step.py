"""``example_point_step``: one gradient step per point, each point moved by at most ``eps`` (l2_point).

A per-point analogue of FGSM: every point moves ``eps`` along its own normalised loss gradient. Untargeted
(ascends the cross-entropy of the true label).

Shape:
    points (B, N, 3) -> adv_points (B, N, 3).

Example:
    >>> attack = PointStep("quick")
    >>> result = attack(model, points, labels)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from robench3d import Attack, AttackResult, Budget, Norm

_PARAMS: dict[str, Any] = {"eps": 0.02, "targeted": False}


class PointStep(Attack):
    """One normalised gradient step per point, l2_point eps 0.02 in every preset."""

    name: ClassVar[str] = "example_point_step"
    norm: ClassVar[Norm] = Norm.L2_POINT
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        p: dict(_PARAMS) for p in ("standard", "if-defense", "mrpd-paper", "quick")
    }
    description: ClassVar[str] = "example plugin: one per-point gradient step, l2_point eps 0.02"

    def budget(self, num_points: int) -> Budget:
        return Budget(Norm.L2_POINT, float(self.params["eps"]))

    def perturb(self, victim: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, labels: torch.Tensor,
                targets: torch.Tensor | None) -> AttackResult:
        x = points.clone().requires_grad_(True)
        loss = F.cross_entropy(victim(x), labels)
        (grad,) = torch.autograd.grad(loss, x)
        step = grad / grad.norm(dim=2, keepdim=True).clamp_min(1e-12)
        # Points with a zero gradient (ignored by the max pool) stay where they are.
        step = step * (grad.norm(dim=2, keepdim=True) > 0)
        return AttackResult(points + float(self.params["eps"]) * step)
