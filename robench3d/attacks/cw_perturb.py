"""C&W perturbation attack (``cw_perturb``): move every point, penalising the global L2 norm of the perturbation.

References:
    Carlini, Wagner. Towards Evaluating the Robustness of Neural Networks. arXiv:1608.04644.
    Xiang, Qi, Li. Generating 3D Adversarial Point Clouds. arXiv:1809.07016 (the point-cloud version).
    Wu et al. IF-Defense, arXiv:2010.05272 (the ``if-defense`` preset: the published hyper-parameters).

Budget: none (``Norm.UNBOUNDED``). The attack minimises ``adv_loss + c * ||delta||_2`` with a binary search over
``c``; the perturbation it returns is as small as the search found, but no hard bound is promised. Rows report its
Chamfer and Hausdorff sizes instead.

Args (preset parameters; defaults are ``standard``):
    lr (0.01, Adam), binary_steps (10; ``quick`` 2), iterations (500 per binary step; ``quick`` 50),
    c_init (10.0), c_max (80.0): the weight of the L2 distance; loss ("cw", kappa 0.0; "ce" in ``mrpd-paper``),
    targeted (False; True in ``if-defense`` and ``mrpd-paper``), abort_early (True; off for randomised victims).

Shape:
    points (B, N, 3) -> adv_points (B, N, 3); info["iterations"] (B,) summed over binary steps.

Example:
    >>> attack = CWPerturb("quick")
    >>> result = attack(model, points, labels)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from robench3d.attacks._cw import CWTerms, cw_search
from robench3d.attacks._losses import attack_loss, succeeded
from robench3d.attacks.base import Attack, AttackResult, victim_logits
from robench3d.norms import Budget, Norm

__all__ = ["CWPerturb"]

_STANDARD: dict[str, Any] = {"lr": 0.01, "binary_steps": 10, "iterations": 500, "c_init": 10.0, "c_max": 80.0,
                             "loss": "cw", "kappa": 0.0, "targeted": False, "abort_early": True}


class CWPerturb(Attack):
    """Carlini-Wagner L2 point perturbation with a binary search over the distance weight."""

    name: ClassVar[str] = "cw_perturb"
    norm: ClassVar[Norm] = Norm.UNBOUNDED
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "standard": dict(_STANDARD),
        "if-defense": {**_STANDARD, "targeted": True},
        "mrpd-paper": {**_STANDARD, "iterations": 50, "loss": "ce", "targeted": True},
        "quick": {**_STANDARD, "binary_steps": 2, "iterations": 50},
    }
    suites: ClassVar[frozenset[str]] = frozenset({"paper8"})
    description: ClassVar[str] = "C&W perturbation, L2 penalty (unbounded), Adam 0.01, 10 x 500, c 10..80"
    references: ClassVar[str] = "Xiang et al. 2019, arXiv:1809.07016; Carlini & Wagner 2017, arXiv:1608.04644"

    def budget(self, num_points: int) -> Budget:
        return Budget(Norm.UNBOUNDED)

    def perturb(self, victim: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, labels: torch.Tensor,
                targets: torch.Tensor | None) -> AttackResult:
        p = self.params
        kind, kappa = str(p["loss"]), float(p["kappa"])

        def objective(x: torch.Tensor, idx: torch.Tensor) -> CWTerms:
            logits = victim_logits(victim, x)
            t = targets[idx] if targets is not None else None
            dist = (x - points[idx]).flatten(1).norm(dim=1)
            return CWTerms(attack_loss(logits, labels[idx], t, kind, kappa), dist,
                           succeeded(logits.detach(), labels[idx], t), x)

        def start(_: int) -> torch.Tensor:
            # IF-Defense starts each binary step a hair off the clean cloud (the L2 norm is not differentiable at 0).
            return points + 1e-7 * torch.randn(points.shape, generator=self.generator, device=points.device)

        out = cw_search(objective, start, binary_steps=int(p["binary_steps"]), iterations=int(p["iterations"]),
                        lr=float(p["lr"]), c_init=float(p["c_init"]), c_max=float(p["c_max"]),
                        abort_early=self.stops_early(victim, "abort_early"))
        return AttackResult(out.points, {"iterations": out.iterations})
