"""The attack API.

An :class:`Attack` is configured from a named preset (protocol.md section 4) and holds no model. It is called with
a *victim* built by the evaluation layer for the threat setting (the base model, the defended model, a BPDA/EOT
wrapper, a surrogate, or a score-only oracle), the clean points, labels and (for targeted attacks) the stored target
labels. :meth:`Attack.__call__` owns the invariants: eval mode set and restored, parameter gradients off,
deterministic seeding, and a :class:`~robench3d.norms.Budget` check of every output. Subclasses implement
:meth:`Attack.perturb` only.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from robench3d.errors import ConfigError
from robench3d.norms import PRESETS, Budget, Norm, Setting, check_preset
from robench3d.params import Param, resolve

__all__ = ["COMMON_PARAMS", "Attack", "AttackContext", "AttackResult", "cw_margin", "victim_logits"]

logger = logging.getLogger(__name__)

GRADIENT_SETTINGS = frozenset({Setting.OBLIVIOUS, Setting.ADAPTIVE, Setting.TRANSFER})

_NONNEG, _POSITIVE_INT = Param(minimum=0), Param(int, minimum=1)
#: Ranges of the parameter names the attacks share (types come from the preset values). An attack's own
#: ``param_specs`` refine or replace these; both are checked before any work starts.
COMMON_PARAMS: dict[str, Param] = {
    "eps": _NONNEG, "step": _NONNEG, "kappa": _NONNEG, "c_init": _NONNEG, "c_max": _NONNEG, "gamma": _NONNEG,
    "alpha": _NONNEG, "chamfer_weight": _NONNEG, "knn_weight": _NONNEG, "num_drop": Param(int, minimum=0),
    "lr": Param(float, minimum=0, exclusive_minimum=True), "steps": _POSITIVE_INT, "iterations": _POSITIVE_INT,
    "binary_steps": _POSITIVE_INT, "queries": _POSITIVE_INT, "k": _POSITIVE_INT, "graph_k": _POSITIVE_INT,
    "normal_k": _POSITIVE_INT, "low_pass": _POSITIVE_INT, "per_round": _POSITIVE_INT,
    "loss": Param(str, choices=("cw", "ce")),
}


@dataclass
class AttackResult:
    """What an attack returns.

    Shape:
        adv_points: (B, N', 3); N' = N unless the attack adds or drops points.
        info: per-sample tensors of shape (B,) (iterations used, queries, final loss...).
    """

    adv_points: torch.Tensor
    info: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class AttackContext:
    """What :meth:`Attack.prepare` may use (attacks that train something, like AdvPC's autoencoder).

    Attributes:
        dataset: the :class:`~robench3d.datasets.base.PreparedDataset`.
        cache_dir: where trained artifacts are cached (key them by your full configuration).
        seed: the run's seed.
        device: torch device.
    """

    dataset: Any
    cache_dir: Path
    seed: int = 0
    device: str = "cpu"
    progress: Callable[[str], None] | None = None


def victim_logits(victim: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor) -> torch.Tensor:
    """Call the victim and check it returned (B, C) logits."""
    logits = victim(points)
    if logits.dim() != 2 or logits.shape[0] != points.shape[0]:
        raise ConfigError(f"victim returned logits of shape {tuple(logits.shape)} for {points.shape[0]} clouds")
    return logits


def cw_margin(
    logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None, kappa: float = 0.0
) -> torch.Tensor:
    """Carlini-Wagner margin loss per sample, to be *minimised*.

    Untargeted: ``max(z_y - max_{j!=y} z_j, -kappa)``; targeted: ``max(max_{j!=t} z_j - z_t, -kappa)``.
    """
    cls = targets if targets is not None else labels
    onehot = F.one_hot(cls, logits.shape[1]).bool()
    z_cls = logits[onehot]
    z_other = logits.masked_fill(onehot, float("-inf")).max(dim=1).values
    margin = (z_other - z_cls) if targets is not None else (z_cls - z_other)
    return margin.clamp(min=-kappa)


class Attack(ABC):
    """Base class of attacks.

    Class variables:
        name: registry name.
        norm: the norm and granularity of the budget (protocol.md section 3).
        presets: parameters for each preset in :data:`~robench3d.norms.PRESETS`.
        param_specs: :class:`~robench3d.params.Param` declarations (ranges, choices) beyond what the preset
            values imply; merged over :data:`COMMON_PARAMS`. Every ``--opt attack.*`` value is checked against them
            when the attack is built, before any training.
        supported_settings: threat settings the attack can run in (gradient attacks: not ``query``).
        changes_n: whether the output has a different number of points than the input.
        is_control: a control (``noise``): runs, but is excluded from aggregates.
        suites: named suites the attack belongs to besides ``all`` (e.g. ``paper8``).
        description, references: for listings and docs.

    Shape:
        points (B, N, 3) float32; labels, targets (B,) int64 -> AttackResult.adv_points (B, N', 3).
    """

    name: ClassVar[str]
    norm: ClassVar[Norm]
    presets: ClassVar[Mapping[str, Mapping[str, Any]]]
    param_specs: ClassVar[Mapping[str, Param]] = {}
    supported_settings: ClassVar[frozenset[Setting]] = GRADIENT_SETTINGS
    changes_n: ClassVar[bool] = False
    is_control: ClassVar[bool] = False
    suites: ClassVar[frozenset[str]] = frozenset()
    description: ClassVar[str] = ""
    references: ClassVar[str] = ""

    def __init__(self, preset: str = "standard", overrides: Mapping[str, Any] | None = None, seed: int = 0) -> None:
        check_preset(preset)
        base_preset = "standard" if preset == "custom" else preset
        if base_preset not in self.presets:
            raise ConfigError(f"attack {self.name!r} defines no preset {preset!r}; it has {', '.join(self.presets)}")
        defaults = dict(self.presets[base_preset])
        params = resolve(defaults, overrides, owner=f"attack {self.name!r}", declared=self.specs())
        changed = any(params[k] != defaults[k] for k in params)
        self.params: dict[str, Any] = params
        self.defaults: dict[str, Any] = defaults
        # Changing any value of a preset makes it a different benchmark: rows must say "custom".
        self.preset = "custom" if changed else preset
        self.seed = seed
        self.generator = torch.Generator()
        self._early_stop_allowed = True

    @classmethod
    def specs(cls) -> dict[str, Param]:
        """The parameter declarations of this attack: :data:`COMMON_PARAMS` refined by ``param_specs``."""
        return {**COMMON_PARAMS, **cls.param_specs}

    # -- declarations ---------------------------------------------------------------------------------------
    @property
    def targeted(self) -> bool:
        """Whether this configuration is targeted (uses the stored target labels)."""
        return bool(self.params.get("targeted", False))

    @property
    def target_policy(self) -> str:
        """How targets are chosen: ``none`` (untargeted) or ``stored-random`` (drawn once per dataset + seed)."""
        return "stored-random" if self.targeted else "none"

    @abstractmethod
    def budget(self, num_points: int) -> Budget:
        """The budget for clouds of ``num_points`` points (some budgets scale with N)."""

    def prepare(self, ctx: AttackContext) -> None:  # noqa: B027 - optional hook, deliberately empty
        """Train or load what the attack needs (called once per run before the first call)."""

    def changed_params(self) -> dict[str, Any]:
        """The parameters whose values differ from the preset (recorded in the rows' ``overrides`` column)."""
        return {k: v for k, v in self.params.items() if v != self.defaults.get(k)}

    def stops_early(self, victim: Any, param: str = "early_stop") -> bool:
        """Whether this call may stop per sample once it succeeds (or plateaus).

        True only if the preset allows it (``param``, default ``early_stop``), the caller allows it (clouds that
        are replayed on other models, in the ``oblivious`` and ``transfer`` settings, are generated to completion:
        protocol.md section 2) and the victim is deterministic (one lucky EOT draw is no success).
        """
        return (self._early_stop_allowed and bool(self.params.get(param, True))
                and not getattr(victim, "randomized", False))

    # -- calling ----------------------------------------------------------------------------------------------
    def __call__(
        self,
        victim: Callable[[torch.Tensor], torch.Tensor],
        points: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        seed: int | None = None,
        early_stop: bool = True,
    ) -> AttackResult:
        """Attack a batch; see the class docstring for shapes.

        Args:
            seed: makes random starts reproducible.
            early_stop: ``False`` forbids per-sample early stopping (:meth:`stops_early`), for clouds that will be
                replayed on models other than ``victim``.
        """
        if points.dim() != 3 or points.shape[-1] != 3:
            raise ConfigError(f"{self.name}: points must have shape (B, N, 3), got {tuple(points.shape)}")
        if self.targeted and targets is None:
            raise ConfigError(f"{self.name} is targeted in preset {self.preset!r} but no target labels were given")
        self.generator = torch.Generator(device=points.device).manual_seed(self.seed if seed is None else seed)
        self._early_stop_allowed = early_stop
        modules = [m for m in (victim, *getattr(victim, "modules_to_freeze", ())) if isinstance(m, nn.Module)]
        modes = [(m, [s.training for s in m.modules()]) for m in modules]
        grads = [(p, p.requires_grad) for m in modules for p in m.parameters()]
        try:
            for m in modules:
                m.eval()
            for p, _ in grads:
                p.requires_grad_(False)
            with torch.enable_grad():  # attacks need input gradients even when called under no_grad
                result = self.perturb(victim, points.detach(), labels, targets if self.targeted else None)
        finally:
            for m, flags in modes:
                for sub, flag in zip(m.modules(), flags, strict=True):
                    sub.training = flag
            for p, flag in grads:
                p.requires_grad_(flag)
        result.adv_points = result.adv_points.detach()
        self.budget(points.shape[1]).check(points, result.adv_points, attack=self.name)
        return result

    @abstractmethod
    def perturb(
        self,
        victim: Callable[[torch.Tensor], torch.Tensor],
        points: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
    ) -> AttackResult:
        """Compute adversarial points. ``targets`` is given only when the attack is targeted."""

    @classmethod
    def check_presets(cls) -> None:
        """Raise :class:`ConfigError` if a preset of the protocol is missing (used by contract tests)."""
        missing = [p for p in PRESETS if p not in cls.presets]
        if missing:
            raise ConfigError(f"attack {cls.name!r} lacks presets {missing}")
