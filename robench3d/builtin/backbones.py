"""Built-in plugin: backbone architectures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench3d.hookspecs import hookimpl

if TYPE_CHECKING:
    from robench3d.backbones.base import BackboneSpec


@hookimpl
def robench3d_register_backbones() -> list[BackboneSpec]:
    """PointNet, PointNet++ (SSG, MSG), DGCNN and the Uni3D-style point transformer."""
    from robench3d.backbones.dgcnn import DGCNN_SPEC
    from robench3d.backbones.pointnet import POINTNET
    from robench3d.backbones.pointnet2 import POINTNET2_MSG, POINTNET2_SSG
    from robench3d.backbones.uni3d import UNI3D

    return [POINTNET, POINTNET2_SSG, POINTNET2_MSG, DGCNN_SPEC, UNI3D]
