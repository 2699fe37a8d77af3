"""PointNet (Qi et al., CVPR 2017): shared per-point MLPs, a symmetric max pool, and an MLP on the global feature.

References:
    PointNet: Deep Learning on Point Sets for 3D Classification and Segmentation, arXiv:1612.00593.

Prompts (our generalisation for MRPD): ``prompts`` of shape (1 or B, P, C_last) are extra learnable feature tokens
that join the per-point features right before the max pool, so they can change the global feature just as an
extra point would, without changing the architecture.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from robench3d.backbones.base import Backbone, BackboneSpec, TrainRecipe

__all__ = ["POINTNET", "PointNet", "TNet"]


def _conv_stack(widths: Sequence[int], in_ch: int, last_relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, w in enumerate(widths):
        layers += [nn.Conv1d(in_ch, w, 1), nn.BatchNorm1d(w)]
        if i < len(widths) - 1 or last_relu:
            layers.append(nn.ReLU(inplace=True))
        in_ch = w
    return nn.Sequential(*layers)


class TNet(nn.Module):
    """Predicts a (k x k) alignment matrix, initialised to the identity. Shape: (B, k, N) -> (B, k, k)."""

    def __init__(self, k: int, width: int = 256) -> None:
        super().__init__()
        self.k = k
        self.feat = _conv_stack((64, 128, width), k, last_relu=True)
        self.fc = nn.Sequential(nn.Linear(width, 128), nn.BatchNorm1d(128), nn.ReLU(inplace=True),
                                nn.Linear(128, k * k))
        nn.init.zeros_(self.fc[-1].weight)
        nn.init.zeros_(self.fc[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.feat(x).max(dim=2).values
        eye = torch.eye(self.k, device=x.device, dtype=x.dtype)
        return self.fc(g).view(-1, self.k, self.k) + eye


class PointNet(Backbone):
    """PointNet classifier.

    Args:
        num_classes: C.
        widths: per-point MLP widths; the last one is the pooled global feature size (and ``prompt_dim``).
        fc: widths of the MLP on the global feature; the last one is the embedding size D.
        dropout: dropout before the head.
        input_transform: use the 3x3 input T-Net.
        feature_transform: use the 64x64 feature T-Net after the first layer (adds the orthogonality loss).

    Shape:
        points (B, N, 3) -> logits (B, C); forward_features -> (B, widths[-1], N); embed -> (B, fc[-1]).
    """

    arch = "pointnet"

    def __init__(
        self,
        num_classes: int,
        widths: Sequence[int] = (64, 64, 64, 128, 1024),
        fc: Sequence[int] = (512, 256),
        dropout: float = 0.3,
        input_transform: bool = False,
        feature_transform: bool = False,
    ) -> None:
        super().__init__(num_classes, embed_dim=fc[-1], prompt_dim=widths[-1])
        self.input_tnet = TNet(3) if input_transform else None
        self.first = _conv_stack(widths[:1], 3, last_relu=True)
        self.feature_tnet = TNet(widths[0]) if feature_transform else None
        self.rest = _conv_stack(widths[1:], widths[0], last_relu=False)
        mlp: list[nn.Module] = []
        in_dim = widths[-1]
        for i, w in enumerate(fc):
            mlp += [nn.Linear(in_dim, w), nn.BatchNorm1d(w), nn.ReLU(inplace=True)]
            if i == len(fc) - 1 and dropout > 0:
                mlp.append(nn.Dropout(dropout))
            in_dim = w
        self.mlp = nn.Sequential(*mlp)
        self.last_feature_transform: torch.Tensor | None = None

    def forward_features(self, points: torch.Tensor) -> torch.Tensor:
        x = points.transpose(1, 2)
        if self.input_tnet is not None:
            x = torch.bmm(self.input_tnet(x).transpose(1, 2), x)
        x = self.first(x)
        if self.feature_tnet is not None:
            t = self.feature_tnet(x)
            self.last_feature_transform = t  # read by the orthogonality regulariser during training
            x = torch.bmm(t.transpose(1, 2), x)
        return self.rest(x)

    def embed(self, points: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        feats = self.forward_features(points)
        p = self.check_prompts(prompts, points.shape[0])
        if p is not None:
            feats = torch.cat([feats, p.transpose(1, 2).to(feats.dtype)], dim=2)
        return self.mlp(feats.max(dim=2).values)

    def regularizer(self) -> torch.Tensor:
        """Orthogonality loss of the feature transform (0 without one), weighted 1e-3 by the trainer."""
        t = self.last_feature_transform
        if t is None:
            return torch.zeros(())
        eye = torch.eye(t.shape[1], device=t.device)
        return ((t @ t.transpose(1, 2) - eye) ** 2).sum(dim=(1, 2)).mean()


POINTNET = BackboneSpec(
    name="pointnet",
    factory=PointNet,
    configs={
        # cpu: narrower per-point MLP, trains on the embedded default in about two minutes on 2 cores.
        "cpu": {"widths": (64, 128, 256), "fc": (256, 128), "dropout": 0.3},
        # paper: the published classification network (3-64-64-64-128-1024, FC 512-256), with both T-Nets.
        "paper": {"widths": (64, 64, 64, 128, 1024), "fc": (512, 256), "dropout": 0.3,
                  "input_transform": True, "feature_transform": True},
        "test": {"widths": (16, 32), "fc": (32,), "dropout": 0.0},
    },
    recipes={
        "cpu": TrainRecipe(epochs=15, batch_size=32, lr=2e-3, num_points=512),
        "paper": TrainRecipe(epochs=200, batch_size=32, lr=1e-3),
        "test": TrainRecipe(epochs=3, batch_size=16, lr=3e-3),
    },
    description="PointNet (Qi et al. 2017); prompts join the per-point features before max pooling",
    paper="arXiv:1612.00593",
)
