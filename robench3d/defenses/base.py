"""The defense API.

A :class:`Defense` is configured from a named variant plus overrides and builds a :class:`DefendedModel` from a
:class:`DefenseContext` (train/val data, the trained base backbone, factories for backbones, teachers, attacks and
weights, cached artifacts, the seed and the device: :class:`robench3d.context.BuildContext`).

A :class:`DefendedModel` is ``classify(transform(points))``: ``transform`` is the optional preprocessing stage that
may be non-differentiable or random (SOR, SRS, DUP-Net's SOR), ``classify`` the differentiable rest (the backbone,
a prompted backbone, an upsampler followed by the backbone). Exposing both lets the evaluation layer build BPDA/EOT
victims for the adaptive setting (protocol.md section 2) without knowing any particular defense.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from robench3d.backbones.base import Backbone
from robench3d.context import BuildContext
from robench3d.errors import ConfigError
from robench3d.params import Param, resolve

__all__ = ["BPDA_MAPPINGS", "DefendedModel", "Defense", "DefenseContext", "PreprocessingDefense", "count_params",
           "pad_by_duplication"]

#: Backward mappings a non-differentiable transform may declare (``select`` is implied by ``select=``).
BPDA_MAPPINGS: tuple[str, ...] = ("nearest", "pointwise")


def count_params(*modules: nn.Module | None) -> int:
    """Number of parameters (elements) of some modules, shared tensors counted once."""
    seen: dict[int, int] = {}
    for m in modules:
        if m is not None:
            seen.update({id(p): p.numel() for p in m.parameters()})
    return sum(seen.values())


def pad_by_duplication(clouds: Sequence[torch.Tensor], num_points: int) -> torch.Tensor:
    """Stack clouds of different sizes into (B, num_points, 3) by repeating kept points cyclically.

    Duplicated points do not change max-pooled models, and BPDA through the padding stays the identity.
    """
    out = []
    for c in clouds:
        if c.shape[0] == 0:
            raise ConfigError("a preprocessing step removed every point of a cloud; loosen its parameters")
        idx = torch.arange(num_points, device=c.device) % c.shape[0]
        out.append(c[idx])
    return torch.stack(out)


#: What :meth:`Defense.build` may use: train/val data only, the base backbone and its provenance, factories for
#: backbones, teachers, attacks and weights, cached artifacts, the seed and the device
#: (:class:`robench3d.context.BuildContext`).
DefenseContext = BuildContext


class DefendedModel(nn.Module):
    """``classify(transform(points))``, with the flags the evaluation layer needs.

    Args:
        classify: the differentiable part, points -> logits (usually the backbone).
        transform: optional preprocessing, points (B, N, 3) -> (B, N', 3).
        differentiable: whether gradients through ``transform`` are meaningful (else BPDA is used).
        randomized: whether ``transform`` is random (then adaptive attacks use EOT).
        backbone: the underlying backbone (defaults to ``classify`` when it is one).
        extra_params: parameters the defense adds to what runs at inference on top of the backbone (the papers'
            "+Params": an upsampler, point prompts; 0 for preprocessing and for adversarial training).
        trainable_params: parameters the defense's training changed (adversarial training: the whole backbone;
            a prompt-tuning defense: its prompts and heads; 0 when nothing is trained).
        train_seconds: wall time of the defense's own training (measured when it was trained; cached artifacts
            keep the number), ``None`` when it trains nothing.
        provenance: where any trained part came from (recorded in every row).
        select: optional, for a ``transform`` that only picks input points (removal, resampling, padding by
            duplication): points (B, N, 3) -> indices (B, M) long with ``transform(x) == gather(x, select(x))``,
            drawing the same random numbers as ``transform``. BPDA then gathers the picked points directly instead
            of searching every output point's nearest input: the same gradients, at a fraction of the cost.
        bpda: the backward mapping BPDA uses for a non-differentiable ``transform`` without ``select``:
            ``"nearest"`` (the default: each output point's gradient goes to its nearest input point) or
            ``"pointwise"`` (output point i comes from input point i, e.g. a quantiser or a per-point denoiser;
            the transform must keep N). Rows record it in their ``victim`` column (``bpda:select``,
            ``bpda:pointwise``, ``bpda:nearest``).
    """

    def __init__(
        self,
        classify: nn.Module,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        *,
        differentiable: bool = True,
        randomized: bool = False,
        backbone: Backbone | None = None,
        extra_params: int = 0,
        trainable_params: int = 0,
        train_seconds: float | None = None,
        provenance: Mapping[str, Any] | None = None,
        select: Callable[[torch.Tensor], torch.Tensor] | None = None,
        bpda: str = "nearest",
    ) -> None:
        super().__init__()
        if select is not None and transform is None:
            raise ConfigError("DefendedModel: select= describes a transform; pass transform= too")
        if bpda not in BPDA_MAPPINGS:
            raise ConfigError(f"DefendedModel: bpda={bpda!r} is not a backward mapping; valid: "
                              f"{', '.join(BPDA_MAPPINGS)} (or pass select= for a transform that picks points)")
        self.classify = classify
        self.transform = transform
        self.select = select
        self.differentiable = differentiable
        self.randomized = randomized
        if backbone is None:
            if not isinstance(classify, Backbone):
                raise ConfigError("DefendedModel needs backbone= when classify is not a Backbone")
            backbone = classify
        self._backbone = [backbone]  # a list, so nn.Module does not register it twice
        self.extra_params = int(extra_params)
        self.trainable_params = int(trainable_params)
        self.train_seconds = train_seconds
        self.bpda = "select" if select is not None else bpda
        self.provenance = dict(provenance or {})

    @property
    def backbone(self) -> Backbone:
        return self._backbone[0]

    @property
    def num_classes(self) -> int:
        return self.backbone.num_classes

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        if self.transform is not None:
            if self.differentiable:
                points = self.transform(points)
            else:
                with torch.no_grad():
                    points = self.transform(points)
        return self.classify(points)


class Defense(ABC):
    """Base class of defenses.

    Class variables:
        name: registry name.
        variants: named parameter sets; the first is the default.
        param_specs: :class:`~robench3d.params.Param` declarations (ranges, choices, nullable) beyond what the
            variant values imply; every ``--opt defense.*`` value is checked against them before any training.
        trains: whether :meth:`build` trains something (cached under ``ctx.cache_dir``).
        differentiable, randomized: properties of the preprocessing stage, if any.
        description, references: for listings and docs.
    """

    name: ClassVar[str]
    variants: ClassVar[Mapping[str, Mapping[str, Any]]] = {"default": {}}
    param_specs: ClassVar[Mapping[str, Param]] = {}
    trains: ClassVar[bool] = False
    differentiable: ClassVar[bool] = True
    randomized: ClassVar[bool] = False
    description: ClassVar[str] = ""
    references: ClassVar[str] = ""

    def __init__(self, variant: str | None = None, overrides: Mapping[str, Any] | None = None) -> None:
        variant = variant or next(iter(self.variants))
        if variant not in self.variants:
            raise ConfigError(
                f"defense {self.name!r} has no variant {variant!r}; valid variants: {', '.join(self.variants)}"
            )
        defaults = dict(self.variants[variant])
        params = resolve(defaults, overrides, owner=f"defense {self.name!r}", declared=self.param_specs)
        self.variant = variant
        self.params: dict[str, Any] = params
        self.defaults: dict[str, Any] = defaults
        self.overridden = any(params[k] != defaults[k] for k in params)

    def changed_params(self) -> dict[str, Any]:
        """The parameters whose values differ from the variant (recorded in the rows' ``overrides`` column)."""
        return {k: v for k, v in self.params.items() if v != self.defaults.get(k)}

    @property
    def label(self) -> str:
        """``name`` or ``name:variant`` (``+custom`` when parameters were overridden)."""
        base = self.name if self.variant == next(iter(self.variants)) else f"{self.name}:{self.variant}"
        return base + ("+custom" if self.overridden else "")

    @abstractmethod
    def build(self, ctx: DefenseContext) -> DefendedModel:
        """Build (training if needed) the defended model."""


class PreprocessingDefense(Defense):
    """A defense that only transforms the input of the unchanged backbone. Implement :meth:`transform`.

    Class variables (with their defaults):
        differentiable (False): gradients through :meth:`transform` are meaningless, so the ``adaptive`` setting
            attacks it with BPDA: the forward pass runs the real transform, the backward pass is an identity
            mapping from output points to input points. Set it to True for a transform whose autograd gradients
            are meaningful; the adaptive attack then differentiates through it exactly.
        randomized (False): set it to True when :meth:`transform` draws random numbers; adaptive attacks then
            average over ``--eot-samples`` draws (EOT) and never stop early on one lucky draw.
        bpda ("nearest"): the backward mapping when the transform is not differentiable: implement
            :meth:`select` for a transform that picks input points (the exact mapping, cheapest), set
            ``bpda = "pointwise"`` when output point i comes from input point i (a quantiser, a per-point
            denoiser), else each output point's gradient goes to its nearest input point.
    """

    differentiable: ClassVar[bool] = False
    bpda: ClassVar[str] = "nearest"

    @abstractmethod
    def transform(self, points: torch.Tensor) -> torch.Tensor:
        """Preprocess a batch: (B, N, 3) -> (B, N', 3). Use the global torch RNG for randomness (seeded per cell)."""

    def select(self, points: torch.Tensor) -> torch.Tensor:
        """Optional: the (B, N') long indices of the input points that :meth:`transform` outputs.

        Override it when the transform only picks input points (see ``DefendedModel(select=...)``); it must draw
        the same random numbers as :meth:`transform`. The default says the transform is not a selection.
        """
        raise NotImplementedError

    def build(self, ctx: DefenseContext) -> DefendedModel:
        selects = type(self).select is not PreprocessingDefense.select
        return DefendedModel(ctx.backbone, self.transform, differentiable=self.differentiable,
                             randomized=self.randomized, select=self.select if selects else None, bpda=self.bpda)
