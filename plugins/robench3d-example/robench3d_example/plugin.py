"""The hook implementations of the example plugin: robench3d finds this module through the entry point."""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench3d import hookimpl

if TYPE_CHECKING:  # annotations only: listing plugins never imports torch
    from robench3d import Attack, BackboneSpec, Defense


@hookimpl
def robench3d_register_backbones() -> list[BackboneSpec]:
    """Register the example backbone: a spec (an instance) carrying its factory, configurations and recipes."""
    from robench3d_example.tinynet import TINYNET

    return [TINYNET]


@hookimpl
def robench3d_register_defenses() -> list[type[Defense]]:
    """Register the example defense (imported here, so listing plugins stays cheap)."""
    from robench3d_example.quantize import VoxelQuantize

    return [VoxelQuantize]


@hookimpl
def robench3d_register_attacks() -> list[type[Attack]]:
    """Register the example attack."""
    from robench3d_example.point_step import PointStep

    return [PointStep]
