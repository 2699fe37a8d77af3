"""Point-set distances, neighbourhoods and projections used only by the attacks (private helper).

The shared kernels live in :mod:`robench3d.pointops`: nearest neighbours are ranked there without gradient and
only the matched pairs are differentiated (see its docstring). Neighbour indices for normals and graphs use
:func:`torch.cdist` + ``topk``.

Shape:
    clouds are (B, N, 3); per-sample results are (B,).
"""

from __future__ import annotations

import torch

from robench3d.pointops import distance_ranking, gather_points, nearest_sq_distances

__all__ = [
    "chamfer_to",
    "clip_l2_global",
    "clip_l2_point",
    "estimate_normals",
    "hausdorff_to",
    "knn_indices",
    "knn_smoothness",
]


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
        idx = distance_ranking(points, points).topk(k + 1, dim=2, largest=False).indices[..., 1:]
    near = (points.unsqueeze(2) - gather_points(points, idx)).pow(2).sum(-1).mean(dim=2)
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
        nbrs = gather_points(points, idx)  # (B, N, k, 3)
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
