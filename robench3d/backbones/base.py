"""The backbone API: point-cloud classifiers with features, embeddings, optional prompts and a swappable head.

Every backbone maps points (B, N, 3) to logits (B, C) through three public steps:

* :meth:`Backbone.forward_features`: per-point (or per-group) features before global pooling, (B, C_f, M);
* :meth:`Backbone.embed`: the global embedding (B, D), optionally with learnable *prompt tokens* (B or 1, P,
  prompt_dim) that the backbone accepts (MRPD's point prompts);
* the head: :class:`LinearHead`, or :class:`CosineHead` (cosine similarity to fixed class embeddings, scaled).

A :class:`BackboneSpec` registers an architecture: its factory, named configurations (``cpu`` for this 2-core
machine, ``paper`` for GPU users), the training recipe of each configuration, and pretrained weight tags.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from robench3d.errors import ConfigError
from robench3d.params import Param, dataclass_specs, resolve, signature_defaults

__all__ = [
    "Backbone",
    "BackboneSpec",
    "CosineHead",
    "LinearHead",
    "TrainRecipe",
    "WeightsSpec",
    "build_head",
]


class LinearHead(nn.Module):
    """A linear classifier on the embedding. Shape: (B, D) -> (B, C)."""

    def __init__(self, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(embed_dim, num_classes)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.fc(emb)


class CosineHead(nn.Module):
    """Cosine similarity between the L2-normalised embedding and class embeddings, times a scale.

    The class embeddings (C, D_c) can be given at call time (``head(emb, class_embeddings)``), so a prompted text
    side (learnable context vectors in a text encoder) changes the classifier while it trains; otherwise the stored
    ones are used: a buffer, not parameters, set at construction (for example MiniLM embeddings of the class names)
    and replaced with :meth:`set_class_embeddings` (e.g. once at inference, after prompt tuning). When D_c differs
    from the backbone's embedding size a learned linear projection maps the embedding first.

    Shape: (B, D), optional (C, D_c) -> (B, C).
    """

    def __init__(self, embed_dim: int, class_embeddings: torch.Tensor, scale: float = 1 / 0.07) -> None:
        super().__init__()
        emb = F.normalize(class_embeddings.detach().float(), dim=-1)
        self.register_buffer("class_embeddings", emb)
        self.proj: nn.Module = nn.Identity() if emb.shape[1] == embed_dim else nn.Linear(embed_dim, emb.shape[1])
        self.scale = float(scale)

    def set_class_embeddings(self, class_embeddings: torch.Tensor) -> None:
        """Store (a detached, normalised copy of) new class embeddings, e.g. computed once from prompted text."""
        if class_embeddings.shape != self.class_embeddings.shape:
            raise ConfigError(f"class embeddings must keep shape {tuple(self.class_embeddings.shape)}; got "
                              f"{tuple(class_embeddings.shape)}")
        self.class_embeddings.copy_(F.normalize(class_embeddings.detach().float(), dim=-1))

    def forward(self, emb: torch.Tensor, class_embeddings: torch.Tensor | None = None) -> torch.Tensor:
        z = F.normalize(self.proj(emb), dim=-1)
        classes = self.class_embeddings if class_embeddings is None else F.normalize(class_embeddings, dim=-1)
        return self.scale * z @ classes.t()


def build_head(kind: str, embed_dim: int, num_classes: int, class_embeddings: torch.Tensor | None = None) -> nn.Module:
    """Build ``linear`` or ``cosine`` head; a cosine head needs class embeddings of C rows."""
    if kind == "linear":
        return LinearHead(embed_dim, num_classes)
    if kind == "cosine":
        if class_embeddings is None or class_embeddings.shape[0] != num_classes:
            raise ConfigError(
                f"a cosine head needs class embeddings with {num_classes} rows; got "
                f"{None if class_embeddings is None else tuple(class_embeddings.shape)}"
            )
        return CosineHead(embed_dim, class_embeddings)
    raise ConfigError(f"unknown head {kind!r}; valid heads: linear, cosine")


class Backbone(nn.Module):
    """Base class of point-cloud classifiers.

    Subclasses implement :meth:`forward_features` and :meth:`embed`, and set ``embed_dim`` and ``prompt_dim``
    (``None`` if the backbone takes no prompts). ``self.head`` is attached by :meth:`BackboneSpec.build`.

    Shape:
        points: (B, N, 3) float32. logits: (B, C). embedding: (B, D). prompts: (1 or B, P, prompt_dim).
    """

    arch: ClassVar[str] = ""

    def __init__(self, num_classes: int, embed_dim: int, prompt_dim: int | None = None) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.prompt_dim = prompt_dim
        self.head: nn.Module = LinearHead(embed_dim, num_classes)

    @property
    def supports_prompts(self) -> bool:
        return self.prompt_dim is not None

    @abstractmethod
    def forward_features(self, points: torch.Tensor) -> torch.Tensor:
        """Per-point (or per-group) features before pooling, (B, C_f, M)."""

    @abstractmethod
    def embed(self, points: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        """The global embedding (B, D); ``prompts`` are learnable tokens the backbone accepts."""

    def check_prompts(self, prompts: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """Validate prompt tokens for a batch of ``batch`` clouds and expand them to (B, P, prompt_dim).

        Raises :class:`ConfigError` when this backbone takes no prompts or the shape is wrong.
        """
        if prompts is None:
            return None
        if self.prompt_dim is None:
            raise ConfigError(f"backbone {self.arch!r} does not accept prompts")
        if prompts.dim() != 3 or prompts.shape[-1] != self.prompt_dim or prompts.shape[0] not in (1, batch):
            raise ConfigError(
                f"prompts must have shape (1 or {batch}, P, {self.prompt_dim}); got {tuple(prompts.shape)}"
            )
        return prompts.expand(batch, -1, -1)

    # The old private name, kept for plugins written against robench3d 0.1.
    _check_prompts = check_prompts

    def forward(self, points: torch.Tensor, prompts: torch.Tensor | None = None,
                class_embeddings: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, C); ``class_embeddings`` (C, D_c) replace a cosine head's stored ones for this call."""
        emb = self.embed(points, prompts)
        if class_embeddings is None:
            return self.head(emb)
        if not isinstance(self.head, CosineHead):
            raise ConfigError(f"backbone {self.arch!r} has a {type(self.head).__name__}; class embeddings at call "
                              "time need a cosine head (--opt backbone.head=cosine)")
        return self.head(emb, class_embeddings)


