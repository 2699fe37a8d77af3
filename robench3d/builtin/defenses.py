"""Built-in plugin: the ``none`` defense (real defenses ship as their own plugin distributions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench3d.hookspecs import hookimpl

if TYPE_CHECKING:
    from robench3d.defenses.base import Defense


@hookimpl
def robench3d_register_defenses() -> list[type[Defense]]:
    """The undefended reference."""
    from robench3d.defenses.none import NoDefense

    return [NoDefense]
