"""How MRPD trains (or loads) its prompts: teachers, cached teacher outputs, the two phases, selection on val.

One :class:`robench3d.Trainer` runs ``clean_epochs + adv_epochs`` epochs on one cosine schedule (AdamW, gradient
clipping); the epoch index picks the phase. Every epoch logs each loss (``L_image``, ``L_3d``, ``L_text``), each
gate's kept fraction (``kept_image``, ``kept_3d``; ``adv_phase`` says which phase the epoch was), the uncertainty
weights (``w_*``), and val clean and val PGD accuracy; all of it is kept in the artifact's sidecar (``history``).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import nn

from robench3d import ConfigError, DefendedModel, Trainer, TrainerConfig
from robench3d.teachers.base import TeacherOutput, teacher_outputs
from robench3d.training.trainer import trained_state
from robench3d_mrpd.adversarial import attack_batches, static_set
from robench3d_mrpd.losses import gated_contrastive, label_contrastive, uncertainty_weighted
from robench3d_mrpd.model import MRPDParts, PromptedStudent, student_text_space

__all__ = ["train_or_load"]

#: Bump when this training changes the prompts it produces for an unchanged configuration.
CODE_VERSION = 1
CLOUD_TEACHERS = ("image", "3d")


def _arch(label: str) -> str:
    return label.split(":", 1)[0].split(".", 1)[0]


def _check(p: dict[str, Any], ctx: Any, student: nn.Module) -> tuple[str, ...]:
    teachers = tuple(t for t in ("image", "3d", "text") if t in p["teachers"])
    if not teachers:
        raise ConfigError("mrpd needs at least one teacher: --opt defense.mrpd.teachers=image,3d,text (any subset)")
    if "3d" in teachers and ctx.surrogate and _arch(str(p["teacher_3d"])) == _arch(ctx.surrogate):
        raise ConfigError(f"mrpd's 3D teacher {p['teacher_3d']!r} is the transfer surrogate {ctx.surrogate!r} that "
                          "attacks its student; pick another with --opt defense.mrpd.teacher_3d=ARCH or another "
                          "--surrogate")
    if p["point_prompts"] and getattr(student, "prompt_dim", None) is None:
        raise ConfigError(f"student {ctx.backbone_name!r} takes no prompts; use a promptable backbone or --opt "
                          "defense.mrpd.point_prompts=0")
    if p["prompt_mode"] == "deep" and not hasattr(student, "prompt_mode"):
        raise ConfigError(f"student {ctx.backbone_name!r} has no deep prompts (uni3d has); use prompt_mode=shallow")
    if p["clean_epochs"] + p["adv_epochs"] < 1:
        raise ConfigError("mrpd needs at least one epoch: raise clean_epochs or adv_epochs")
    return teachers


class _Classifier(nn.Module):
    """The prompted classifier with fixed class embeddings, as an attack victim."""

    def __init__(self, parts: MRPDParts, class_embeddings: torch.Tensor | None) -> None:
        super().__init__()
        self.parts, self.class_embeddings = parts, class_embeddings

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.parts.logits(points, self.class_embeddings)


def _batched(fn: Any, points: torch.Tensor, device: str, size: int = 64) -> torch.Tensor:
    """``fn`` over ``points`` in batches on ``device``; results on the CPU."""
    with torch.no_grad():
        return torch.cat([fn(points[s : s + size].to(device)).cpu() for s in range(0, len(points), size)])


class _Distillation:
    """The state of one MRPD training: data, teachers and their cached outputs, the learnable parts."""

    def __init__(self, defense: Any, ctx: Any, student: nn.Module, teachers: tuple[str, ...]) -> None:
        p = self.p = defense.params
        self.ctx, self.student, self.teachers = ctx, student, teachers
        data = ctx.dataset
        self.class_names = list(data.class_names)
        train = data.split("train")
        m = len(train) if not p["max_train"] else min(int(p["max_train"]), len(train))
        self.x = torch.from_numpy(train.points[:m])
        self.y, self.t = torch.from_numpy(train.labels[:m]), torch.from_numpy(train.targets[:m])
        val = data.split("val")
        self.vx, self.vy, self.vt = (torch.from_numpy(val.points), torch.from_numpy(val.labels),
                                     torch.from_numpy(val.targets))
        overrides = {"eps": p["adv_eps"], "step": p["adv_step"], "steps": p["adv_steps"]}
        self.attack = ctx.attack("pgd_l2", "mrpd-paper", overrides)
        self.cloud: dict[str, Any] = {}
        if "image" in teachers:
            self.cloud["image"] = ctx.build_teacher(str(p["image_teacher"]))
        if "3d" in teachers:
            self.cloud["3d"] = ctx.build_teacher("backbone", {"backbone": str(p["teacher_3d"])})
        cosine = student_text_space(student) is not None
        self.text = ctx.build_teacher(str(p["text_teacher"])) if "text" in teachers else None
        if self.text is not None and cosine and self.text.embed_dim != student_text_space(student):
            raise ConfigError(f"the text teacher embeds into {self.text.embed_dim} dimensions but the student's "
                              f"cosine head classifies in {student_text_space(student)}; use the text encoder the "
                              "student's head was trained with")
        self.cosine = cosine

    def describe_teachers(self) -> dict[str, Any]:
        out = {k: t.describe() for k, t in self.cloud.items()}
        if self.text is not None:
            out["text"] = self.text.describe()
        return out

    def outputs(self, static: torch.Tensor | None, static_key: str) -> dict[str, dict[str, TeacherOutput]]:
        """Every cloud teacher's outputs on the clean training clouds and the static set (computed once, cached)."""
        out: dict[str, dict[str, TeacherOutput]] = {}
        for name, teacher in self.cloud.items():
            out[name] = {"clean": teacher_outputs(teacher, self.x, ctx=self.ctx, key={"split": "train",
                                                                                       "n": len(self.x)})}
            if static is not None:
                out[name]["adv"] = teacher_outputs(teacher, static, ctx=self.ctx, key={"static_set": static_key})
        return out


