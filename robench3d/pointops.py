"""Point-cloud kernels shared by the backbones, the attacks, the metrics and the plugins: distances, neighbours,
gathering, farthest point sampling and Chamfer/Hausdorff distances.

Everything is pure PyTorch (no compiled extension), batched over the leading dimension, and differentiable with
respect to the *coordinates or features that are gathered* (index selection itself is piecewise constant, so
indices are computed without gradient). The kernels were chosen by measurement on the 2-core CPU this project
targets (``benchmarks/bench_ops.py`` prints the comparison):

* squared distances: ``baddbmm`` of the expansion |a|^2 - 2 a.b + |b|^2 (one BLAS call; as fast as
  :func:`torch.cdist` and it yields squared distances directly; 3-30x faster than broadcasting differences);
* kNN: those distances + :func:`torch.topk` (20x faster than a full ``argsort``);
* ball query (PointNet++ semantics: the first ``k`` points in index order within the radius, padded with the first
  one): a float key (index inside the ball, N outside) + ``topk`` (2-4x faster than ``cumsum``/``scatter`` and
  8x faster than sorting);
* gathering: advanced indexing ``x[batch, idx]`` (forward + backward 1.5-4x faster than ``index_select`` on a
  flattened tensor and 30x faster than ``gather`` on an expanded view);
* farthest point sampling: one vectorised update per selected centre, run single-threaded. FPS is inherently
  sequential (S steps of tiny tensor ops); with 2 OpenMP threads each step pays a fork/join that costs more than
  the arithmetic, and 8x more on a busy machine, so the loop temporarily sets ``torch.set_num_threads(1)``.

Nearest-neighbour *distances* (:func:`nearest_sq_distances`, :func:`chamfer`, :func:`hausdorff`) choose the
neighbours without gradient and differentiate only the matched pairs. The gradient is the same as differentiating
the dense ``min`` (a sub-gradient that picks the nearest point), but autograd never stores a (B, N, M) matrix, and
squared distances need no square root, so the gradient stays finite where a point sits on its neighbour. The
neighbours are ranked by ``|b|^2 - 2 a.b`` (:func:`distance_ranking`: the squared distance less the row constant
``|a|^2``), the form the attacks were pinned with. ``exact=True`` instead measures with :func:`torch.cdist`
without the matmul expansion, so a reported perturbation size carries no cancellation error (the expansion's
rounding, about 1e-7 on unit-scale clouds, is not small next to the squared distances of a small perturbation).

Shape conventions: clouds are (B, N, 3); query sets (B, S, 3); neighbour indices (B, S, K) into N; features
(B, N, C); per-cloud results (B,).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = [
    "ball_query",
    "chamfer",
    "distance_ranking",
    "farthest_point_sample",
    "gather_points",
    "hausdorff",
    "knn",
    "knn_with_distances",
    "nearest_indices",
    "nearest_sq_distances",
    "pin_threads",
    "single_thread",
    "square_distance",
]


@contextmanager
def single_thread() -> Iterator[None]:
    """Run the enclosed torch ops on one intra-op thread, restoring the previous setting afterwards."""
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def pin_threads(threads: int) -> None:
    """Pin this process's torch intra-op thread count for good (executor workers; tests compare their numbers)."""
    if torch.get_num_threads() != int(threads):
        torch.set_num_threads(int(threads))


