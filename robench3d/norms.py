"""Closed vocabularies (norms, threat settings, splits, presets) and the attack :class:`Budget`.

The CLI accepts strings; everything past the CLI boundary sees these enums (coerce with ``Norm(value)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from robench3d.errors import BudgetViolationError, ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["PRESETS", "Budget", "Norm", "Setting", "Split", "check_preset"]

#: Attack presets of protocol.md section 4. ``standard`` is the default.
PRESETS: tuple[str, ...] = ("standard", "if-defense", "mrpd-paper", "quick")


class _StrEnum(str, Enum):
    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def coerce(cls, value: object) -> _StrEnum:
        """Return ``cls(value)``, raising :class:`ConfigError` that lists the valid values."""
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise ConfigError(f"invalid {cls.__name__.lower()} {value!r}; valid values: {valid}") from None


class Norm(_StrEnum):
    """How a perturbation is measured (protocol.md section 3; always state the granularity)."""

    L2_GLOBAL = "l2_global"  # L2 norm of the whole (N x 3) perturbation
    L2_POINT = "l2_point"  # each point's displacement has Euclidean norm <= eps
    LINF = "linf"  # each coordinate |delta| <= eps
    POINTS_ADDED = "points_added"
    POINTS_DROPPED = "points_dropped"
    UNBOUNDED = "unbounded"  # penalty-based attacks (C&W) and controls without a hard bound


class Setting(_StrEnum):
    """Threat settings (protocol.md section 2); never mixed in one leaderboard column."""

    OBLIVIOUS = "oblivious"
    ADAPTIVE = "adaptive"
    TRANSFER = "transfer"
    QUERY = "query"


class Split(_StrEnum):
    """Dataset splits. ``val`` is carved from train with a fixed seed; selection never uses ``test``."""

    TRAIN = "train"
    VAL = "val"
    TEST = "test"


def check_preset(preset: str) -> str:
    """Validate a preset name, raising :class:`ConfigError` listing the valid ones."""
    if preset not in PRESETS and preset != "custom":
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return preset


@dataclass(frozen=True)
class Budget:
    """What an attack promises about its output, checked after every call.

    Attributes:
        norm: how the perturbation of the kept/original points is measured.
        eps: the bound in that norm; ``None`` means unbounded (penalty-based attacks).
        max_added: how many points the attack may append after the original N.
        max_dropped: how many of the original points it may remove.

    Shape:
        ``check(orig, adv)``: orig (B, N, 3); adv (B, N', 3) with N - max_dropped <= N' <= N + max_added.
    """

    norm: Norm
    eps: float | None = None
    max_added: int = 0
    max_dropped: int = 0

    def check(self, orig: torch.Tensor, adv: torch.Tensor, *, attack: str = "attack", rtol: float = 1e-4) -> None:
        """Raise :class:`BudgetViolationError` if ``adv`` is not a valid output for this budget."""
        import torch

        if adv.dim() != 3 or adv.shape[0] != orig.shape[0] or adv.shape[-1] != 3:
            raise BudgetViolationError(
                f"{attack} returned points of shape {tuple(adv.shape)} for input {tuple(orig.shape)}; "
                "expected (B, N', 3) with the same batch size"
            )
        if not torch.isfinite(adv).all():
            raise BudgetViolationError(f"{attack} returned NaN or Inf coordinates")
        n, n_adv = orig.shape[1], adv.shape[1]
        if n_adv > n + self.max_added:
            raise BudgetViolationError(
                f"{attack} returned {n_adv} points for {n} inputs: it added {n_adv - n}, "
                f"but its budget allows at most {self.max_added}"
            )
        if n_adv < n - self.max_dropped:
            raise BudgetViolationError(
                f"{attack} returned {n_adv} points for {n} inputs: it dropped {n - n_adv}, "
                f"but its budget allows at most {self.max_dropped}"
            )
        orig = orig.detach().to(adv.dtype)
        adv = adv.detach()
        if n_adv < n:
            # Dropping may only remove points: every returned point must be one of the inputs.
            nearest = torch.cdist(adv, orig, compute_mode="donot_use_mm_for_euclid_dist").min(dim=2).values
            if nearest.max() > 1e-5:
                raise BudgetViolationError(
                    f"{attack} dropped points but also moved some (max distance to an input point "
                    f"{nearest.max().item():.3g}); a drop attack may only remove points"
                )
            return
        # Added points come after the original N; the original N are measured in the declared norm.
        delta = adv[:, :n] - orig
        if self.eps is None or self.norm in (Norm.UNBOUNDED, Norm.POINTS_ADDED, Norm.POINTS_DROPPED):
            if self.norm in (Norm.POINTS_ADDED, Norm.POINTS_DROPPED) and delta.abs().max() > 1e-5:
                raise BudgetViolationError(
                    f"{attack} may only add/drop points but moved the originals by up to {delta.abs().max().item():.3g}"
                )
            return
        if self.norm is Norm.LINF:
            size = delta.abs().flatten(1).max(dim=1).values
        elif self.norm is Norm.L2_POINT:
            size = delta.norm(dim=2).max(dim=1).values
        else:
            size = delta.flatten(1).norm(dim=1)
        limit = self.eps * (1 + rtol) + 1e-6
        worst = size.max().item()
        if worst > limit or math.isnan(worst):
            raise BudgetViolationError(
                f"{attack} exceeded its {self.norm.value} budget: eps={self.eps:.4g}, "
                f"largest perturbation {worst:.4g} (sample {int(size.argmax())})"
            )
