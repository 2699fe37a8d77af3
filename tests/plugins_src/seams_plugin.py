"""A third-party plugin built only on robench3d's public seams (installed as a distribution by the tests).

It registers a teacher and a defense. The defense builds a second backbone through its context, gets the teacher
(prepared and frozen) from the context, caches the teacher's outputs on the training clouds, and trains a point
prompt plus a training-only projection head with two learning rates while everything else stays frozen, logging two
named losses. The trained prompt is cached as an artifact.
"""

from __future__ import annotations

import copy
import json
import os
import time
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from robench3d import DefendedModel, Defense, Trainer, TrainerConfig, hookimpl
from robench3d.params import Param
from robench3d.teachers.base import Teacher, TeacherOutput, teacher_outputs
from robench3d.training.trainer import Callback, ParamGroup


class MeanTeacher(Teacher):
    """A fixed random projection of the mean and spread of a cloud (random init, and says so)."""

    name: ClassVar[str] = "mean_teacher"
    variants: ClassVar[dict[str, dict[str, Any]]] = {"default": {"dim": 8}}
    param_specs: ClassVar[dict[str, Param]] = {"dim": Param(int, minimum=2)}

    def prepare(self, ctx: Any) -> None:
        g = torch.Generator().manual_seed(ctx.seed)
        self.proj = nn.Linear(6, int(self.params["dim"]))
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(self.proj.weight.shape, generator=g))
        self.cls = nn.Linear(int(self.params["dim"]), ctx.dataset.num_classes)
        self.embed_dim = int(self.params["dim"])
        self.provenance = f"random init (seed {ctx.seed}), dim {self.embed_dim}"

    def encode(self, points: torch.Tensor) -> TeacherOutput:
        emb = self.proj(torch.cat([points.mean(1), points.std(1)], dim=1))
        return TeacherOutput(emb, self.cls(emb))


class PromptedStudent(nn.Module):
    """The frozen base backbone with a learnable offset added to every input point (a toy point prompt)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.prompt = nn.Parameter(torch.zeros(3))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.backbone(points + self.prompt)


class _Log(Callback):
    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self.lrs: list[list[float]] = []

    def on_step(self, trainer: Trainer, epoch: int, step: int, logs: Any) -> None:
        self.lrs.append([g["lr"] for g in trainer.optimizer.param_groups])

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs.append(dict(metrics))


class PromptDistill(Defense):
    """Distil the mean teacher into a point prompt of the frozen base backbone."""

    name: ClassVar[str] = "prompt_distill"
    trains: ClassVar[bool] = True
    variants: ClassVar[dict[str, dict[str, Any]]] = {
        "default": {"epochs": 2, "second": "pointnet2_ssg:test", "prompt_lr": 0.05, "head_lr": 0.005}}
    param_specs: ClassVar[dict[str, Param]] = {"epochs": Param(int, minimum=1)}

    def build(self, ctx: Any) -> DefendedModel:
        second = ctx.build_backbone(str(self.params["second"]))  # a second registered backbone, trained + cached
        teacher = ctx.build_teacher("mean_teacher")
        data = ctx.dataset.split("train")
        points = torch.from_numpy(data.points)
        targets = teacher_outputs(teacher, points, ctx=ctx, key={"split": "train"})
        student = PromptedStudent(copy.deepcopy(ctx.backbone))
        head = nn.Linear(ctx.backbone.num_classes, teacher.embed_dim)  # training-only projection to the teacher
        art = ctx.artifact(self.name, {"params": self.params, "teacher": teacher.describe(),
                                       "base": ctx.backbone_provenance})
        info = art.load_into(student, strict=False)
        log = _Log()
        if info is None:
            labels = torch.from_numpy(data.labels)
            wrapper = nn.ModuleDict({"student": student, "head": head})

            def batches(epoch: int) -> list[torch.Tensor]:
                order = torch.randperm(len(points), generator=torch.Generator().manual_seed(epoch))
                return [order[i : i + 16] for i in range(0, len(order), 16)]

            def step(m: nn.Module, idx: torch.Tensor) -> dict[str, Any]:
                logits = m["student"](points[idx])
                ce = F.cross_entropy(logits, labels[idx])
                distill = 1 - F.cosine_similarity(m["head"](logits), targets.embedding[idx]).mean()
                return {"loss": ce + distill, "ce": ce, "distill": distill, "n_seen": len(idx)}

            t0 = time.perf_counter()
            trainer = Trainer(TrainerConfig(epochs=int(self.params["epochs"]), lr=0.01, seed=ctx.seed),
                              frozen=[student.backbone], callbacks=[log], progress=ctx.say)
            trainer.fit(wrapper, batches, step, groups=[
                ParamGroup([student.prompt], lr=float(self.params["prompt_lr"]), name="prompt"),
                ParamGroup(list(head.parameters()), lr=float(self.params["head_lr"]), name="head")])
            info = art.save({"prompt": student.prompt.detach()}, {"epochs": log.epochs, "lrs": log.lrs[:2]},
                            f"prompt_distill trained here from {ctx.backbone_name}",
                            train_seconds=time.perf_counter() - t0)
        if os.environ.get("SEAMS_LOG"):
            with open(os.environ["SEAMS_LOG"], "w") as f:
                json.dump({"second": second.name, "second_provenance": second.provenance,
                           "teacher": teacher.describe(), "info": {k: info.get(k) for k in ("epochs", "lrs")},
                           "teacher_frozen": not any(p.requires_grad for p in teacher.parameters()),
                           "teacher_training": teacher.training}, f, default=str)
        return DefendedModel(student, backbone=ctx.backbone, extra_params=3,
                             trainable_params=3 + sum(p.numel() for p in head.parameters()),
                             train_seconds=info.get("train_seconds"),
                             provenance={"prompt": info["provenance"], "teachers": teacher.label})


@hookimpl
def robench3d_register_teachers() -> list[type]:
    return [MeanTeacher]


@hookimpl
def robench3d_register_defenses() -> list[type]:
    return [PromptDistill]
