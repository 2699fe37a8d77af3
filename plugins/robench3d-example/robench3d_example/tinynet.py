"""``example_tinynet``: the smallest useful point-cloud classifier, as a template for a backbone plugin.

A shared per-point MLP, a max pool over the points and a small MLP on the pooled feature: PointNet without its
transform networks, narrow enough that its ``test`` configuration trains on ``shapes:tiny`` in seconds on a CPU.
Prompt tokens (MRPD's point prompts) join the per-point features right before the max pool, so they can change
the global feature just as an extra point would.

References:
    Qi et al., PointNet: Deep Learning on Point Sets for 3D Classification and Segmentation, arXiv:1612.00593.

Shape:
    points (B, N, 3) -> logits (B, C); forward_features -> (B, width, N); embed -> (B, embed_dim);
    prompts (1 or B, P, width).
"""

from __future__ import annotations

import torch
from torch import nn

from robench3d import Backbone, BackboneSpec, TrainRecipe, WeightsSpec


class TinyNet(Backbone):
    """Per-point MLP (3 -> width -> width), max pool, then width -> embed_dim; the head is attached by the spec."""

    arch = "example_tinynet"

    def __init__(self, num_classes: int, width: int = 64, embed_dim: int = 64, dropout: float = 0.2) -> None:
        # prompt_dim=width: prompts are extra feature tokens of the pooled width (None would mean "no prompts").
        super().__init__(num_classes, embed_dim=embed_dim, prompt_dim=width)
        self.point_mlp = nn.Sequential(
            nn.Conv1d(3, width, 1), nn.BatchNorm1d(width), nn.ReLU(),
            nn.Conv1d(width, width, 1), nn.BatchNorm1d(width),
        )
        self.global_mlp = nn.Sequential(
            nn.Linear(width, embed_dim), nn.BatchNorm1d(embed_dim), nn.ReLU(), nn.Dropout(dropout),
        )

    def forward_features(self, points: torch.Tensor) -> torch.Tensor:
        return self.point_mlp(points.transpose(1, 2))  # (B, width, N)

    def embed(self, points: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        feats = self.forward_features(points)
        tokens = self.check_prompts(prompts, points.shape[0])  # None, or (B, P, width) after a shape check
        if tokens is not None:
            feats = torch.cat([feats, tokens.transpose(1, 2).to(feats.dtype)], dim=2)
        return self.global_mlp(feats.max(dim=2).values)  # (B, embed_dim)


TINYNET = BackboneSpec(
    name="example_tinynet",
    factory=TinyNet,
    configs={
        "cpu": {"width": 128, "embed_dim": 128, "dropout": 0.3},  # the default: minutes on 2 cores, 88% on shapes
        "test": {"width": 32, "embed_dim": 32, "dropout": 0.0},  # seconds: for tests and CI
    },
    recipes={
        "cpu": TrainRecipe(epochs=15, batch_size=32, lr=2e-3, num_points=512),
        "test": TrainRecipe(epochs=10, batch_size=16, lr=1e-2),
    },
    default_config="cpu",
    weights={
        # No public file: weights you trained yourself and placed in $ROBENCH3D_WEIGHTS (see CONTRIBUTING.md).
        "local": WeightsSpec(tag="local", filename="example_tinynet/local.safetensors", config="test",
                             description="your own example_tinynet:test weights (no public release)"),
    },
    description="example plugin: per-point MLP + max pool (PointNet without T-Nets); test config trains in seconds",
    paper="arXiv:1612.00593",
)
