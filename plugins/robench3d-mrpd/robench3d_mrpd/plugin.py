"""The hook implementations of robench3d-mrpd: robench3d finds this module through the ``mrpd`` entry point."""

from __future__ import annotations

from robench3d import hookimpl


@hookimpl
def robench3d_register_defenses() -> list[type]:
    """The MRPD defense."""
    from robench3d_mrpd.mrpd import MRPD

    return [MRPD]


@hookimpl
def robench3d_register_teachers() -> list[type]:
    """MRPD's image teacher (depth projection + an image encoder) and its text teacher (MRPD's 3D teacher is the
    core ``backbone`` teacher)."""
    from robench3d_mrpd.image_teacher import DepthImageTeacher
    from robench3d_mrpd.text_teacher import TextTeacher

    return [DepthImageTeacher, TextTeacher]
