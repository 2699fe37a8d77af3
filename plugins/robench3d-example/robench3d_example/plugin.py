"""The hook implementations of the example plugin: robench3d finds this module through the entry point."""

from __future__ import annotations

from robench3d import hookimpl


@hookimpl
def robench3d_register_defenses() -> list[type]:
    """Register the example defense (imported here, so listing plugins stays cheap)."""
    from robench3d_example.quantize import VoxelQuantize

    return [VoxelQuantize]


@hookimpl
def robench3d_register_attacks() -> list[type]:
    """Register the example attack."""
    from robench3d_example.point_step import PointStep

    return [PointStep]
