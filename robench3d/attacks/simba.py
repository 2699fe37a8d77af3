"""SimBA (``simba``): score-based black-box attack by random coordinate-block search, ``query`` setting only.

References:
    Guo, Gardner, You, Wilson, Weinberger. Simple Black-box Adversarial Attacks. arXiv:1905.07121.
    Huang et al. Shape-invariant 3D Adversarial Point Clouds, arXiv:2203.04041 (SimBA on point clouds).

Each step picks the next point of a random permutation and a random sign pattern ``s`` in {-1, 1}^3, and tries
setting that point's displacement to ``+eps * s`` and, if that does not lower the score, to ``-eps * s``; a
candidate is kept only if it lowers the logit margin (true-class logit minus the best other one; targeted: best
other minus target). Setting (not adding) the displacement keeps every coordinate within ``+-eps``, so the budget
is the same linf ball as ``pgd_linf``/``fgsm`` and the gradient-masking check can compare them. When the
permutation is exhausted a new one is drawn (re-visited points may change corner).

Queries are counted per sample (the first evaluation included) and returned in ``info["queries"]``; a sample stops
once it is misclassified (not against a randomised victim, whose one lucky draw proves nothing) or out of queries.

Budget: ``linf`` eps 0.05.

Args (preset parameters; defaults are ``standard``; the ``mrpd-paper`` preset equals ``standard``, that paper
ran no query attack):
    eps (0.05), queries (2000 per sample; ``quick`` 500), targeted (False), early_stop (True).

Shape:
    points (B, N, 3) -> adv_points (B, N, 3); info["queries"] (B,).

Example:
    >>> attack = SimBA("standard")
    >>> result = attack(ScoreOracle(defended), points, labels)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from robench3d.attacks._losses import logit_margin
from robench3d.attacks.base import Attack, AttackResult, victim_logits
from robench3d.norms import Budget, Norm, Setting

__all__ = ["SimBA"]

_STANDARD: dict[str, Any] = {"eps": 0.05, "queries": 2000, "targeted": False, "early_stop": True}


class SimBA(Attack):
    """Score-based random search over per-point sign corners of the linf ball."""

    name: ClassVar[str] = "simba"
    norm: ClassVar[Norm] = Norm.LINF
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "standard": dict(_STANDARD),
        "if-defense": dict(_STANDARD),
        "mrpd-paper": dict(_STANDARD),
        "quick": {**_STANDARD, "queries": 500},
    }
    supported_settings: ClassVar[frozenset[Setting]] = frozenset({Setting.QUERY})
    description: ClassVar[str] = "SimBA-style score-based search, linf eps 0.05, 2000 queries per sample"
    references: ClassVar[str] = "Guo et al. 2019, arXiv:1905.07121"

    def budget(self, num_points: int) -> Budget:
        return Budget(Norm.LINF, float(self.params["eps"]))

    @torch.no_grad()
    def perturb(self, victim: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, labels: torch.Tensor,
                targets: torch.Tensor | None) -> AttackResult:
        eps, budget = float(self.params["eps"]), int(self.params["queries"])
        early = self.stops_early(victim)
        b, n, _ = points.shape
        dev = points.device
        rows = torch.arange(b, device=dev)
        delta = torch.zeros_like(points)
        score = logit_margin(victim_logits(victim, points), labels, targets)
        queries = torch.ones(b, dtype=torch.long, device=dev)
        order = torch.rand(b, n, generator=self.generator, device=dev).argsort(dim=1)
        step = 0
        while True:
            live = queries < budget
            if early:
                live &= score >= 0
            if not live.any():
                break
            if step > 0 and step % n == 0:
                order = torch.rand(b, n, generator=self.generator, device=dev).argsort(dim=1)
            # Drawn for the whole batch every step, so a sample's search does not depend on the others'.
            signs = torch.randint(0, 2, (b, 3), generator=self.generator, device=dev).to(points.dtype) * 2 - 1
            point = order[:, step % n]
            step += 1
            for sign in (1.0, -1.0):
                idx = rows[live]
                if idx.numel() == 0:
                    break
                cand = delta[idx].clone()
                cand[torch.arange(idx.numel(), device=dev), point[idx]] = sign * eps * signs[idx]
                t = targets[idx] if targets is not None else None
                new = logit_margin(victim_logits(victim, points[idx] + cand), labels[idx], t)
                queries[idx] += 1
                better = new < score[idx]
                delta[idx[better]] = cand[better]
                score[idx[better]] = new[better]
                # Only samples that did not improve try the opposite corner, and only if queries remain.
                live = torch.zeros_like(live)
                live[idx[~better]] = True
                live &= queries < budget
        return AttackResult(points + delta, {"queries": queries})
