"""The text-encoder API: frozen class-name encoders that take learnable CoOp-style context vectors.

A :class:`TextEncoder` embeds one sentence per class, ``template.format(class name)``, and returns L2-normalised
class embeddings (C, D). Optionally it takes *context vectors* (k, width): they take the place of k token
embeddings right after the start token, so the encoder sees ``<start> v_1 ... v_k <template sentence> <end>``
(CoOp, Zhou et al., "Learning to Prompt for Vision-Language Models", arXiv 2109.01134; MRPD's text prompt).
The output is differentiable with respect to the context, never with respect to the encoder: its weights are
frozen (``requires_grad`` False, eval mode) when it is built and stay so.

The context vectors belong to the caller (a defense, a trainer), not to the encoder, so an optimiser built from
the caller's parameters trains the context alone. :meth:`TextEncoder.init_context` creates them. The frozen
weights are submodules like any other (``.to(device)`` moves them, ``state_dict()`` holds them), so artifacts
should save the context vectors and the encoder's ``provenance``, not the encoder's state dict.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from robench3d.errors import ConfigError

__all__ = ["DEFAULT_TEMPLATE", "TextEncoder", "class_sentences"]

DEFAULT_TEMPLATE = "a point cloud of a {}."
#: Initial standard deviation of text context vectors: N(0, 0.05^2), as MRPD initialises its text prompt.
DEFAULT_CONTEXT_STD = 0.05


def class_sentences(class_names: Sequence[str], template: str = DEFAULT_TEMPLATE) -> list[str]:
    """One sentence per class: names written as words (``night_stand`` -> ``night stand``) put into ``template``.

    Raises:
        ConfigError: a template without exactly one ``{}``, or no class names.
    """
    if template.count("{}") != 1:
        raise ConfigError(f"the class-name template must contain exactly one '{{}}'; got {template!r}")
    if not class_names:
        raise ConfigError("class_name_embeddings needs at least one class name; got an empty list")
    return [template.format(str(name).replace("_", " ")) for name in class_names]


class TextEncoder(nn.Module):
    """Base class of frozen text encoders with learnable context.

    Subclasses load their weights, call :meth:`_freeze`, set the attributes below and implement
    :meth:`_encode_sentences`.

    Attributes:
        name: the factory name (``minilm``, ``open_clip``).
        width: size of one token embedding, hence of one context vector.
        embed_dim: size of the output class embeddings.
        max_context: how many context vectors fit into the encoder's token sequence (with an empty template).

    Shape:
        context: (k, width), 0 <= k <= max_context. Output of :meth:`encode`: (C, embed_dim), unit rows.
    """

    name: ClassVar[str] = ""
    width: int
    embed_dim: int
    max_context: int

    @property
    @abstractmethod
    def provenance(self) -> str:
        """Which weights these are: model, package version, file hash, or ``random init``; enters cache keys."""

    @abstractmethod
    def _encode_sentences(self, sentences: Sequence[str], context: torch.Tensor | None) -> torch.Tensor:
        """(S, embed_dim) unit rows for the sentences, with ``context`` (k >= 1, width) after the start token."""

    def encode(
        self, class_names: Sequence[str], template: str = DEFAULT_TEMPLATE, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """L2-normalised class embeddings, differentiable with respect to ``context``.

        Args:
            class_names: the dataset's class names, in label order.
            template: a format string with one ``{}`` for the class name; it follows the context vectors.
            context: learnable context vectors placed right after the start token, or None for the plain
                template sentence (k = 0 is the same as None).

        Returns:
            The class embeddings, float32, on the encoder's device.

        Raises:
            ConfigError: a bad template, no class names, a context of the wrong shape or with more than
                ``max_context`` vectors, a sentence too long to leave room for the context, or weights that
                someone unfroze.

        Shape:
            class_names: C; context: (k, width) -> (C, embed_dim).
        """
        sentences = class_sentences(class_names, template)
        ctx = self._check_context(context)
        if any(p.requires_grad for p in self.parameters()):
            # A parent's requires_grad_(True) reaches our parameters without calling our override.
            raise ConfigError(
                f"the weights of text encoder {self.name!r} were unfrozen (requires_grad=True); they must stay "
                f"frozen: train context vectors instead, and leave the encoder out of requires_grad_(True)"
            )
        if ctx is None:
            with torch.no_grad():  # nothing to differentiate: the weights are frozen
                return self._encode_sentences(sentences, None)
        return self._encode_sentences(sentences, ctx)

    def init_context(
        self, k: int, *, std: float = DEFAULT_CONTEXT_STD, generator: torch.Generator | None = None
    ) -> nn.Parameter:
        """Fresh context vectors drawn from N(0, std^2), as a trainable parameter the caller owns.

        Args:
            k: number of context vectors (MRPD uses 3).
            std: standard deviation of the initialisation (0.05 for MRPD's text prompt).
            generator: a seeded generator for reproducible draws.

        Raises:
            ConfigError: ``k`` outside 0..max_context or a negative ``std``.

        Shape:
            -> (k, width), float32, on the CPU (move it with the module that owns it).
        """
        self._check_k(k)
        if std < 0:
            raise ConfigError(f"the context init std must be >= 0; got {std!r}")
        values = torch.randn(k, self.width, generator=generator) * std
        return nn.Parameter(values)

    def _check_k(self, k: int) -> None:
        if not 0 <= k <= self.max_context:
            raise ConfigError(
                f"text encoder {self.name!r} fits at most {self.max_context} context vectors; got k={k!r}; "
                f"use fewer context tokens (MRPD uses 3)"
            )

    def _check_context(self, context: torch.Tensor | None) -> torch.Tensor | None:
        if context is None:
            return None
        if context.dim() != 2 or context.shape[1] != self.width:
            raise ConfigError(
                f"context vectors for text encoder {self.name!r} must have shape (k, {self.width}); got "
                f"{tuple(context.shape)}; create them with encoder.init_context(k)"
            )
        self._check_k(int(context.shape[0]))
        return None if context.shape[0] == 0 else context

    def _freeze(self) -> None:
        """Freeze every weight and switch to eval mode (called once the weights are loaded)."""
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> TextEncoder:
        """Stay in eval mode whatever ``mode`` says: the encoder is frozen (its dropout never runs)."""
        return super().train(False)

    def requires_grad_(self, requires_grad: bool = True) -> TextEncoder:
        """Refuse to unfreeze the weights; train context vectors instead."""
        if requires_grad:
            raise ConfigError(
                f"the weights of text encoder {self.name!r} are frozen and stay so; train context vectors "
                f"(encoder.init_context(k)) instead of the encoder"
            )
        return self

    def extra_repr(self) -> str:
        return f"name={self.name!r}, width={self.width}, embed_dim={self.embed_dim}, max_context={self.max_context}"
