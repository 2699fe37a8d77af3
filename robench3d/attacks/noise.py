"""Random noise control (``noise``): uniform noise in the linf ball. Not an attack.

It answers "how much of an attack's effect would random noise of the same size have?" and exposes defenses whose
numbers only look good because the model is fragile to any change. It runs in every setting (it needs neither
gradients nor scores) and is excluded from aggregates (``is_control``).

References:
    Carlini et al. On Evaluating Adversarial Robustness. arXiv:1902.06705 (random-noise baselines as a sanity check).

Budget: ``linf`` eps 0.05 (the same ball as ``pgd_linf``, ``fgsm`` and ``simba``).

Args (preset parameters, identical in every preset):
    eps (0.05), targeted (False).

Shape:
    points (B, N, 3) -> adv_points (B, N, 3).

Example:
    >>> control = UniformNoise("standard")
    >>> result = control(model, points, labels)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from robench3d.attacks.base import Attack, AttackResult
from robench3d.norms import PRESETS, Budget, Norm, Setting

__all__ = ["UniformNoise"]


class UniformNoise(Attack):
    """Uniform linf noise of size eps (a control)."""

    name: ClassVar[str] = "noise"
    norm: ClassVar[Norm] = Norm.LINF
    presets: ClassVar[dict[str, dict[str, Any]]] = {p: {"eps": 0.05, "targeted": False} for p in PRESETS}
    supported_settings: ClassVar[frozenset[Setting]] = frozenset(Setting)
    is_control: ClassVar[bool] = True
    description: ClassVar[str] = "control: uniform linf noise, eps 0.05 (excluded from aggregates)"
    references: ClassVar[str] = "Carlini et al. 2019, arXiv:1902.06705"

    def budget(self, num_points: int) -> Budget:
        return Budget(Norm.LINF, float(self.params["eps"]))

    def perturb(self, victim: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, labels: torch.Tensor,
                targets: torch.Tensor | None) -> AttackResult:
        eps = float(self.params["eps"])
        noise = torch.rand(points.shape, generator=self.generator, device=points.device) * 2 - 1
        return AttackResult(points + eps * noise.to(points.dtype))
