"""The teacher API: a frozen model that maps clouds to an L2-normalised embedding and class logits.

Any distillation defense (MRPD's image, 3D and text teachers; a third party's) uses teachers through this seam:

* a :class:`Teacher` declares its parameters like a defense (``variants`` + ``param_specs``; ``--opt
  teacher.NAME.KEY`` reaches them), whether it ``needs_training`` on the dataset, and after :meth:`Teacher.prepare`
  its ``embed_dim`` and ``provenance`` ("trained here on ...", a file hash, "random init");
* calling it gives a :class:`TeacherOutput`: ``embedding`` (B, D) with unit rows, and ``logits`` (B, C) over the
  dataset's classes, so a confidence gate can ask "is the teacher right on this sample?";
* once prepared it is frozen: eval mode, no parameter requires gradients, and ``train()`` keeps it in eval mode;
* :func:`teacher_outputs` computes its outputs on a fixed set of clouds once and caches them as an
  :class:`~robench3d.artifacts.Artifact`, so distillation epochs never re-run the teacher.

A teacher that trains does so in :meth:`Teacher.prepare` through the shared trainer (or
:meth:`~robench3d.context.BuildContext.build_backbone`), caching its weights as an artifact.

Shape:
    points (B, N, 3) -> TeacherOutput(embedding (B, D), logits (B, C)).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from robench3d.context import BuildContext
from robench3d.errors import ConfigError
from robench3d.params import Param, resolve

__all__ = ["Teacher", "TeacherOutput", "teacher_outputs"]


@dataclass
class TeacherOutput:
    """What a teacher says about a batch. Shape: embedding (B, D) unit rows; logits (B, C)."""

    embedding: torch.Tensor
    logits: torch.Tensor

    def correct(self, labels: torch.Tensor, top_k: int = 1) -> torch.Tensor:
        """Bool (B,): the true label is among the teacher's ``top_k`` classes (a confidence gate's test)."""
        k = min(int(top_k), self.logits.shape[1])
        return (self.logits.topk(k, dim=1).indices == labels.view(-1, 1)).any(dim=1)


class Teacher(nn.Module, ABC):
    """Base class of teachers.

    Class variables:
        name: registry name.
        variants: named parameter sets; the first is the default.
        param_specs: :class:`~robench3d.params.Param` declarations beyond what the variant values imply.
        needs_training: whether :meth:`prepare` trains on the dataset's train split (cached as an artifact).
        per_class: the teacher embeds the dataset's *classes*, not clouds (MRPD's text teacher: class-name
            embeddings, possibly with learnable context); it implements ``class_embeddings(...)`` instead of a
            meaningful :meth:`encode`, and :func:`teacher_outputs` refuses it.
        description, references: for listings and docs.

    Attributes (set by :meth:`prepare`):
        embed_dim: size of the embedding.
        provenance: where the weights came from; never present a randomly initialised tower as pretrained.
        train_seconds: wall time of the teacher's own training as measured when it was trained (``None``: none).
    """

    name: ClassVar[str]
    variants: ClassVar[Mapping[str, Mapping[str, Any]]] = {"default": {}}
    param_specs: ClassVar[Mapping[str, Param]] = {}
    needs_training: ClassVar[bool] = False
    per_class: ClassVar[bool] = False
    description: ClassVar[str] = ""
    references: ClassVar[str] = ""

    def __init__(self, variant: str | None = None, overrides: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        variant = variant or next(iter(self.variants))
        if variant not in self.variants:
            raise ConfigError(f"teacher {self.name!r} has no variant {variant!r}; valid variants: "
                              f"{', '.join(self.variants)}")
        defaults = dict(self.variants[variant])
        self.variant = variant
        self.params: dict[str, Any] = resolve(defaults, overrides, owner=f"teacher {self.name!r}",
                                              declared=self.param_specs)
        self.defaults = defaults
        self.embed_dim = 0
        self.provenance = ""
        self.train_seconds: float | None = None  # the teacher's own training, measured when trained (cached)
        self.prepared = False

    @property
    def label(self) -> str:
        """``name`` or ``name:variant`` (``+custom`` when parameters differ from the variant)."""
        base = self.name if self.variant == next(iter(self.variants)) else f"{self.name}:{self.variant}"
        return base + ("+custom" if any(self.params[k] != self.defaults[k] for k in self.params) else "")

    def build(self, ctx: BuildContext) -> Teacher:
        """Prepare (load or train) the teacher on ``ctx``'s training data, then freeze it; returns ``self``."""
        self.prepare(ctx)
        if self.embed_dim <= 0 or not self.provenance:
            raise ConfigError(f"teacher {self.name!r}: prepare() must set embed_dim and provenance")
        self.freeze()
        self.prepared = True
        return self

    @abstractmethod
    def prepare(self, ctx: BuildContext) -> None:
        """Build or load the teacher's model (training it if ``needs_training``); set embed_dim and provenance."""

    @abstractmethod
    def encode(self, points: torch.Tensor) -> TeacherOutput:
        """The teacher's outputs for a batch (the base normalises the embedding)."""

    def freeze(self) -> None:
        """Eval mode and no gradients for every parameter (called by :meth:`build`)."""
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> Teacher:
        """A prepared teacher stays frozen: ``train()`` keeps it in eval mode."""
        return super().train(mode and not self.prepared)

    def forward(self, points: torch.Tensor) -> TeacherOutput:
        out = self.encode(points)
        return TeacherOutput(F.normalize(out.embedding.float(), dim=-1), out.logits.float())

    def describe(self) -> dict[str, Any]:
        """Name, parameters and provenance (recorded with every artifact a defense builds from it)."""
        return {"teacher": self.label, "params": self.params, "provenance": self.provenance,
                "embed_dim": self.embed_dim}


def teacher_outputs(teacher: Teacher, points: torch.Tensor, *, ctx: BuildContext, key: Mapping[str, Any],
                    batch_size: int = 64) -> TeacherOutput:
    """The teacher's outputs on a fixed set of clouds, computed once and cached.

    Args:
        points: the clouds (M, N, 3), e.g. the training split or a static adversarial set.
        key: what identifies ``points`` (e.g. ``{"split": "train"}`` or the adversarial set's configuration); the
            teacher's configuration and provenance are added to it.

    Shape:
        points (M, N, 3) -> TeacherOutput(embedding (M, D), logits (M, C)).
    """
    if teacher.per_class:
        raise ConfigError(f"teacher {teacher.name!r} embeds classes, not clouds: it has no outputs to cache")
    art = ctx.artifact(teacher.name, {**key, "teacher": teacher.describe(), "n": len(points)}, kind="teacher_outputs")
    stored = art.load_tensors()
    if stored is not None:
        return TeacherOutput(stored["embedding"], stored["logits"])
    embs, logits = [], []
    with torch.no_grad():
        for s in range(0, len(points), batch_size):
            out = teacher(points[s : s + batch_size].to(ctx.device))
            embs.append(out.embedding.cpu())
            logits.append(out.logits.cpu())
    result = TeacherOutput(torch.cat(embs), torch.cat(logits))
    art.save({"embedding": result.embedding, "logits": result.logits}, {"teacher": teacher.describe(),
                                                                         "points": dict(key)},
             f"outputs of teacher {teacher.label} ({teacher.provenance})")
    return result
