"""Shared type aliases and the :class:`Classifier` protocol that attacks talk to."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

__all__ = ["Classifier", "Points"]

#: A batch of point clouds, shape (B, N, 3), float32.
Points = torch.Tensor


@runtime_checkable
class Classifier(Protocol):
    """Anything that maps points (B, N, 3) to logits (B, C): a backbone, a defended model, a BPDA/EOT victim."""

    def __call__(self, points: torch.Tensor) -> torch.Tensor: ...
