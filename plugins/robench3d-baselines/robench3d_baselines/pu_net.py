"""A PU-Net point-cloud upsampler (x r) and its training losses, in pure PyTorch, written for this plugin.

The three stages of PU-Net:

1. *Multi-level point feature extraction*: L levels of PointNet++-style set abstraction. Level l takes the first
   M / 2^l input points as centroids, groups each centroid's k nearest points of the previous level, runs a shared
   MLP on their relative coordinates (and the previous level's features) and max-pools over the group.
2. *Multi-level feature aggregation and expansion*: every level's features are interpolated back to all M input
   points (inverse-distance weights over the 3 nearest centroids), projected and concatenated; r separate
   two-layer branches then turn each point's feature into r features (one per output point).
3. *Coordinate reconstruction*: a shared MLP regresses the coordinates of the r M output points.

Deviations from the paper, each for a stated reason:

* k-nearest-neighbour groups instead of ball queries, and coordinates divided by the input's mean nearest-neighbour
  spacing ``s``: the network becomes invariant to the density of its input, so an upsampler trained on
  (N/4 -> N) pairs also applies to (N -> 4N) as DUP-Net does, and the same weights serve every N.
* the output is *residual*: point j of branch i is ``x_j + s * offset_ij`` rather than an absolute regression; with
  a near-zero initial offset training starts from plain duplication, which converges in a CPU budget.
* no batch normalisation (as in IF-Defense's PU-Net), so inference does not depend on batch statistics.
* centroids are prefixes of the input order instead of a farthest point sampling per level: the DUP-Net pipeline
  and the training pairs hand the upsampler its input in farthest-point order, whose prefixes are
  farthest-point samples (any order works; farthest-point order spreads the centroids evenly).

Losses: reconstruction by the symmetric Chamfer distance (not EMD: exact EMD needs an assignment solver that is
slow on CPU; Chamfer is also the validation metric), plus PU-Net's repulsion loss ``-d * exp(-d^2 / h^2)`` over
each output point's nearest output neighbours, which spreads points evenly. Both are measured in units of the
target spacing, so one weight serves every density.

References:
    Yu et al. PU-Net: Point Cloud Upsampling Network. CVPR 2018, arXiv:1801.06761.
    Qi et al. PointNet++. NeurIPS 2017, arXiv:1706.02413 (set abstraction, feature interpolation).

Shape:
    points (B, M, 3) -> (B, r * M, 3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from robench3d import ConfigError
from robench3d.pointops import chamfer, gather_points, knn_with_distances

__all__ = ["PU_NET_CONFIGS", "PUNet", "build_pu_net", "mean_spacing", "repulsion_loss", "upsampling_loss"]

#: Architecture sizes. ``cpu``: about 0.1 M parameters, trains in minutes on two cores. ``paper``: PU-Net's
#: widths (four levels of [32,32,64] ... [256,256,512], 64-d level features, [256,128] expansion, [64,3]).
PU_NET_CONFIGS: dict[str, dict[str, Any]] = {
    "cpu": {"k": 16, "levels": ((16, 16, 32), (32, 32, 64), (64, 64, 128)), "level_dim": 32,
            "expand": (128, 64), "reconstruct": (32,)},
    "paper": {"k": 32, "levels": ((32, 32, 64), (64, 64, 128), (128, 128, 256), (256, 256, 512)), "level_dim": 64,
              "expand": (256, 128), "reconstruct": (64,)},
}


def mean_spacing(points: torch.Tensor) -> torch.Tensor:
    """Mean distance of a cloud's points to their nearest other point (no gradient). Shape: (B, M, 3) -> (B, 1, 1)."""
    d2, _ = knn_with_distances(points, points, 2)
    return d2[..., 1].sqrt().mean(dim=1).clamp_min(1e-6).view(-1, 1, 1)


