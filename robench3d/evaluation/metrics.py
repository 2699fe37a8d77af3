"""Pure metric functions: accuracy intervals and perturbation sizes."""

from __future__ import annotations

import math

import torch

__all__ = ["chamfer", "hausdorff", "wilson_interval"]


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (well-behaved at 0 and 1, unlike the normal interval)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _nearest(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """For each point of a (B, N, 3), the distance to its nearest point in b (B, M, 3): (B, N)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").min(dim=2).values


@torch.no_grad()
def chamfer(orig: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """Symmetric Chamfer distance per sample: mean squared nearest-neighbour distance, both directions, averaged.

    Shape: orig (B, N, 3), adv (B, M, 3) -> (B,).
    """
    return 0.5 * ((_nearest(adv, orig) ** 2).mean(dim=1) + (_nearest(orig, adv) ** 2).mean(dim=1))


@torch.no_grad()
def hausdorff(orig: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """Symmetric Hausdorff distance per sample. Shape: (B, N, 3), (B, M, 3) -> (B,)."""
    return torch.maximum(_nearest(adv, orig).max(dim=1).values, _nearest(orig, adv).max(dim=1).values)
