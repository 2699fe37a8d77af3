"""Point-set distances, neighbourhoods and projections shared by the attacks (private helper).

Nearest neighbours are found without gradient (one batched ``|b|^2 - 2ab`` matmul, then ``argmin`` / ``topk``;
``|a|^2`` is constant along a row, so it is skipped) and only the matched pairs are differentiated. The gradient is
the same as differentiating the dense ``min`` (a sub-gradient that picks the nearest point), but autograd never
stores a (B, N, M) matrix, which made the dense version memory-bound and several times slower. Squared distances
need no square root, so the gradient stays finite where an adversarial point sits on an original one (where
C&W-style attacks start). Neighbour indices for normals and graphs use :func:`torch.cdist` + ``topk``.

Shape:
    clouds are (B, N, 3); per-sample results are (B,).
"""

from __future__ import annotations

import torch

__all__ = [
    "chamfer_to",
    "clip_l2_global",
    "clip_l2_point",
    "estimate_normals",
    "hausdorff_to",
    "knn_indices",
    "knn_smoothness",
    "nearest_sq_distances",
    "squared_distances",
]


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise squared distances. Shape: (B, N, 3), (B, M, 3) -> (B, N, M)."""
    sq = (a * a).sum(-1).unsqueeze(2) + (b * b).sum(-1).unsqueeze(1) - 2 * torch.bmm(a, b.transpose(1, 2))
    return sq.clamp_min(0.0)  # the expansion can dip a little below zero in float32


def _gather(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``points[b, idx[b, ...]]``. Shape: (B, M, 3), (B, *S) -> (B, *S, 3)."""
    flat = idx.reshape(idx.shape[0], -1)
    out = torch.gather(points, 1, flat.unsqueeze(-1).expand(-1, -1, 3))
    return out.view(*idx.shape, 3)


def _ranking(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise ranking scores ``|b_j|^2 - 2 a_i . b_j`` (squared distance minus the row constant ``|a_i|^2``)."""
    return torch.baddbmm((b * b).sum(-1).unsqueeze(1), a, b.transpose(1, 2), alpha=-2.0)


def nearest_sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distance of every ``a`` point to its nearest ``b`` point, differentiable in both.

    Shape: (B, N, 3), (B, M, 3) -> (B, N).
    """
    with torch.no_grad():
        idx = _ranking(a, b).argmin(dim=2)
    return (a - _gather(b, idx)).pow(2).sum(-1)


def chamfer_to(adv: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """One-sided Chamfer distance: mean over ``adv`` of the squared distance to the nearest ``ref`` point.

    This is the ``adv2ori`` direction of IF-Defense: added/perturbed points must stay near the surface.
    """
    return nearest_sq_distances(adv, ref).mean(dim=1)


def hausdorff_to(adv: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """One-sided Hausdorff distance (squared): the ``adv`` point farthest from ``ref``."""
    return nearest_sq_distances(adv, ref).max(dim=1).values


def knn_smoothness(points: torch.Tensor, k: int = 5, alpha: float = 1.05) -> torch.Tensor:
    """kNN outlier penalty of Tsai et al. (AAAI 2020): mean squared distance of each point to its k neighbours,
    counted only for points above ``mean + alpha * std`` of that statistic over the cloud (mask not
    differentiated), averaged over the points.
    """
    k = min(k, points.shape[1] - 1)
    with torch.no_grad():
        # The nearest entry of each row is the point itself: take k + 1 and drop it.
        idx = _ranking(points, points).topk(k + 1, dim=2, largest=False).indices[..., 1:]
    near = (points.unsqueeze(2) - _gather(points, idx)).pow(2).sum(-1).mean(dim=2)
    with torch.no_grad():
        threshold = near.mean(dim=1, keepdim=True) + alpha * near.std(dim=1, keepdim=True)
        mask = (near > threshold).to(near.dtype)
    return (near * mask).mean(dim=1)


def knn_indices(points: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k nearest neighbours of every point, itself included. Shape: (B, N, 3) -> (B, N, k)."""
    k = min(k, points.shape[1])
    with torch.no_grad():
        return torch.cdist(points, points).topk(k, dim=2, largest=False).indices


def estimate_normals(points: torch.Tensor, k: int = 20) -> torch.Tensor:
    """Unit normals by PCA of each point's k-neighbourhood (eigenvector of the smallest eigenvalue).

    The sign is arbitrary, which is fine for tangent-plane projections. Shape: (B, N, 3) -> (B, N, 3).
    """
    with torch.no_grad():
        idx = knn_indices(points, k)
        nbrs = points[torch.arange(points.shape[0], device=points.device).view(-1, 1, 1), idx]  # (B, N, k, 3)
        centred = nbrs - nbrs.mean(dim=2, keepdim=True)
        cov = centred.transpose(2, 3) @ centred
        return torch.linalg.eigh(cov).eigenvectors[..., 0]


def clip_l2_point(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Scale each point's displacement down to Euclidean norm ``eps`` (the ``l2_point`` ball)."""
    norm = delta.norm(dim=-1, keepdim=True)
    return delta * (eps / norm.clamp_min(1e-12)).clamp(max=1.0)


def clip_l2_global(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Scale each cloud's whole perturbation down to L2 norm ``eps`` (the ``l2_global`` ball)."""
    norm = delta.flatten(1).norm(dim=1).view(-1, *([1] * (delta.dim() - 1)))
    return delta * (eps / norm.clamp_min(1e-12)).clamp(max=1.0)
