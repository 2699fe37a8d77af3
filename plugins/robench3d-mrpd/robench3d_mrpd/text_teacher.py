"""``mrpd_text``: MRPD's text teacher, the class-name embeddings of a frozen text encoder with learnable context.

mrpd.md section 2: "Text: the prompted class text embeddings (they are also the classifier weights)". The class
names go into a template; ``k`` learnable context vectors replace the first ``k`` tokens after the start token
(CoOp); the encoder stays frozen, so only the context vectors (owned by the defense, which trains them) change the
embeddings. Encoders: the bundled MiniLM (real pretrained weights, offline; the default) or an open_clip text tower
whose weights are a local file (``--opt teacher.mrpd_text.encoder=open_clip`` with ``model`` and ``weights``;
variant ``paper``: EVA02-E-14-plus from ``$ROBENCH3D_WEIGHTS/eva02-e-14-plus/open_clip_pytorch_model.bin``).

``weights`` is an existing path, or a file name looked up like a backbone's weights tag by
``ctx.resolve_weights`` (``$ROBENCH3D_WEIGHTS/<name>``, then ``<cache>/weights/<name>``; see
:func:`local_weights`). Nothing is downloaded.

The template defaults to the one the student's cosine head was trained with (robench3d.text.DEFAULT_TEMPLATE), so
with no context the teacher reproduces the student's own classifier exactly.

Shape:
    class_embeddings(class_names, context (k, width) or None) -> (C, D), unit rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from robench3d import ConfigError, Param, Teacher, TeacherOutput, WeightsSpec
from robench3d.text import DEFAULT_TEMPLATE, build_text_encoder, locate_weights

__all__ = ["PAPER_CLIP", "PAPER_CLIP_WEIGHTS", "TextTeacher", "local_weights"]

#: The CLIP of the MRPD paper's code (and of Uni3D's zero-shot classifier): the open_clip config name, and the file
#: its ``paper`` variants expect under $ROBENCH3D_WEIGHTS (open_clip's own file name for it on the hub:
#: https://huggingface.co/timm/eva02_enormous_patch14_plus_clip_224.laion2b_s9b_b144k, open_clip_pytorch_model.bin).
PAPER_CLIP = "EVA02-E-14-plus"
PAPER_CLIP_WEIGHTS = "eva02-e-14-plus/open_clip_pytorch_model.bin"


def local_weights(ctx: Any, value: str, *, teacher: str) -> Path:
    """The file a teacher's ``weights`` option names: an existing path as given, else a file name found by
    ``ctx.resolve_weights`` (``$ROBENCH3D_WEIGHTS/<name>``, ``<cache>/weights/<name>``); a clear ConfigError
    naming the file and $ROBENCH3D_WEIGHTS otherwise."""
    def find(name: str) -> Path | None:
        found: Path | None = ctx.resolve_weights(WeightsSpec(tag=teacher, filename=name, config=""))
        return found

    return locate_weights(value, find, what=f"teacher {teacher!r} weights (--opt teacher.{teacher}.weights)",
                          cache_dir=getattr(ctx, "cache_dir", None))


class TextTeacher(Teacher):
    """A frozen text encoder that embeds class names, differentiable with respect to context vectors."""

    name: ClassVar[str] = "mrpd_text"
    per_class: ClassVar[bool] = True
    variants: ClassVar[dict[str, dict[str, Any]]] = {
        "default": {"encoder": "minilm", "template": DEFAULT_TEMPLATE, "model": "", "weights": ""},
        "paper": {"encoder": "open_clip", "template": DEFAULT_TEMPLATE, "model": PAPER_CLIP,
                  "weights": PAPER_CLIP_WEIGHTS},
    }
    param_specs: ClassVar[dict[str, Param]] = {
        "encoder": Param(str, choices=("minilm", "open_clip")),
        "model": Param(str, help="open_clip model config name or .json (encoder=open_clip)"),
        "weights": Param(str, help="open_clip weights (encoder=open_clip): a path, or a file name in "
                                   "$ROBENCH3D_WEIGHTS"),
    }
    description: ClassVar[str] = ("MRPD text teacher: class-name embeddings with learnable CoOp context (MiniLM, or "
                                  "an open_clip tower from a local file)")
    references: ClassVar[str] = "MRPD, arXiv:2511.21574; CoOp, Zhou et al. IJCV 2022, arXiv:2109.01134"

    def prepare(self, ctx: Any) -> None:
        p = self.params
        if "{}" not in str(p["template"]):
            raise ConfigError(f"teacher 'mrpd_text' template {p['template']!r} needs one '{{}}' for the class name")
        if p["encoder"] == "open_clip":
            if not p["model"] or not p["weights"]:
                raise ConfigError("teacher 'mrpd_text' with encoder=open_clip needs --opt teacher.mrpd_text.model=... "
                                  "and --opt teacher.mrpd_text.weights=<local file>; robench3d never downloads")
            weights = local_weights(ctx, str(p["weights"]), teacher=self.name)
            self.encoder = build_text_encoder("open_clip", model=str(p["model"]), weights=weights)
        else:
            self.encoder = build_text_encoder("minilm")
        self.embed_dim = int(self.encoder.embed_dim)
        self.width = int(self.encoder.width)
        self.provenance = f"{self.encoder.provenance} template {p['template']!r}"

    @property
    def max_context(self) -> int:
        return int(self.encoder.max_context)

    def init_context(self, k: int, *, generator: torch.Generator | None = None) -> torch.nn.Parameter:
        """``k`` learnable context vectors, N(0, 0.05^2) as in mrpd.md. Shape: (k, width)."""
        return self.encoder.init_context(k, generator=generator)

    def class_embeddings(self, class_names: Sequence[str], context: torch.Tensor | None = None) -> torch.Tensor:
        """Unit class embeddings (C, D), differentiable with respect to ``context`` (k, width)."""
        return self.encoder.encode(list(class_names), str(self.params["template"]), context)

    def encode(self, points: torch.Tensor) -> TeacherOutput:
        raise ConfigError("teacher 'mrpd_text' embeds class names, not clouds: use class_embeddings()")
