"""Pure metric functions: accuracy intervals and perturbation sizes."""

from __future__ import annotations

import math

import torch

from robench3d import pointops

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


@torch.no_grad()
def chamfer(orig: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """Symmetric Chamfer distance per sample: mean squared nearest-neighbour distance, both directions, averaged.

    Measured exactly (:func:`robench3d.pointops.chamfer` with ``exact=True``): reported perturbation sizes carry no
    matmul rounding. Shape: orig (B, N, 3), adv (B, M, 3) -> (B,).
    """
    return pointops.chamfer(orig, adv, exact=True)


@torch.no_grad()
def hausdorff(orig: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """Symmetric Hausdorff distance per sample, measured exactly. Shape: (B, N, 3), (B, M, 3) -> (B,)."""
    return pointops.hausdorff(orig, adv, exact=True)