def square_distance(query: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances.

    Args:
        query: (B, S, C) query points (or features).
        points: (B, N, C) reference points.

    Returns:
        (B, S, N) squared distances, clamped at 0 (the expansion can round slightly below zero).

    Shape:
        (B, S, C), (B, N, C) -> (B, S, N).
    """
    q_sq = query.square().sum(-1, keepdim=True)  # (B, S, 1)
    p_sq = points.square().sum(-1).unsqueeze(1)  # (B, 1, N)
    return torch.baddbmm(q_sq, query, points.transpose(1, 2), alpha=-2.0).add_(p_sq).clamp_min_(0.0)


def knn(query: torch.Tensor, points: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` nearest reference points of every query point, nearest first.

    Args:
        query: (B, S, C).
        points: (B, N, C), N >= k.
        k: number of neighbours.

    Returns:
        (B, S, k) int64 indices into N. A query that is also a reference point finds itself first.

    Shape:
        (B, S, C), (B, N, C) -> (B, S, k).
    """
    with torch.no_grad():
        dist = square_distance(query.detach(), points.detach())
        return dist.topk(k, dim=-1, largest=False, sorted=True).indices


def knn_with_distances(query: torch.Tensor, points: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distances and indices of the ``k`` nearest reference points of every query point, nearest first.

    Like :func:`knn`, but ``k`` is capped at N and the distances come along (without gradient: callers that need
    one recompute the distances from gathered points).

    Args:
        query: (B, S, C).
        points: (B, N, C).
        k: number of neighbours; more than N returns all N.

    Returns:
        (B, S, k') squared distances (>= 0) and (B, S, k') int64 indices into N, k' = min(k, N).

    Shape:
        (B, S, C), (B, N, C) -> (B, S, k'), (B, S, k').
    """
    with torch.no_grad():
        dist = square_distance(query.detach(), points.detach())
        found = dist.topk(min(k, points.shape[1]), dim=-1, largest=False, sorted=True)
        return found.values, found.indices


def ball_query(query: torch.Tensor, points: torch.Tensor, radius: float, k: int) -> torch.Tensor:
    """The first ``k`` reference points (in index order) within ``radius`` of each query (PointNet++ semantics).

    Groups with fewer than ``k`` points inside the ball are padded by repeating their first point. Every query
    used by PointNet++ is itself a sampled reference point, so its ball is never empty; an empty ball (a query
    far from all points) falls back to the nearest point.

    Args:
        query: (B, S, 3) centres.
        points: (B, N, 3) reference points.
        radius: ball radius.
        k: group size (``k <= N``).

    Returns:
        (B, S, k) int64 indices into N.

    Shape:
        (B, S, 3), (B, N, 3) -> (B, S, k).
    """
    with torch.no_grad():
        n = points.shape[1]
        dist = square_distance(query.detach(), points.detach())
        order = torch.arange(n, dtype=dist.dtype, device=dist.device)
        # Key = index for points inside the ball, n outside; the k smallest keys are the first k inside points.
        key = torch.where(dist <= radius * radius, order, torch.full_like(dist, float(n)))
        first = key.topk(k, dim=-1, largest=False, sorted=True).values
        empty = first[..., :1] >= n
        if bool(empty.any()):
            nearest = dist.argmin(dim=-1, keepdim=True).to(first.dtype)
            first[..., :1] = torch.where(empty, nearest, first[..., :1])
        idx = first.long()
        return torch.where(idx >= n, idx[..., :1].expand_as(idx), idx)


def gather_points(values: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Select rows of ``values`` per batch item (differentiable w.r.t. ``values``).

    Args:
        values: (B, N, C) points or features.
        idx: (B, S) or (B, S, K) int64 indices into N.

    Returns:
        (B, S, C) or (B, S, K, C).

    Shape:
        (B, N, C), (B, *I) -> (B, *I, C).
    """
    batch = torch.arange(values.shape[0], device=values.device).view(-1, *([1] * (idx.dim() - 1)))
    return values[batch, idx]


def distance_ranking(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Scores that order the ``b`` points by squared distance from each ``a`` point: ``|b_j|^2 - 2 a_i . b_j``.

    This is the squared distance less the row constant ``|a_i|^2``, so it ranks (``argmin``, ``topk``) along the
    last dimension exactly as :func:`square_distance` does up to float rounding, with one addition fewer. It is not
    a distance and may be negative. :func:`nearest_indices` and the attacks' neighbourhoods rank with it.

    Shape:
        (B, N, C), (B, M, C) -> (B, N, M).
    """
    return torch.baddbmm((b * b).sum(-1).unsqueeze(1), a, b.transpose(1, 2), alpha=-2.0)


def nearest_indices(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Index of the nearest ``b`` point of every ``a`` point (no gradient).

    Shape:
        (B, N, C), (B, M, C) -> (B, N) int64 indices into M.
    """
    with torch.no_grad():
        return distance_ranking(a.detach(), b.detach()).argmin(dim=2)


def _exact_nearest(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distance of every ``a`` point to its nearest ``b`` point, without the matmul expansion: (B, N)."""
    with torch.no_grad():
        return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").min(dim=2).values


def nearest_sq_distances(a: torch.Tensor, b: torch.Tensor, *, exact: bool = False) -> torch.Tensor:
    """Squared distance of every ``a`` point to its nearest ``b`` point.

    Args:
        a: (B, N, 3) points whose nearest neighbours are looked up.
        b: (B, M, 3) reference points.
        exact: measure with :func:`torch.cdist` without the matmul expansion (no gradient) instead of the matched
            pairs (differentiable in ``a`` and ``b``).

    Returns:
        (B, N) squared distances.

    Shape:
        (B, N, 3), (B, M, 3) -> (B, N).
    """
    if exact:
        return _exact_nearest(a, b) ** 2
    return (a - gather_points(b, nearest_indices(a, b))).pow(2).sum(-1)


def chamfer(a: torch.Tensor, b: torch.Tensor, *, exact: bool = False) -> torch.Tensor:
    """Symmetric Chamfer distance per cloud: the mean squared nearest-neighbour distance, both ways, averaged.

    This is the definition robench3d reports for perturbation sizes (with ``exact=True``); without it, the matched-
    points form is differentiable in both clouds (a reconstruction loss).

    Args:
        a: (B, N, 3).
        b: (B, M, 3).
        exact: see :func:`nearest_sq_distances`.

    Returns:
        (B,) distances.

    Shape:
        (B, N, 3), (B, M, 3) -> (B,).
    """
    return 0.5 * (nearest_sq_distances(a, b, exact=exact).mean(dim=1)
                  + nearest_sq_distances(b, a, exact=exact).mean(dim=1))


def hausdorff(a: torch.Tensor, b: torch.Tensor, *, exact: bool = False) -> torch.Tensor:
    """Symmetric Hausdorff distance per cloud: the largest nearest-neighbour distance, either way (not squared).

    Args:
        a: (B, N, 3).
        b: (B, M, 3).
        exact: see :func:`nearest_sq_distances`.

    Returns:
        (B,) distances.

    Shape:
        (B, N, 3), (B, M, 3) -> (B,).
    """
    if exact:
        return torch.maximum(_exact_nearest(a, b).max(dim=1).values, _exact_nearest(b, a).max(dim=1).values)
    worst = torch.maximum(nearest_sq_distances(a, b).max(dim=1).values, nearest_sq_distances(b, a).max(dim=1).values)
    return worst.sqrt()


def farthest_point_sample(points: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Farthest point sampling, starting from point 0 of every cloud (deterministic, as the CUDA reference op).

    Args:
        points: (B, N, 3).
        num_samples: S <= N.

    Returns:
        (B, S) int64 indices of distinct points (distinct whenever the cloud has at least S distinct points).

    Shape:
        (B, N, 3) -> (B, S).
    """
    b, n, _ = points.shape
    if num_samples >= n:
        return torch.arange(n, device=points.device).expand(b, n)[:, :num_samples].clone()
    with torch.no_grad(), single_thread():
        pts = points.detach()
        xt = pts.transpose(1, 2).contiguous()  # (B, 3, N): the per-step update reads contiguous rows
        out = torch.empty(b, num_samples, dtype=torch.long, device=pts.device)
        min_dist = torch.full((b, n), float("inf"), dtype=pts.dtype, device=pts.device)
        farthest = torch.zeros(b, 1, dtype=torch.long, device=pts.device)
        for i in range(num_samples):
            out[:, i : i + 1] = farthest
            centre = torch.gather(xt, 2, farthest.unsqueeze(1).expand(b, 3, 1))  # (B, 3, 1)
            dist = (xt - centre).square_().sum(1)
            torch.minimum(min_dist, dist, out=min_dist)
            farthest = min_dist.argmax(dim=-1, keepdim=True)
        return out
