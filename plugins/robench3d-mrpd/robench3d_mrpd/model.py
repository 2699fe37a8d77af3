"""The modules of MRPD: the prompted student that runs at inference, and the learnable parts that train.

At inference only :class:`PromptedStudent` runs: the frozen student with its point prompts (stored tensors) and,
for a cosine-head student, the class embeddings computed once from the trained text context (the classifier the
bare student already has, re-embedded). No teacher and no preprocessing runs, so ``extra_params`` is the prompts'
size.

:class:`MRPDParts` holds everything training changes: the point prompts, the text context vectors, the uncertainty
log-variances, the temperatures and the training-only projection heads into each teacher's space (dropped after
training). The student and the teachers are frozen; nothing of them receives gradients (the tests check it).

Shape:
    points (B, N, 3) -> logits (B, C); prompts (1, P, prompt_dim) (shallow) or (1, P * depth, prompt_dim) (deep).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from robench3d import Backbone
from robench3d.backbones.base import CosineHead

__all__ = ["MRPDParts", "PromptedStudent", "student_text_space"]


def student_text_space(student: Backbone) -> int | None:
    """The size of the space a cosine-head student classifies in (its class embeddings), else ``None``."""
    head = student.head
    return int(head.class_embeddings.shape[1]) if isinstance(head, CosineHead) else None


class PromptedStudent(nn.Module):
    """The frozen student with its trained prompts and (cosine head) cached prompted class embeddings.

    Shape: (B, N, 3) -> (B, C).
    """

    def __init__(self, student: Backbone, prompts: torch.Tensor | None, class_embeddings: torch.Tensor | None) -> None:
        super().__init__()
        self.student = student
        self.register_buffer("prompts", None if prompts is None else prompts.detach().clone())
        self.register_buffer("class_embeddings",
                             None if class_embeddings is None else class_embeddings.detach().clone())

    @property
    def num_classes(self) -> int:
        return self.student.num_classes

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.student(points, self.prompts, self.class_embeddings)


class MRPDParts(nn.Module):
    """The learnable parameters of MRPD.

    Args:
        student: the frozen student (kept as a submodule so the trainer keeps it in eval mode; it holds no
            trainable parameter).
        prompt_tokens: P (0: no point prompts); ``deep`` gives every block of a deep-prompt student its own P.
        context: the text context vectors (k, width), or ``None`` (no text context).
        teacher_dims: embedding size of every active cloud teacher (``image``, ``3d``) and of the text space
            (``text``); a projection head maps the student embedding into each one whose space differs.
        temperature: initial InfoNCE temperature of every teacher (learnable; mrpd.md: 0.07).
        prompt_std: standard deviation of the prompts' initialisation (mrpd.md: 1).
        project: ``always`` (a training-only projection into every cloud teacher's space: our teachers are trained
            here, in spaces of their own) or ``if_needed`` (only when the sizes differ: the paper's CLIP-space
            teachers are compared with the student directly).
    """

    def __init__(self, student: Backbone, *, prompt_tokens: int, deep: bool, depth: int,
                 context: nn.Parameter | None, teacher_dims: dict[str, int], temperature: float = 0.07,
                 prompt_std: float = 1.0, project: str = "always", generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.student = student
        n = prompt_tokens * (depth if deep else 1)
        self.prompts = None
        if n:
            assert student.prompt_dim is not None
            # N(0, prompt_std^2); the released code uses N(0, 1). Max-pooled students (PointNet, DGCNN) need tokens
            # that can win the max to receive any gradient, so a small init would never train there.
            init = torch.randn((1, n, student.prompt_dim), generator=generator) * prompt_std
            self.prompts = nn.Parameter(init)
        self.context = context
        self.log_vars = nn.ParameterDict({k: nn.Parameter(torch.zeros(())) for k in teacher_dims})
        self.log_temps = nn.ParameterDict({k: nn.Parameter(torch.tensor(math.log(temperature)))
                                           for k in teacher_dims})
        text_dim = student_text_space(student)
        heads = {}
        for name, dim in teacher_dims.items():
            if name == "text" and text_dim is not None and text_dim == dim:
                continue  # a cosine-head student already embeds into the text space (its head's projection)
            if project == "if_needed" and dim == student.embed_dim:
                continue  # teacher and student share one (CLIP) space, as in the paper: compared directly
            heads[name] = nn.Linear(student.embed_dim, dim)
        self.heads = nn.ModuleDict(heads)

    def temperature(self, name: str) -> torch.Tensor:
        """A teacher's temperature, kept in [0.01, 1]."""
        return self.log_temps[name].exp().clamp(0.01, 1.0)

    def embed(self, points: torch.Tensor) -> torch.Tensor:
        """The prompted student embedding. Shape: (B, N, 3) -> (B, D)."""
        return self.student.embed(points, self.prompts)

    def to_space(self, name: str, emb: torch.Tensor) -> torch.Tensor:
        """The student embedding mapped into teacher ``name``'s space (the text space of a cosine head: its
        projection; a shared space: the embedding itself). Shape: (B, D) -> (B, D_teacher)."""
        if name in self.heads:
            return self.heads[name](emb)
        if name != "text":
            return emb
        head = self.student.head
        assert isinstance(head, CosineHead)
        return head.proj(emb)

    def logits(self, points: torch.Tensor, class_embeddings: torch.Tensor | None) -> torch.Tensor:
        """The prompted classifier. Shape: (B, N, 3) -> (B, C)."""
        return self.student(points, self.prompts, class_embeddings)

    def trainable_count(self) -> int:
        """Parameters training changes (everything but the frozen student)."""
        return sum(p.numel() for n, p in self.named_parameters() if not n.startswith("student."))

    def learnable(self) -> Sequence[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("student.")]