def _deviations(run: _Distillation, p: dict[str, Any]) -> str:
    """What of this configuration departs from the paper (recorded in every row), from what actually ran."""
    notes = []
    trained_here = [k for k, t in run.cloud.items() if t.needs_training]
    if trained_here:
        notes.append(f"teacher(s) {', '.join(trained_here)} trained here on the training clouds, not zero-shot CLIP")
    image = run.cloud.get("image")
    if image is not None and getattr(image, "params", {}).get("encoder") != "open_clip":
        notes.append("image teacher not text-aligned: gated by its own class head, reached through a training-only "
                     "projection")
    if int(p["clean_epochs"]) + int(p["adv_epochs"]) < 100:
        notes.append(f"{p['clean_epochs']} + {p['adv_epochs']} epochs (paper: 50 + 50)")
    if p["adv"] != "static":
        notes.append(f"adv={p['adv']} (paper: a static set)")
    return "; ".join(notes) or "none"


def train_or_load(defense: Any, ctx: Any) -> DefendedModel:
    """MRPD's defended model (see :mod:`robench3d_mrpd.mrpd`)."""
    p = defense.params
    student = ctx.backbone
    teachers = _check(p, ctx, student)
    if p["prompt_mode"] == "deep":
        student = copy.deepcopy(student)  # the shared base model keeps its own prompt mode
        student.prompt_mode = "deep"
    student.eval()
    run = _Distillation(defense, ctx, student, teachers)
    static, static_info = None, {}
    if p["adv"] == "static" and p["adv_epochs"] > 0:
        static, static_info = static_set(ctx, run.attack, student, run.x, run.y, run.t, key={
            "student": ctx.backbone_provenance, "max_train": p["max_train"]})
    k_ctx = int(p["text_context"]) if run.text is not None else 0
    gen = torch.Generator().manual_seed(ctx.seed)
    context = run.text.init_context(k_ctx, generator=gen) if run.text is not None and k_ctx else None
    dims = {k: int(t.embed_dim) for k, t in run.cloud.items()}
    if run.text is not None:
        dims["text"] = int(run.text.embed_dim)
    parts = MRPDParts(student, prompt_tokens=int(p["point_prompts"]), deep=p["prompt_mode"] == "deep",
                      depth=int(getattr(student, "depth", 1)), context=context, teacher_dims=dims,
                      temperature=float(p["temperature"]), prompt_std=float(p["prompt_std"]),
                      project=str(p["teacher_projection"]), generator=gen)
    parts.to(ctx.device)
    key = {"params": {**p, "text_context": k_ctx}, "student": ctx.backbone_provenance,
           "student_name": ctx.backbone_name, "teachers": run.describe_teachers(),
           "static_set": static_info.get("cache_key", ""), "code": CODE_VERSION}
    art = ctx.artifact(defense.name, key)
    tensors = art.load_tensors()
    if tensors is None:
        info = _train(run, parts, static, art, static_info)
        tensors = art.load_tensors()
        assert tensors is not None
    else:
        info = art.info()
        ctx.say(f"mrpd: cached prompts {art.directory}")
    class_emb = tensors.pop("class_embeddings", None)
    _, unexpected = parts.load_state_dict(tensors, strict=False)
    if unexpected:
        raise ConfigError(f"cached mrpd artifact {art.weights} does not fit ({unexpected[:3]}); delete "
                          f"{art.directory} to retrain")
    classify = PromptedStudent(student, parts.prompts, class_emb)
    teacher_line = ", ".join(f"{k}:{v['teacher']}" for k, v in run.describe_teachers().items())
    seconds = float(info.get("train_seconds") or 0.0) + sum(float(t.train_seconds or 0.0) for t in run.cloud.values())
    provenance = {"mrpd": info["provenance"], "teachers": teacher_line,
                  "teacher_provenance": {k: v["provenance"] for k, v in run.describe_teachers().items()},
                  "selection": info.get("selection", ""), "static_set": static_info.get("provenance", ""),
                  "deviations": _deviations(run, p)}
    return DefendedModel(classify, backbone=ctx.backbone, differentiable=True, randomized=False,
                         extra_params=0 if parts.prompts is None else parts.prompts.numel(),
                         trainable_params=parts.trainable_count(), train_seconds=seconds, provenance=provenance)


