"""``example_quantize``: snap every coordinate to a voxel grid before classification.

An input-transformation defense in the spirit of bit-depth reduction (Xu et al., "Feature Squeezing",
arXiv:1704.01155) applied to point coordinates: small perturbations that stay inside a voxel vanish. It is
deterministic and piecewise constant (zero gradient almost everywhere), so it declares ``differentiable = False``
and robench3d attacks it adaptively with BPDA.

Shape:
    points (B, N, 3) -> (B, N, 3).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from robench3d import PreprocessingDefense


class VoxelQuantize(PreprocessingDefense):
    """Round coordinates to multiples of ``voxel`` (variants: ``default`` 0.02, ``coarse`` 0.05)."""

    name: ClassVar[str] = "example_quantize"
    description: ClassVar[str] = "example plugin: snap coordinates to a voxel grid (BPDA in the adaptive setting)"
    references: ClassVar[str] = "Xu et al. 2018, Feature Squeezing, arXiv:1704.01155"
    variants: ClassVar[dict[str, dict[str, Any]]] = {"default": {"voxel": 0.02}, "coarse": {"voxel": 0.05}}
    differentiable: ClassVar[bool] = False
    randomized: ClassVar[bool] = False

    def transform(self, points: torch.Tensor) -> torch.Tensor:
        voxel = float(self.params["voxel"])
        return torch.round(points / voxel) * voxel
