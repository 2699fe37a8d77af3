"""Built-in plugin: the attack suite of protocol.md section 4."""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench3d.hookspecs import hookimpl

if TYPE_CHECKING:
    from robench3d.attacks.base import Attack


@hookimpl
def robench3d_register_attacks() -> list[type[Attack]]:
    """Every built-in attack."""
    from robench3d.attacks.fgsm import FGSM
    from robench3d.attacks.pgd import PGDLinf

    return [FGSM, PGDLinf]
