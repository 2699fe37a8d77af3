"""Point-adding attacks (``add_cd``, ``add_hd``): append 512 optimised points, penalised by their distance to the
clean cloud (Chamfer or Hausdorff); the original points are never moved.

References:
    Xiang, Qi, Li. Generating 3D Adversarial Point Clouds. arXiv:1809.07016.
    Wu et al. IF-Defense, arXiv:2010.05272 (the ``if-defense`` preset: the published hyper-parameters).

The two attacks share one algorithm and differ only in the distance and its weights, so they live in one module as
two thin subclasses (like ``drop_100``/``drop_200``). The added points start at the clean cloud's "critical" points
(largest cross-entropy gradient norm; cycled when N < num_add) plus 1e-7 noise, then Adam minimises
``adv_loss + c * dist(added -> clean)`` with the C&W binary search over ``c`` (:mod:`robench3d.attacks._cw`).

Budget: ``points_added``, at most ``num_add`` (512) points appended after the N originals, which stay unchanged.

Args (preset parameters; defaults are ``standard``):
    num_add (512), lr (0.01), binary_steps (10; ``quick`` 2), iterations (500; ``quick`` 50),
    c_init / c_max (Chamfer: 5e3 / 4e4; Hausdorff: 200 / 900), loss ("cw", kappa 0.0; "ce" in ``mrpd-paper``),
    targeted (False; True in ``if-defense`` and ``mrpd-paper``), abort_early (True; off for randomised victims).

Shape:
    points (B, N, 3) -> adv_points (B, N + num_add, 3); info["iterations"] (B,).

Example:
    >>> attack = AddChamfer("quick")
    >>> result = attack(model, points, labels)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from robench3d.attacks._cw import CWTerms, cw_search
from robench3d.attacks._distances import chamfer_to, hausdorff_to
from robench3d.attacks._losses import attack_loss, succeeded
from robench3d.attacks.base import Attack, AttackResult, victim_logits
from robench3d.norms import Budget, Norm

__all__ = ["AddChamfer", "AddHausdorff", "critical_points"]


def critical_points(victim: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, labels: torch.Tensor,
                    count: int) -> torch.Tensor:
    """The ``count`` points with the largest cross-entropy gradient norm (cycled if N < count).

    Shape: points (B, N, 3), labels (B,) -> (B, count, 3).
    """
    x = points.clone().requires_grad_(True)
    loss = F.cross_entropy(victim_logits(victim, x), labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    order = grad.pow(2).sum(-1).argsort(dim=1, descending=True)
    idx = order[:, torch.arange(count, device=points.device) % points.shape[1]]
    return torch.gather(points, 1, idx.unsqueeze(-1).expand(-1, -1, 3))


def _params(c_init: float, c_max: float) -> dict[str, dict[str, Any]]:
    std = {"num_add": 512, "lr": 0.01, "binary_steps": 10, "iterations": 500, "c_init": c_init, "c_max": c_max,
           "loss": "cw", "kappa": 0.0, "targeted": False, "abort_early": True}
    return {"standard": std, "if-defense": {**std, "targeted": True},
            "mrpd-paper": {**std, "loss": "ce", "targeted": True},
            "quick": {**std, "binary_steps": 2, "iterations": 50}}


class _AddPoints(Attack):
    """Shared implementation; subclasses set the distance."""

    norm: ClassVar[Norm] = Norm.POINTS_ADDED
    changes_n: ClassVar[bool] = True
    suites: ClassVar[frozenset[str]] = frozenset({"paper8"})
    references: ClassVar[str] = "Xiang et al. 2019, arXiv:1809.07016"
    distance: ClassVar[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]

    def budget(self, num_points: int) -> Budget:
        return Budget(Norm.POINTS_ADDED, max_added=int(self.params["num_add"]))

    def perturb(self, victim: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, labels: torch.Tensor,
                targets: torch.Tensor | None) -> AttackResult:
        p = self.params
        kind, kappa, num_add = str(p["loss"]), float(p["kappa"]), int(p["num_add"])
        dist_fn = type(self).distance
        init = critical_points(victim, points, targets if targets is not None else labels, num_add)

        def objective(added: torch.Tensor, idx: torch.Tensor) -> CWTerms:
            cloud = torch.cat([points[idx], added], dim=1)
            logits = victim_logits(victim, cloud)
            t = targets[idx] if targets is not None else None
            return CWTerms(attack_loss(logits, labels[idx], t, kind, kappa), dist_fn(added, points[idx]),
                           succeeded(logits.detach(), labels[idx], t), cloud)

        def start(_: int) -> torch.Tensor:
            return init + 1e-7 * torch.randn(init.shape, generator=self.generator, device=init.device)

        out = cw_search(objective, start, binary_steps=int(p["binary_steps"]), iterations=int(p["iterations"]),
                        lr=float(p["lr"]), c_init=float(p["c_init"]), c_max=float(p["c_max"]),
                        abort_early=self.stops_early(victim, "abort_early"))
        # Re-attach the untouched originals exactly (the recorded clouds already hold them; this is a guarantee).
        adv = torch.cat([points, out.points[:, points.shape[1]:]], dim=1)
        return AttackResult(adv, {"iterations": out.iterations})


class AddChamfer(_AddPoints):
    """Add 512 points under a Chamfer penalty (c 5e3..4e4)."""

    name: ClassVar[str] = "add_cd"
    distance = staticmethod(chamfer_to)
    presets: ClassVar[dict[str, dict[str, Any]]] = _params(5e3, 4e4)
    description: ClassVar[str] = "add 512 points, Chamfer penalty (c 5e3..4e4), 10 x 500 Adam 0.01"


class AddHausdorff(_AddPoints):
    """Add 512 points under a Hausdorff penalty (c 200..900)."""

    name: ClassVar[str] = "add_hd"
    distance = staticmethod(hausdorff_to)
    presets: ClassVar[dict[str, dict[str, Any]]] = _params(200.0, 900.0)
    description: ClassVar[str] = "add 512 points, Hausdorff penalty (c 200..900), 10 x 500 Adam 0.01"
