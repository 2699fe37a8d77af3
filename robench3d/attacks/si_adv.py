"""SI-Adv (``si_adv``): shape-invariant I-FGM that moves points only within their local tangent planes.

References:
    Huang, Dong, Chen, Zhang, Yu, Zhang. Shape-invariant 3D Adversarial Point Clouds. arXiv:2203.04041.

Every step estimates the normals of the *current* cloud by PCA of each point's ``normal_k`` nearest neighbours,
removes the normal component of the C&W-loss gradient (the paper writes this as a rotation into a per-point frame
whose third axis is the normal, zeroing that axis: the same thing), takes a step of ``step * sqrt(3N)`` along the
tangent gradient normalised in global L2 (the published code's step), and clips each point's displacement at
``eps``. There is no random start.

Budget: ``l2_point`` eps 0.16. Each step is tangent to the surface at the current iterate, but the accumulated
displacement is bounded per point in Euclidean norm, which is what the clip (and our budget) promises.

Args (preset parameters, identical in every preset but ``quick``):
    eps (0.16), step (0.07), steps (50; ``quick`` 10), normal_k (20), loss ("cw"), kappa (0.0), targeted (False),
    early_stop (True; off for randomised victims).

Shape:
    points (B, N, 3) -> adv_points (B, N, 3); info["iterations"] (B,).

Example:
    >>> attack = SIAdv("standard")
    >>> result = attack(model, points, labels)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from robench3d.attacks._distances import clip_l2_point, estimate_normals
from robench3d.attacks._losses import attack_loss
from robench3d.attacks.base import Attack, AttackResult
from robench3d.attacks.pgd import projected_gradient_loop
from robench3d.norms import Budget, Norm

__all__ = ["SIAdv"]

_STANDARD: dict[str, Any] = {"eps": 0.16, "step": 0.07, "steps": 50, "normal_k": 20, "loss": "cw", "kappa": 0.0,
                             "targeted": False, "early_stop": True}


class SIAdv(Attack):
    """Shape-invariant white-box I-FGM along tangent planes."""

    name: ClassVar[str] = "si_adv"
    norm: ClassVar[Norm] = Norm.L2_POINT
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "standard": dict(_STANDARD),
        "if-defense": dict(_STANDARD),
        "mrpd-paper": dict(_STANDARD),
        "quick": {**_STANDARD, "steps": 10},
    }
    description: ClassVar[str] = "SI-Adv: tangent-plane I-FGM, l2_point 0.16, step 0.07, 50 steps"
    references: ClassVar[str] = "Huang et al. 2022, arXiv:2203.04041"

    def budget(self, num_points: int) -> Budget:
        return Budget(Norm.L2_POINT, float(self.params["eps"]))

    def perturb(self, victim: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, labels: torch.Tensor,
                targets: torch.Tensor | None) -> AttackResult:
        p = self.params
        eps, k, kind, kappa = float(p["eps"]), int(p["normal_k"]), str(p["loss"]), float(p["kappa"])
        step = float(p["step"]) * math.sqrt(3 * points.shape[1])

        def tangent(grad: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
            normals = estimate_normals(current, k)
            return grad - (grad * normals).sum(-1, keepdim=True) * normals

        def ascent(grad: torch.Tensor) -> torch.Tensor:
            return step * grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)

        def loss_fn(logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
            return -attack_loss(logits, y, t, kind, kappa)

        early = self.stops_early(victim)
        adv, iters = projected_gradient_loop(
            victim, points, labels, targets, steps=int(p["steps"]), start=torch.zeros_like(points), ascent=ascent,
            project=lambda d: clip_l2_point(d, eps), loss_fn=loss_fn, early_stop=early, direction=tangent,
        )
        return AttackResult(adv, {"iterations": iters})
