"""Saliency point dropping (``drop_100``, ``drop_200``): remove the points whose removal raises the loss most.

References:
    Zheng, Chen, Cai, Kuo. PointCloud Saliency Maps. arXiv:1812.01687.
    Wu et al. IF-Defense, arXiv:2010.05272 (5 points per round, alpha 1, untargeted).

Each round computes the cross-entropy gradient of the true label, scores every point by
``s_i = -r_i^alpha * (x_i - c) . grad_i`` (``c`` the per-coordinate median, ``r_i = |x_i - c|``: the loss change
of shifting the point onto the centre, the paper's proxy for removing it) and drops the ``per_round`` highest.
Always untargeted: the MRPD code's random target for drop is a bug (protocol.md section 4). The two attacks differ
only in how many points they drop, so they share this module.

Budget: ``points_dropped``, at most ``num_drop`` points removed; the output keeps the others unchanged and in
their original order. On clouds of fewer than 2 * num_drop points the count is capped at N // 2 (a logged
warning): a cloud must keep at least half of its points.

Args (preset parameters, identical in every preset):
    num_drop (100 or 200), per_round (5), alpha (1.0), targeted (False).

No per-sample early stopping: every cloud must lose exactly the same number of points so the batch stays one
(B, N - num_drop, 3) tensor.

Shape:
    points (B, N, 3) -> adv_points (B, N - min(num_drop, N // 2), 3).

Example:
    >>> attack = Drop200("standard")
    >>> result = attack(model, points, labels)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from robench3d.attacks.base import Attack, AttackResult, victim_logits
from robench3d.norms import PRESETS, Budget, Norm

__all__ = ["Drop100", "Drop200"]

logger = logging.getLogger(__name__)


def _params(num_drop: int) -> dict[str, dict[str, Any]]:
    return {p: {"num_drop": num_drop, "per_round": 5, "alpha": 1.0, "targeted": False} for p in PRESETS}


class _SaliencyDrop(Attack):
    """Shared implementation; subclasses set ``num_drop`` through their presets."""

    norm: ClassVar[Norm] = Norm.POINTS_DROPPED
    changes_n: ClassVar[bool] = True
    references: ClassVar[str] = "Zheng et al. 2019, arXiv:1812.01687"

    def num_dropped(self, num_points: int) -> int:
        """How many points are dropped from clouds of ``num_points`` (capped at half the cloud)."""
        return min(int(self.params["num_drop"]), num_points // 2)

    def budget(self, num_points: int) -> Budget:
        return Budget(Norm.POINTS_DROPPED, max_dropped=self.num_dropped(num_points))

    def perturb(self, victim: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, labels: torch.Tensor,
                targets: torch.Tensor | None) -> AttackResult:
        n = points.shape[1]
        total = self.num_dropped(n)
        if total < int(self.params["num_drop"]):
            logger.warning("%s: clouds have %d points, dropping %d instead of %d", self.name, n, total,
                           int(self.params["num_drop"]))
        per_round, alpha = int(self.params["per_round"]), float(self.params["alpha"])
        keep = torch.arange(n, device=points.device).expand(points.shape[0], n)  # original indices still present
        dropped = 0
        while dropped < total:
            k = min(per_round, total - dropped)
            x = torch.gather(points, 1, keep.unsqueeze(-1).expand(-1, -1, 3)).requires_grad_(True)
            loss = F.cross_entropy(victim_logits(victim, x), labels, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
            with torch.no_grad():
                centre = x.median(dim=1, keepdim=True).values
                rel = x - centre
                saliency = -rel.norm(dim=-1).pow(alpha) * (rel * grad).sum(-1)
                # Keep the lowest-saliency points, in their original order.
                kept = saliency.topk(x.shape[1] - k, dim=1, largest=False).indices.sort(dim=1).values
                keep = torch.gather(keep, 1, kept)
            dropped += k
        adv = torch.gather(points, 1, keep.unsqueeze(-1).expand(-1, -1, 3))
        return AttackResult(adv)


class Drop100(_SaliencyDrop):
    """Drop 100 points by saliency, 5 per round."""

    name: ClassVar[str] = "drop_100"
    presets: ClassVar[dict[str, dict[str, Any]]] = _params(100)
    description: ClassVar[str] = "saliency dropping of 100 points, 5 per round, alpha 1"


class Drop200(_SaliencyDrop):
    """Drop 200 points by saliency, 5 per round."""

    name: ClassVar[str] = "drop_200"
    presets: ClassVar[dict[str, dict[str, Any]]] = _params(200)
    suites: ClassVar[frozenset[str]] = frozenset({"paper8"})
    description: ClassVar[str] = "saliency dropping of 200 points, 5 per round, alpha 1"
