"""``example_point_step``: one gradient step per point, each point moved by at most ``eps`` (l2_point).

A per-point analogue of FGSM: every point moves ``eps`` along its own normalised loss gradient. Untargeted
(ascends the cross-entropy of the true label). It needs gradients, so it runs in every setting but ``query``.

References:
    Goodfellow et al., Explaining and Harnessing Adversarial Examples, arXiv:1412.6572.

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

from robench3d import Attack, AttackResult, Budget, Norm, Setting
from robench3d.params import Param

_PARAMS: dict[str, Any] = {"eps": 0.02, "targeted": False}


class PointStep(Attack):
    """One normalised gradient step per point, l2_point eps 0.02 in every preset."""

    name: ClassVar[str] = "example_point_step"
    norm: ClassVar[Norm] = Norm.L2_POINT
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        p: dict(_PARAMS) for p in ("standard", "if-defense", "mrpd-paper", "quick")
    }
    # The default, spelled out: the gradient settings. A score-only attack would declare {Setting.QUERY}.
    supported_settings: ClassVar[frozenset[Setting]] = frozenset(
        {Setting.OBLIVIOUS, Setting.ADAPTIVE, Setting.TRANSFER}
    )
    # Checked for every --opt attack.eps=... before anything trains; a cloud has radius 1, so eps > 1 is a typo.
    param_specs: ClassVar[dict[str, Param]] = {
        "eps": Param(float, minimum=0, maximum=1, exclusive_minimum=True, help="per-point displacement bound"),
    }
    description: ClassVar[str] = "example plugin: one per-point gradient step, l2_point eps 0.02"
    references: ClassVar[str] = "Goodfellow et al. 2015, FGSM, arXiv:1412.6572"

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
