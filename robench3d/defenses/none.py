"""``none``: the undefended base model (the reference row of every leaderboard)."""

from __future__ import annotations

from typing import ClassVar

from robench3d.defenses.base import DefendedModel, Defense, DefenseContext

__all__ = ["NoDefense"]


class NoDefense(Defense):
    """The base backbone, unchanged."""

    name: ClassVar[str] = "none"
    description: ClassVar[str] = "no defense: the undefended base model"

    def build(self, ctx: DefenseContext) -> DefendedModel:
        return DefendedModel(ctx.backbone, provenance={"defense": "none"})