@dataclass(frozen=True)
class WeightsSpec:
    """Pretrained weights for a backbone tag (``arch.tag``): where they come from and how to check them.

    robench3d never downloads: ``robench3d_resolve_weights`` finds a local file (cache or ``ROBENCH3D_WEIGHTS``).
    """

    tag: str
    filename: str
    sha256: str | None = None
    config: str = "paper"
    license: str = ""
    origin_url: str = ""
    description: str = ""


_RECIPE_RANGES: dict[str, Param] = {
    "epochs": Param(int, minimum=1), "batch_size": Param(int, minimum=1),
    "lr": Param(float, minimum=0, exclusive_minimum=True), "optimizer": Param(str, choices=("adam", "adamw", "sgd")),
    "weight_decay": Param(float, minimum=0), "min_lr": Param(float, minimum=0),
    "label_smoothing": Param(float, minimum=0, maximum=1), "grad_clip": Param(float, minimum=0, nullable=True),
    "jitter_sigma": Param(float, minimum=0), "jitter_clip": Param(float, minimum=0),
    "num_points": Param(int, minimum=1, nullable=True),
}


@dataclass(frozen=True)
class TrainRecipe:
    """How a backbone configuration is trained (IF-Defense recipe by default: up-axis rotation + jitter).

    The recipe is part of the weights' cache key, so changing any field retrains.
    """

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | adamw
    weight_decay: float = 1e-4
    min_lr: float = 1e-5  # cosine schedule floor
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    rotate: bool = True
    jitter_sigma: float = 0.01
    jitter_clip: float = 0.05
    num_points: int | None = None  # None: the dataset's N

    def with_overrides(self, **kw: Any) -> TrainRecipe:
        """A copy with some fields replaced (``--opt train.epochs=5``)."""
        values = resolve(dataclasses.asdict(self), kw, owner="training recipe (--opt train.*)",
                         declared={**dataclass_specs(self), **_RECIPE_RANGES})
        return replace(self, **{k: values[k] for k in kw})


@dataclass(frozen=True)
class BackboneSpec:
    """Registers an architecture.

    Attributes:
        name: registry name (the architecture; ``arch.tag`` selects pretrained weights).
        factory: ``factory(num_classes=C, **config) -> Backbone``.
        configs: named configurations; ``cpu`` must train here in minutes, ``paper`` is the published size.
        recipes: the :class:`TrainRecipe` of each configuration (missing: the default recipe).
        default_config: the configuration used when none is named.
        default_head: ``linear`` or ``cosine`` (similarity to text embeddings of the class names); ``--opt
            backbone.head=...`` overrides it.
        weights: pretrained weight tags.
        description, paper: for listings and provenance.
    """

    name: str
    factory: Callable[..., Backbone]
    configs: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: {"cpu": {}})
    recipes: Mapping[str, TrainRecipe] = field(default_factory=dict)
    default_config: str = "cpu"
    default_head: str = "linear"
    weights: Mapping[str, WeightsSpec] = field(default_factory=dict)
    description: str = ""
    paper: str = ""

    def config(self, variant: str | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The keyword arguments of a named configuration, with overrides applied."""
        variant = variant or self.default_config
        if variant not in self.configs:
            raise ConfigError(
                f"backbone {self.name!r} has no configuration {variant!r}; valid: {', '.join(self.configs)}"
            )
        cfg = dict(self.configs[variant])
        if overrides:
            # Every option of the factory's signature can be overridden, typed by the configuration's value or
            # the signature's default (``--opt backbone.k=20``, ``--opt backbone.dropout=0.3``).
            known = {**signature_defaults(self.factory), **cfg}
            merged = resolve(known, overrides, owner=f"backbone {self.name!r} (--opt backbone.*)")
            cfg.update({k: merged[k] for k in overrides})
        return cfg

    def recipe(self, variant: str | None = None) -> TrainRecipe:
        """The training recipe of a configuration."""
        return self.recipes.get(variant or self.default_config, TrainRecipe())

    def build(
        self,
        num_classes: int,
        variant: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        *,
        head: str = "linear",
        class_embeddings: torch.Tensor | None = None,
    ) -> Backbone:
        """Instantiate the model with random initialisation and the requested head."""
        cfg = self.config(variant, overrides)
        try:
            model = self.factory(num_classes=num_classes, **cfg)
        except TypeError as exc:
            raise ConfigError(f"backbone {self.name!r}: invalid configuration {cfg}: {exc}") from exc
        model.head = build_head(head, model.embed_dim, num_classes, class_embeddings)
        return model
