"""``backbone``: any registered point-cloud backbone as a teacher (trained here, cached, or loaded from a file).

The embedding is the backbone's global embedding (L2-normalised), the logits its classifier's. Typical use: the
3D teacher of a distillation defense (``--opt teacher.backbone.backbone=dgcnn``); it must not be the transfer
surrogate that attacks the student, which the defense checks.

Shape:
    points (B, N, 3) -> embedding (B, D), logits (B, C).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from robench3d.context import BuildContext
from robench3d.params import Param
from robench3d.teachers.base import Teacher, TeacherOutput

__all__ = ["BackboneTeacher"]


class BackboneTeacher(Teacher):
    """A registered backbone (``arch[:config]`` or ``arch.tag``) trained on the dataset or loaded, then frozen."""

    name: ClassVar[str] = "backbone"
    variants: ClassVar[dict[str, dict[str, Any]]] = {"default": {"backbone": "pointnet2_msg"}}
    param_specs: ClassVar[dict[str, Param]] = {"backbone": Param(str, help="ARCH[.TAG][:CONFIG] of the teacher")}
    needs_training: ClassVar[bool] = True
    description: ClassVar[str] = "a registered backbone as a frozen teacher (trained here or loaded)"

    def prepare(self, ctx: BuildContext) -> None:
        # scope "": the student's --opt backbone.* values stay the student's
        trained = ctx.build_backbone(str(self.params["backbone"]), scope="")
        self.model = trained.model
        self.backbone_name = trained.name
        self.embed_dim = int(self.model.embed_dim)
        self.provenance = f"{trained.name}: {trained.provenance}"
        self.train_seconds = trained.info.get("train_seconds")

    def encode(self, points: torch.Tensor) -> TeacherOutput:
        emb = self.model.embed(points)
        return TeacherOutput(emb, self.model.head(emb))
