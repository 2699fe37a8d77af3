"""Built-in plugin: backbone architectures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench3d.hookspecs import hookimpl

if TYPE_CHECKING:
    from robench3d.backbones.base import BackboneSpec


@hookimpl
def robench3d_register_backbones() -> list[BackboneSpec]:
    """PointNet and the other built-in architectures."""
    from robench3d.backbones.pointnet import POINTNET

    return [POINTNET]