def _mlp(widths: Sequence[int], in_ch: int, conv: type[nn.Module], last_relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, w in enumerate(widths):
        layers.append(conv(in_ch, w, 1))
        if last_relu or i < len(widths) - 1:
            layers.append(nn.ReLU(inplace=True))
        in_ch = w
    return nn.Sequential(*layers)


class PUNet(nn.Module):
    """PU-Net upsampler (see the module docstring for the architecture and its deviations).

    Args:
        up_ratio: r, output points per input point.
        k: neighbours per group.
        levels: shared-MLP widths of each set-abstraction level.
        level_dim: width every level's interpolated features are projected to.
        expand: widths of each of the r feature-expansion branches.
        reconstruct: hidden widths of the coordinate regressor (a last layer maps to 3).

    Shape:
        points (B, M, 3), ideally in farthest-point order -> (B, r * M, 3); output ``i * M + j`` descends from
        input point ``j`` through branch ``i``.
    """

    def __init__(self, up_ratio: int = 4, k: int = 16, levels: Sequence[Sequence[int]] = ((32, 32, 64),),
                 level_dim: int = 32, expand: Sequence[int] = (128, 64), reconstruct: Sequence[int] = (32,)) -> None:
        super().__init__()
        if up_ratio < 1 or k < 2 or not levels:
            raise ConfigError(f"PU-Net needs up_ratio >= 1, k >= 2 and one level; got {up_ratio}, {k}, {levels!r}")
        self.up_ratio, self.k = int(up_ratio), int(k)
        self.levels = nn.ModuleList()
        in_feat = 0
        for widths in levels:
            self.levels.append(_mlp(widths, 3 + in_feat, nn.Conv2d))
            in_feat = widths[-1]
        self.project = nn.ModuleList(_mlp((level_dim,), w[-1], nn.Conv1d) for w in levels)
        self.branches = nn.ModuleList(_mlp(expand, level_dim * len(levels), nn.Conv1d) for _ in range(up_ratio))
        self.reconstruct = _mlp((*reconstruct, 3), expand[-1], nn.Conv1d, last_relu=False)
        last = self.reconstruct[-1]
        assert isinstance(last, nn.Conv1d)
        # Near-zero offsets at initialisation: training starts from duplication and learns to spread the copies.
        nn.init.normal_(last.weight, std=1e-3)
        nn.init.zeros_(last.bias)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Upsample. Shape: (B, M, 3) -> (B, r * M, 3)."""
        b, m, _ = points.shape
        s = mean_spacing(points)
        prev_xyz, prev_feat = points, None  # prev_feat: (B, M_prev, C)
        per_level: list[tuple[torch.Tensor, torch.Tensor]] = []
        for level, mlp in enumerate(self.levels):
            cent = points[:, : max(m >> level, 1)]
            _, idx = knn_with_distances(cent, prev_xyz, self.k)  # indices only: piecewise constant, no gradient
            kk = idx.shape[2]
            flat = idx.reshape(b, -1)
            rel = (gather_points(prev_xyz, flat).view(b, -1, kk, 3) - cent.unsqueeze(2)) / s.unsqueeze(-1)
            grouped = rel if prev_feat is None else torch.cat(
                [rel, gather_points(prev_feat, flat).view(b, -1, kk, prev_feat.shape[-1])], dim=-1)
            feat = mlp(grouped.permute(0, 3, 1, 2)).max(dim=3).values  # (B, C, M_l)
            per_level.append((cent, feat))
            prev_xyz, prev_feat = cent, feat.transpose(1, 2)
        agg = torch.cat([proj(self._interpolate(points, cent, feat)) for (cent, feat), proj
                         in zip(per_level, self.project, strict=True)], dim=1)  # (B, L * level_dim, M)
        expanded = torch.cat([branch(agg) for branch in self.branches], dim=2)  # (B, C_e, r * M)
        offsets = self.reconstruct(expanded).transpose(1, 2)  # (B, r * M, 3)
        return points.repeat(1, self.up_ratio, 1) + s * offsets

    @staticmethod
    def _interpolate(points: torch.Tensor, cent: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        """Features at centroids -> features at all points, inverse-distance weighted over 3 nearest centroids.

        Shape: points (B, M, 3), cent (B, M_l, 3), feat (B, C, M_l) -> (B, C, M).
        """
        if cent.shape[1] == points.shape[1]:
            return feat
        # Weights are constants (knn carries no gradient), as in PointNet++'s feature propagation.
        d2, idx = knn_with_distances(points, cent, 3)
        w = 1.0 / (d2.sqrt() + 1e-8)
        w = w / w.sum(dim=2, keepdim=True)
        b, m, kk = idx.shape
        near = gather_points(feat.transpose(1, 2), idx.reshape(b, -1)).view(b, m, kk, -1)
        return (near * w.unsqueeze(-1)).sum(dim=2).transpose(1, 2)


def build_pu_net(arch: str, up_ratio: int, overrides: Mapping[str, Any] | None = None) -> PUNet:
    """A :class:`PUNet` of a named size in :data:`PU_NET_CONFIGS`."""
    if arch not in PU_NET_CONFIGS:
        raise ConfigError(f"unknown PU-Net size {arch!r}; valid: {', '.join(PU_NET_CONFIGS)} (--opt defense.arch)")
    return PUNet(up_ratio=up_ratio, **{**PU_NET_CONFIGS[arch], **dict(overrides or {})})


def repulsion_loss(pred: torch.Tensor, h: torch.Tensor, neighbours: int = 4, sample: float = 0.25) -> torch.Tensor:
    """PU-Net's repulsion term over each point's ``neighbours`` nearest output points, in units of ``h``.

    ``-(d/h) * exp(-(d/h)^2)`` is lowest at ``d = h / sqrt(2)``: closer points are pushed apart, far ones ignored.
    It is estimated on a random ``sample`` of the output points as queries (their neighbours are searched among
    all points): an unbiased estimate of the mean at a fraction of the neighbour-search cost.

    Shape: pred (B, P, 3), h (B, 1, 1) -> scalar.
    """
    b, p, _ = pred.shape
    queries = pred[:, torch.randperm(p, device=pred.device)[: max(1, int(sample * p))]]
    _, idx = knn_with_distances(queries, pred, neighbours + 1)
    kk = idx.shape[2] - 1  # the nearest is the query itself
    near = gather_points(pred, idx[..., 1:].reshape(b, -1)).view(b, -1, kk, 3)
    # Distances from gathered differences (not cdist), so coincident points give a finite gradient.
    d = ((near - queries.unsqueeze(2)).pow(2).sum(dim=-1) + 1e-12).sqrt() / h
    return (-d * torch.exp(-d.pow(2))).mean()


def upsampling_loss(pred: torch.Tensor, target: torch.Tensor, spacing: torch.Tensor, repulsion_weight: float,
                    repulsion_h: float = 1.0) -> torch.Tensor:
    """Chamfer reconstruction + weighted repulsion, both in units of the expected output spacing.

    Args:
        spacing: the expected spacing of the output (B, 1, 1), e.g. the input's :func:`mean_spacing` divided by
            sqrt(r): dividing by it makes the loss, and so its weights, independent of the cloud density.
        repulsion_h: h in units of that spacing (the repulsion is lowest for neighbours at h / sqrt(2)).

    Shape: pred (B, P, 3), target (B, Q, 3) -> scalar.
    """
    rec = (chamfer(pred, target) / spacing.view(-1) ** 2).mean()
    if repulsion_weight <= 0:
        return rec
    return rec + repulsion_weight * repulsion_loss(pred, repulsion_h * spacing)
