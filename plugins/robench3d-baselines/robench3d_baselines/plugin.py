"""The hook implementations of robench3d-baselines: robench3d finds this module through the entry point."""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench3d import hookimpl

if TYPE_CHECKING:
    from robench3d import Defense


@hookimpl
def robench3d_register_defenses() -> list[type[Defense]]:
    """Register the five baseline defenses (imported here, so ``robench3d plugins`` stays cheap)."""
    from robench3d_baselines.adv_train import AdversarialTraining
    from robench3d_baselines.adv_train_head import HeadAdversarialTraining
    from robench3d_baselines.dupnet import DUPNet
    from robench3d_baselines.sor import StatisticalOutlierRemoval
    from robench3d_baselines.srs import SimpleRandomSampling

    return [SimpleRandomSampling, StatisticalOutlierRemoval, DUPNet, AdversarialTraining, HeadAdversarialTraining]
