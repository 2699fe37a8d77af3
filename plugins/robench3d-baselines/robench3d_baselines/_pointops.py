"""Batched point-set operations of the baselines that robench3d's core does not need: masked gathering with
padding and farthest point resampling among valid points. Pure PyTorch, vectorised over the batch; the shared
kernels (gathering, k-nearest neighbours, the Chamfer distance) come from :mod:`robench3d.pointops`.
"""

from __future__ import annotations

import torch

from robench3d import ConfigError
from robench3d.pointops import gather_points

__all__ = ["farthest_point_resample", "keep_and_pad", "keep_and_pad_indices"]


def _check_nonempty(counts: torch.Tensor, what: str) -> None:
    if bool((counts == 0).any()):
        raise ConfigError(f"{what} removed every point of a cloud; loosen its parameters (e.g. a larger alpha)")


def keep_and_pad(points: torch.Tensor, mask: torch.Tensor, num_points: int, what: str = "a preprocessing step"
                 ) -> torch.Tensor:
    """Keep the points where ``mask`` is true, in input order, and pad every cloud to ``num_points`` by repeating
    its kept points cyclically (the vectorised form of robench3d's ``pad_by_duplication``).

    Shape: points (B, N, 3), mask (B, N) bool -> (B, num_points, 3).
    """
    return gather_points(points, keep_and_pad_indices(mask, num_points, what))


def keep_and_pad_indices(mask: torch.Tensor, num_points: int, what: str = "a preprocessing step") -> torch.Tensor:
    """The indices :func:`keep_and_pad` gathers. Shape: mask (B, N) bool -> (B, num_points) long."""
    counts = mask.sum(dim=1)
    _check_nonempty(counts, what)
    # A stable sort of ~mask puts the kept indices first, still in input order.
    order = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices
    pos = torch.arange(num_points, device=mask.device).unsqueeze(0) % counts.unsqueeze(1)
    return torch.gather(order, 1, pos)


@torch.no_grad()
def farthest_point_resample(points: torch.Tensor, num_points: int, mask: torch.Tensor | None = None,
                            start: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of ``num_points`` points per cloud in farthest-point order, among the points where ``mask`` holds.

    Farthest point sampling is deterministic given its start (default: the first valid point), so resampling with
    it keeps a defense deterministic. A cloud with fewer valid points than ``num_points`` lists all of them in
    farthest-point order and then repeats that order cyclically (padding by duplication). Prefixes of the result
    are themselves farthest-point samples, which the PU-Net levels use as their centroids.

    Shape: points (B, N, 3), mask (B, N) bool, start (B,) long -> (B, num_points) long.
    """
    b, n, _ = points.shape
    mask = torch.ones(b, n, dtype=torch.bool, device=points.device) if mask is None else mask
    counts = mask.sum(dim=1)
    _check_nonempty(counts, "farthest point resampling")
    # Invalid points start (and, under minimum, stay) at -inf, so argmax never picks them; valid ones at +inf.
    # Few ops per iteration matter here: the loop is sequential and each op on a small tensor has a fixed cost.
    dist = torch.full((b, n), float("inf"), device=points.device).masked_fill(~mask, float("-inf"))
    cur = mask.to(torch.uint8).argmax(dim=1) if start is None else start
    rows = torch.arange(b, device=points.device)
    picked = torch.empty(b, num_points, dtype=torch.long, device=points.device)
    for i in range(num_points):
        picked[:, i] = cur
        d = ((points - points[rows, cur].unsqueeze(1)) ** 2).sum(dim=-1)
        dist = torch.minimum(dist, d)
        cur = dist.argmax(dim=1)
    pos = torch.arange(num_points, device=points.device).unsqueeze(0)
    pos = torch.where(pos < counts.unsqueeze(1), pos, pos % counts.unsqueeze(1))
    return torch.gather(picked, 1, pos)
