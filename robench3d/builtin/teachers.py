"""Built-in plugin: the ``backbone`` teacher (any registered backbone, frozen)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench3d.hookspecs import hookimpl

if TYPE_CHECKING:
    from robench3d.teachers.base import Teacher


@hookimpl
def robench3d_register_teachers() -> list[type[Teacher]]:
    """A registered backbone as a teacher."""
    from robench3d.teachers.backbone import BackboneTeacher

    return [BackboneTeacher]
