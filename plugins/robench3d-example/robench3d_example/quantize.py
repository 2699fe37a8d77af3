"""``example_quantize``: snap every coordinate to a voxel grid before classification.

An input-transformation defense in the spirit of bit-depth reduction applied to point coordinates: small
perturbations that stay inside a voxel vanish. It is deterministic and piecewise constant (zero gradient almost
everywhere), so it declares ``differentiable = False`` and robench3d attacks it adaptively with BPDA.

References:
    Xu et al., Feature Squeezing: Detecting Adversarial Examples in Deep Neural Networks, arXiv:1704.01155.

Shape:
    points (B, N, 3) -> (B, N, 3).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from robench3d import PreprocessingDefense
from robench3d.params import Param


class VoxelQuantize(PreprocessingDefense):
    """Round coordinates to multiples of ``voxel`` (variants: ``default`` 0.02, ``coarse`` 0.05)."""

    name: ClassVar[str] = "example_quantize"
    description: ClassVar[str] = "example plugin: snap coordinates to a voxel grid (BPDA in the adaptive setting)"
    references: ClassVar[str] = "Xu et al. 2018, Feature Squeezing, arXiv:1704.01155"
    variants: ClassVar[dict[str, dict[str, Any]]] = {"default": {"voxel": 0.02}, "coarse": {"voxel": 0.05}}
    param_specs: ClassVar[dict[str, Param]] = {"voxel": Param(float, minimum=0, exclusive_minimum=True)}
    differentiable: ClassVar[bool] = False  # round() has a zero gradient almost everywhere
    randomized: ClassVar[bool] = False  # the same input always gives the same output: no EOT
    # Output point i is input point i, rounded: BPDA hands point i's gradient straight back to input point i.
    # (The default, "nearest", searches each output point's nearest input: slower, and it hands a rounded point's
    # gradient to whichever input lies nearest the grid point, not necessarily the one it came from.)
    bpda: ClassVar[str] = "pointwise"

    def transform(self, points: torch.Tensor) -> torch.Tensor:
        voxel = float(self.params["voxel"])
        return torch.round(points / voxel) * voxel