def _train(run: _Distillation, parts: MRPDParts, static: torch.Tensor | None, art: Any,
           static_info: dict[str, Any]) -> dict[str, Any]:
    p, ctx = run.p, run.ctx
    t0 = time.perf_counter()
    outs = run.outputs(static, static_info.get("cache_key", "")) if p["cache_teachers"] else {}
    fixed_text = None
    if run.text is not None and parts.context is None:
        fixed_text = run.text.class_embeddings(run.class_names, None)
    epochs = int(p["clean_epochs"]) + int(p["adv_epochs"])
    bs = int(p["batch_size"])

    def class_embeddings(grad: bool) -> torch.Tensor | None:
        if run.text is None:
            return None
        if fixed_text is not None:
            return fixed_text
        with torch.set_grad_enabled(grad):
            return run.text.class_embeddings(run.class_names, parts.context)

    def batches(epoch: int) -> list[tuple[str, torch.Tensor]]:
        phase = "clean" if epoch < int(p["clean_epochs"]) or p["adv"] == "none" else "adv"
        order = torch.randperm(len(run.x), generator=torch.Generator().manual_seed(ctx.seed * 10_007 + epoch))
        return [(phase, order[i : i + bs]) for i in range(0, len(order) - bs + 1, bs)] or [(phase, order)]

    def step(model: nn.Module, batch: tuple[str, torch.Tensor]) -> dict[str, Any]:
        phase, idx = batch
        dev = ctx.device
        y = run.y[idx].to(dev)
        online = phase == "adv" and p["adv"] == "online"
        if phase == "clean":
            x = run.x[idx].to(dev)
        elif online:
            victim = _Classifier(parts, class_embeddings(False)).eval()
            x = attack_batches(run.attack, victim, run.x[idx], run.y[idx], run.t[idx], batch_size=len(idx),
                               seed=ctx.seed, device=dev, early_stop=False).to(dev)
            parts.train()
        else:
            assert static is not None
            x = static[idx].to(dev)
        emb = parts.embed(x)
        losses: dict[str, torch.Tensor] = {}
        logs: dict[str, Any] = {"adv_phase": float(phase == "adv")}
        fresh = online or not p["cache_teachers"]
        for name, teacher in run.cloud.items():
            if fresh:
                with torch.no_grad():
                    out = teacher(x)
            else:
                out = outs[name][phase]
            t_emb, t_logits = ((out.embedding, out.logits) if fresh
                               else (out.embedding[idx].to(dev), out.logits[idx].to(dev)))
            losses[name], kept = gated_contrastive(parts.to_space(name, emb), t_emb, t_logits, y,
                                                   parts.temperature(name), top_k=int(p["top_k"]),
                                                   gate=bool(p["gate"]))
            logs[f"kept_{name}"] = float(kept.float().mean())
        if run.text is not None:
            classes = class_embeddings(True)
            assert classes is not None
            losses["text"] = label_contrastive(parts.to_space("text", emb), classes, y, parts.temperature("text"),
                                               kind=str(p["text_loss"]))
        total, weights = uncertainty_weighted(losses, parts.log_vars, clamp=float(p["clamp"]),
                                              learn=p["weighting"] == "dynamic")
        logs.update({f"L_{k}": float(v.detach()) for k, v in losses.items()})
        logs.update({f"w_{k}": w for k, w in weights.items()})
        return {"loss": total, **logs}

    def validate(model: nn.Module) -> dict[str, float]:
        victim = _Classifier(parts, class_embeddings(False)).eval()
        clean = float((_batched(victim, run.vx, ctx.device).argmax(1) == run.vy).float().mean())
        n = min(int(p["val_limit"]), len(run.vx))
        adv = attack_batches(run.attack, victim, run.vx[:n], run.vy[:n], run.vt[:n], batch_size=32, seed=ctx.seed,
                             device=ctx.device, early_stop=True)
        pgd = float((_batched(victim, adv, ctx.device).argmax(1) == run.vy[:n]).float().mean())
        return {"val_clean": clean, "val_pgd": pgd, "val_select": 0.5 * (clean + pgd)}

    trainer = Trainer(TrainerConfig(epochs=epochs, lr=float(p["lr"]), optimizer="adamw",
                                    weight_decay=float(p["weight_decay"]), min_lr=float(p["min_lr"]),
                                    grad_clip=float(p["grad_clip"]) or None, seed=ctx.seed, select="val_select"),
                      frozen=[parts.student], checkpoint=art.checkpoint, progress=lambda msg: ctx.say(f"mrpd: {msg}"))
    result = trainer.fit(parts, batches, step, validate, steps_per_epoch=max(len(run.x) // bs, 1))
    final = class_embeddings(False) if run.cosine else None
    tensors = trained_state(parts, parts.learnable())
    if final is not None:
        tensors["class_embeddings"] = final.detach()
    n_val = min(int(p["val_limit"]), len(run.vx))
    selection = (f"val: best mean of val clean and val PGD (against the prompted student, {n_val} val clouds) at "
                 f"epoch {result.best_epoch}: {result.best_score:.4f}")
    return art.save(tensors, {"history": result.history, "best_epoch": result.best_epoch, "selection": selection,
                              "teachers": run.describe_teachers(), "static_set": static_info.get("provenance", "")},
                    f"mrpd prompts distilled here on {ctx.dataset.name}@{ctx.dataset.version} seed {ctx.seed}, "
                    f"selected on val (epoch {result.best_epoch})",
                    train_seconds=time.perf_counter() - t0 + float(static_info.get("train_seconds") or 0.0))
