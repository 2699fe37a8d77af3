"""``adv_train.head``: PGD adversarial training of only a new class head on the frozen backbone.

This is *our reading* of the MRPD paper's "Adv Training" row, whose reported parameter overhead (+Params = C x 1024)
is that of one linear classifier on the backbone's embedding: the feature extractor stays frozen (weights and
BatchNorm statistics), a linear head of C x D + C parameters replaces the original one, and only that head is
trained, with exactly the recipe of :mod:`.adv_train` (PGD-7 linf 0.05 examples generated against the current
model, clean and adversarial batches mixed, selection on val). The head starts from the base head's weights when
that head is linear (``head_init = base``), else from a random initialisation.

Robustness a frozen, non-robust feature extractor can gain this way is limited; the row exists so the paper's
setting can be compared with full adversarial training (``adv_train``) under one protocol.

Flags: ``differentiable = True``, ``randomized = False`` (plain gradients in the adaptive setting).

Parameter counts: ``trainable_params`` = C x D + C, the new head (the only part trained). ``extra_params`` = 0 for
a backbone with a linear head, because the new head *replaces* the backbone's own head of the same size: inference
runs exactly as many parameters as the undefended backbone (in general it is the defended model's count minus the
backbone's, floored at 0, e.g. C x D + C over a cosine head without parameters). The MRPD paper's table prints
C x 1024 as this row's +Params, i.e. it counts the trained head as added; our ``trainable_params`` column is the
number to compare with it. ``train_seconds``: the head's training, as :mod:`.adv_train`.

References:
    MRPD paper, "Adv Training" row (setting inferred from its +Params column); Madry et al. arXiv:1706.06083.

Shape:
    points (B, N, 3) -> logits (B, C).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import torch
from torch import nn

from robench3d import Backbone, ConfigError, DefenseContext
from robench3d.params import Param
from robench3d_baselines.adv_train import PARAM_SPECS, AdversarialTraining

__all__ = ["HeadAdversarialTraining"]

logger = logging.getLogger(__name__)


class HeadAdversarialTraining(AdversarialTraining):
    """Adversarial training of a linear class head (C x D + C parameters) on the frozen backbone.

    Args:
        variant: ``cpu`` (default: 3 epochs on 600 training clouds of 512 points) or ``paper`` (50 epochs on the
            whole training split at full N).
        overrides: any key of the variant (``--opt defense.epochs=...``); ``init`` must stay ``base`` (the frozen
            backbone is the base model), ``head_init`` is ``base`` or ``random``.
    """

    name: ClassVar[str] = "adv_train.head"
    variants: ClassVar[dict[str, dict[str, Any]]] = {
        "cpu": {**AdversarialTraining.variants["cpu"], "lr": 2e-3, "head_init": "base"},
        "paper": {**AdversarialTraining.variants["paper"], "epochs": 50, "init": "base", "head_init": "base"},
    }
    param_specs: ClassVar[dict[str, Param]] = {
        **PARAM_SPECS,
        "init": Param(str, choices=("base",), help="the frozen backbone is the base model's"),
        "head_init": Param(str, choices=("base", "random"), help="start the head from the base head's weights"),
    }
    description: ClassVar[str] = ("adversarial training (PGD-7, linf 0.05) of only a linear class head on the frozen "
                                  "backbone: our reading of the MRPD paper's 'Adv Training' row (trains C x D + C "
                                  "params)")
    references: ClassVar[str] = "MRPD paper (Adv Training row, inferred); Madry et al. 2018, arXiv:1706.06083"
    trained_part: ClassVar[str] = "class head only, frozen backbone (our reading of the MRPD paper's Adv Training)"

    def prepare_model(self, model: Backbone, ctx: DefenseContext) -> list[nn.Module | nn.Parameter]:
        """Swap in a linear head (initialised from the base head when it is linear) and freeze everything else."""
        if self.params["init"] != "base":
            raise ConfigError(f"adv_train.head trains a head on the frozen base backbone; init must be 'base', "
                              f"got {self.params['init']!r}")
        if self.params["head_init"] not in ("base", "random"):
            raise ConfigError(f"adv_train.head head_init={self.params['head_init']!r} is not valid; "
                              "use 'base' or 'random'")
        d, c = model.embed_dim, model.num_classes
        head = nn.Linear(d, c).to(next(model.parameters()).device)
        old = getattr(model.head, "fc", model.head)
        if self.params["head_init"] == "base" and isinstance(old, nn.Linear) and old.weight.shape == (c, d):
            with torch.no_grad():
                head.weight.copy_(old.weight)
                head.bias.copy_(old.bias)
        model.head = head
        frozen: list[nn.Module | nn.Parameter] = [m for name, m in model.named_children() if name != "head"]
        # Parameters held directly by the backbone (not by a child module) are frozen too.
        frozen += [p for name, p in model.named_parameters(recurse=False)]
        return frozen
