"""Adversarial losses and the success test shared by the attacks (private helper).

Every loss here is per sample and is *minimised* by the attack:

* ``cw``: the Carlini-Wagner logit margin clamped at ``-kappa`` (:func:`robench3d.attacks.base.cw_margin`);
* ``ce``: cross-entropy of the target (targeted) or minus cross-entropy of the true label (untargeted).

Shape:
    logits (B, C); labels, targets (B,) -> (B,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robench3d.attacks.base import cw_margin
from robench3d.errors import ConfigError

__all__ = ["LOSSES", "attack_loss", "logit_margin", "succeeded"]

LOSSES = ("cw", "ce")


def attack_loss(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None, kind: str,
                kappa: float = 0.0) -> torch.Tensor:
    """Per-sample adversarial loss to minimise (see the module docstring)."""
    if kind == "cw":
        return cw_margin(logits, labels, targets, kappa)
    if kind == "ce":
        if targets is not None:
            return F.cross_entropy(logits, targets, reduction="none")
        return -F.cross_entropy(logits, labels, reduction="none")
    raise ConfigError(f"unknown attack loss {kind!r}; valid: {', '.join(LOSSES)}")


def logit_margin(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """Unclamped C&W margin (negative exactly when the attack succeeds); used by score-based attacks."""
    return cw_margin(logits, labels, targets, kappa=float("inf"))


def succeeded(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """Bool (B,): the prediction hits the target (targeted) or leaves the true label (untargeted)."""
    pred = logits.argmax(dim=1)
    return pred == targets if targets is not None else pred != labels
