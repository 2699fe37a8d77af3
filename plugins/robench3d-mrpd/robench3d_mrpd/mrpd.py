"""``mrpd``: Multimodal Robust Prompt Distillation (Gu et al., arXiv:2511.21574, AAAI 2026) as a robench3d defense.

A trained student backbone is frozen; point prompts (tokens fed next to its own), text context vectors (CoOp, in a
frozen text encoder) and a few weights are trained by distillation from frozen teachers (mrpd.md):

* ``image``: a depth projection of the cloud seen by an image encoder (``mrpd_image``);
* ``3d``: another registered backbone (the core ``backbone`` teacher; never the transfer surrogate);
* ``text``: the class-name embeddings with the learnable context (``mrpd_text``).

Losses: the confidence-gated contrastive loss for the image and 3D teachers (the paper's class-level gate), a text
InfoNCE between the student and its samples' class embeddings, combined by uncertainty weighting with a lower
clamp; learnable temperatures; AdamW + cosine, gradient clipping. Schedule: ``clean_epochs`` on the clean training
clouds, then ``adv_epochs`` on a static adversarial set generated once against the unprompted student
(:mod:`.adversarial`); ``adv=online`` (our extension) regenerates the adversarial clouds against the prompted
student batch by batch; ``adv=none`` trains on clean clouds only. Teacher outputs on the clean and the static sets
are computed once and cached, so distillation uses no per-epoch augmentation.

Selection uses val only: the epoch with the best mean of val clean accuracy and val accuracy under the static-set
attack made against the *prompted* student (adaptive, on at most ``val_limit`` val clouds).

At inference only the student, its prompts and the cached class embeddings run (:class:`.model.PromptedStudent`):
``differentiable = True``, so the adaptive setting attacks MRPD with exact gradients through the prompted student.
``extra_params`` = the point prompts; ``trainable_params`` = everything training changed.

Deviations from the paper, stated in every row's defense provenance: teachers trained here on the training clouds
(no CLIP image+text checkpoint can be had offline), a non-text-aligned image teacher whose gate uses its own class
head and whose space the student reaches through a training-only projection, CPU-sized epochs (variant ``mrpd``);
``mrpd:paper`` has the paper's 50 + 50 epochs.

References:
    Gu, Lu, Zheng, Du, Zhou, Pang. Multimodal Robust Prompt Distillation for 3D Point Cloud Models.
    arXiv:2511.21574. Zhou et al. CoOp, arXiv:2109.01134. Kendall et al. uncertainty weighting, arXiv:1705.07115.

Shape:
    points (B, N, 3) -> logits (B, C).
"""

from __future__ import annotations

from typing import Any, ClassVar

from robench3d import DefendedModel, Defense, DefenseContext, Param
from robench3d_mrpd.training import train_or_load

__all__ = ["MRPD"]

TEACHERS = ("image", "3d", "text")

_CPU: dict[str, Any] = {
    "teachers": TEACHERS, "image_teacher": "mrpd_image", "teacher_3d": "pointnet", "text_teacher": "mrpd_text",
    "point_prompts": 10, "prompt_mode": "shallow", "text_context": 3, "prompt_std": 1.0,
    "gate": True, "top_k": 1, "weighting": "dynamic", "clamp": -1.0, "text_loss": "infonce", "temperature": 0.07,
    "adv": "static", "clean_epochs": 3, "adv_epochs": 3, "lr": 1e-3, "weight_decay": 1e-2, "min_lr": 1e-5,
    "batch_size": 32, "grad_clip": 5.0, "val_limit": 64, "max_train": 0, "cache_teachers": True,
    "teacher_projection": "always",
    "adv_eps": 0.08, "adv_step": 0.004, "adv_steps": 20,
}

_SPECS: dict[str, Param] = {
    "teachers": Param(tuple, item=str, choices=TEACHERS, help="which teachers distil (the paper's ablation)"),
    "point_prompts": Param(int, minimum=0), "text_context": Param(int, minimum=0),
    "prompt_mode": Param(str, choices=("shallow", "deep")), "prompt_std": Param(float, minimum=0),
    "top_k": Param(int, minimum=1), "weighting": Param(str, choices=("dynamic", "fixed")),
    "clamp": Param(float, maximum=0), "text_loss": Param(str, choices=("infonce", "ce")),
    "temperature": Param(float, minimum=0.01, maximum=1.0), "adv": Param(str, choices=("static", "online", "none")),
    "clean_epochs": Param(int, minimum=0), "adv_epochs": Param(int, minimum=0),
    "lr": Param(float, minimum=0, exclusive_minimum=True), "weight_decay": Param(float, minimum=0),
    "min_lr": Param(float, minimum=0), "batch_size": Param(int, minimum=2), "grad_clip": Param(float, minimum=0),
    "val_limit": Param(int, minimum=1), "max_train": Param(int, minimum=0), "adv_eps": Param(float, minimum=0),
    "adv_step": Param(float, minimum=0), "adv_steps": Param(int, minimum=1),
    "cache_teachers": Param(bool, help="compute teacher outputs once (false: every step; for benchmarks)"),
    "teacher_projection": Param(str, choices=("always", "if_needed")),
}


class MRPD(Defense):
    """Multimodal robust prompt distillation of a frozen student (variants ``default`` for CPUs, ``paper``)."""

    name: ClassVar[str] = "mrpd"
    variants: ClassVar[dict[str, dict[str, Any]]] = {
        "default": dict(_CPU),
        # The paper code's teachers, from local files (README "mrpd:paper"): EVA02-E-14-plus image and text towers
        # (eva02-e-14-plus/open_clip_pytorch_model.bin) and Uni3D-B (uni3d-b/model.pt), found in $ROBENCH3D_WEIGHTS.
        "paper": {**_CPU, "image_teacher": "mrpd_image:paper", "teacher_3d": "uni3d.b",
                  "text_teacher": "mrpd_text:paper", "point_prompts": 10, "text_context": 3, "clean_epochs": 50,
                  "adv_epochs": 50, "val_limit": 512, "teacher_projection": "if_needed"},
        # The ablations of the MRPD paper (and our online extension), as named variants so that one run compares
        # them all: --defense mrpd,mrpd:no_image,mrpd:no_3d,...
        "no_image": {**_CPU, "teachers": ("3d", "text")},
        "no_3d": {**_CPU, "teachers": ("image", "text")},
        "no_context": {**_CPU, "text_context": 0},
        "no_gate": {**_CPU, "gate": False},
        "fixed_weights": {**_CPU, "weighting": "fixed"},
        "no_prompts": {**_CPU, "point_prompts": 0},
        "online": {**_CPU, "adv": "online"},
    }
    param_specs: ClassVar[dict[str, Param]] = _SPECS
    trains: ClassVar[bool] = True
    differentiable: ClassVar[bool] = True
    randomized: ClassVar[bool] = False
    description: ClassVar[str] = ("MRPD: point prompts + text context distilled from image, 3D and text teachers "
                                  "(gated, uncertainty-weighted), clean then static adversarial epochs")
    references: ClassVar[str] = "Gu et al. 2025, arXiv:2511.21574"

    def build(self, ctx: DefenseContext) -> DefendedModel:
        """Load the cached prompts of this configuration, or distil them (caching them), and return the model."""
        return train_or_load(self, ctx)
