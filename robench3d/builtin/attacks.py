"""Built-in plugin: the attack suite of protocol.md section 4."""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench3d.hookspecs import hookimpl

if TYPE_CHECKING:
    from robench3d.attacks.base import Attack


@hookimpl
def robench3d_register_attacks() -> list[type[Attack]]:
    """Every built-in attack."""
    from robench3d.attacks.add_points import AddChamfer, AddHausdorff
    from robench3d.attacks.advpc import AdvPC
    from robench3d.attacks.aof import AOF
    from robench3d.attacks.cw_perturb import CWPerturb
    from robench3d.attacks.drop_points import Drop100, Drop200
    from robench3d.attacks.fgsm import FGSM
    from robench3d.attacks.knn import KNNAttack
    from robench3d.attacks.noise import UniformNoise
    from robench3d.attacks.pgd import PGDLinf
    from robench3d.attacks.pgd_l2 import PGDL2
    from robench3d.attacks.si_adv import SIAdv
    from robench3d.attacks.simba import SimBA

    return [AddChamfer, AddHausdorff, AdvPC, AOF, CWPerturb, Drop100, Drop200, FGSM, KNNAttack, UniformNoise, PGDLinf,
            PGDL2, SIAdv, SimBA]
