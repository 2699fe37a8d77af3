"""One trainer for everything robench3d trains: backbones now, adversarial training and prompt distillation later.

The trainer owns what every training loop in a benchmark must get right: deterministic seeding per epoch (so a
resumed run reproduces an uninterrupted one), an Adam/AdamW optimiser with a cosine schedule, frozen parameter
groups, gradient clipping, model selection on a validation score (never on test), checkpoints to resume from, and
progress with an ETA. What a step computes is the caller's ``step`` function.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robench3d.cache import atomic_path
from robench3d.errors import ConfigError

__all__ = ["Callback", "FitResult", "Trainer", "TrainerConfig"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainerConfig:
    """Optimisation settings. ``min_lr`` is the floor of the cosine schedule (per step)."""

    epochs: int = 20
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    min_lr: float = 1e-5
    grad_clip: float | None = None
    seed: int = 0
    log_every: int = 20


class Callback:
    """Override any of these to observe training; return values are ignored."""

    def on_step(self, trainer: Trainer, epoch: int, step: int, loss: float) -> None:
        """After every optimiser step."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        """After every epoch (and its validation)."""


@dataclass
class FitResult:
    """Outcome of :meth:`Trainer.fit`: the selected state (already loaded into the model) and the history."""

    best_epoch: int
    best_score: float | None
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from_epoch: int = 0


def _trainable(params: Iterable[nn.Parameter], frozen: set[int]) -> list[nn.Parameter]:
    return [p for p in params if p.requires_grad and id(p) not in frozen]


class Trainer:
    """Run epochs of ``step(model, batch) -> loss`` with selection on ``validate(model) -> score`` (higher wins).

    Args:
        config: optimisation settings.
        frozen: parameters or modules that must not change (their ``requires_grad`` is restored afterwards;
            frozen modules are kept in eval mode so BatchNorm statistics do not move either).
        callbacks: observers.
        checkpoint: a file to save after every epoch and to resume from if it exists.
        progress: one-line progress messages (the CLI prints them).
    """

    def __init__(
        self,
        config: TrainerConfig,
        *,
        frozen: Sequence[nn.Module | nn.Parameter] = (),
        callbacks: Sequence[Callback] = (),
        checkpoint: Path | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if config.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {config.epochs}")
        if config.optimizer not in ("adam", "adamw", "sgd"):
            raise ConfigError(f"unknown optimizer {config.optimizer!r}; valid: adam, adamw, sgd")
        self.config = config
        self.frozen_modules = [m for m in frozen if isinstance(m, nn.Module)]
        self.frozen_params = [p for m in frozen for p in ([m] if isinstance(m, nn.Parameter) else m.parameters())]
        self.callbacks = list(callbacks)
        self.checkpoint = checkpoint
        self.progress = progress or (lambda msg: logger.info("%s", msg))

    def _optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        c = self.config
        if not params:
            raise ConfigError("nothing to train: every parameter is frozen")
        if c.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=c.lr, momentum=0.9, weight_decay=c.weight_decay)
        return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)

    def fit(
        self,
        model: nn.Module,
        batches: Callable[[int], Iterable[Any]],
        step: Callable[[nn.Module, Any], torch.Tensor],
        validate: Callable[[nn.Module], float] | None = None,
        *,
        steps_per_epoch: int | None = None,
    ) -> FitResult:
        """Train ``model`` in place and load the selected (best-on-validation, else last) weights into it.

        Args:
            batches: ``batches(epoch)`` yields the epoch's batches; it must be deterministic given the epoch.
            step: computes the loss of one batch (the trainer does backward, clipping and the update).
            validate: returns a score on validation data, higher is better.
            steps_per_epoch: for the schedule and ETA; counted from the first epoch when omitted.
        """
        c = self.config
        frozen_ids = {id(p) for p in self.frozen_params}
        saved_flags = [(p, p.requires_grad) for p in self.frozen_params]
        for p in self.frozen_params:
            p.requires_grad_(False)
        params = _trainable(model.parameters(), frozen_ids)
        opt = self._optimizer(params)
        start_epoch, history, best = 0, [], (None, -1, None)  # (score, epoch, state)
        total_steps = None if steps_per_epoch is None else steps_per_epoch * c.epochs
        if self.checkpoint is not None and self.checkpoint.exists():
            start_epoch, history, best = self._resume(model, opt)
            self.progress(f"resuming from {self.checkpoint} after epoch {start_epoch}")
        t0 = time.perf_counter()
        global_step = start_epoch * (steps_per_epoch or 0)
        try:
            for epoch in range(start_epoch, c.epochs):
                # Dropout etc. reseeded per epoch, so a resumed run reproduces an uninterrupted one.
                torch.manual_seed(c.seed * 100_003 + epoch)
                model.train()
                for m in self.frozen_modules:
                    m.eval()
                losses: list[float] = []
                for i, batch in enumerate(batches(epoch)):
                    if total_steps is not None:
                        self._set_lr(opt, global_step, total_steps)
                    loss = step(model, batch)
                    if not torch.isfinite(loss):
                        raise ConfigError(f"training diverged: loss {loss.item()} at epoch {epoch + 1} step {i + 1}; "
                                          "lower the learning rate (--opt train.lr=...)")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if c.grad_clip:
                        torch.nn.utils.clip_grad_norm_(params, c.grad_clip)
                    opt.step()
                    losses.append(float(loss.detach()))
                    global_step += 1
                    for cb in self.callbacks:
                        cb.on_step(self, epoch, i, losses[-1])
                if steps_per_epoch is None:
                    steps_per_epoch = max(len(losses), 1)
                    total_steps = steps_per_epoch * c.epochs
                metrics = {"epoch": float(epoch + 1), "loss": sum(losses) / max(len(losses), 1)}
                if validate is not None:
                    model.eval()
                    with torch.no_grad():
                        metrics["val"] = float(validate(model))
                    if best[0] is None or metrics["val"] > best[0]:
                        best = (metrics["val"], epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
                history.append(metrics)
                for cb in self.callbacks:
                    cb.on_epoch_end(self, epoch, metrics)
                done = epoch + 1 - start_epoch
                eta = (time.perf_counter() - t0) / done * (c.epochs - epoch - 1)
                val = f" val {metrics['val']:.4f}" if "val" in metrics else ""
                self.progress(f"epoch {epoch + 1}/{c.epochs} loss {metrics['loss']:.4f}{val} ETA {eta:.0f}s")
                self._save(model, opt, epoch + 1, history, best)
        finally:
            for p, flag in saved_flags:
                p.requires_grad_(flag)
        if best[2] is not None:
            model.load_state_dict(best[2])
        model.eval()
        return FitResult(best_epoch=best[1] + 1 if best[1] >= 0 else c.epochs, best_score=best[0], history=history,
                         seconds=time.perf_counter() - t0, resumed_from_epoch=start_epoch)

    def _set_lr(self, opt: torch.optim.Optimizer, step: int, total: int) -> None:
        c = self.config
        lr = c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
        for group in opt.param_groups:
            group["lr"] = lr

    def _save(self, model: nn.Module, opt: torch.optim.Optimizer, epoch: int, history: list[dict[str, float]],
              best: tuple[float | None, int, dict[str, torch.Tensor] | None]) -> None:
        if self.checkpoint is None:
            return
        state = {"epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(), "history": history,
                 "best_score": best[0], "best_epoch": best[1], "best_state": best[2] or {}}
        with atomic_path(self.checkpoint) as tmp:
            torch.save(state, tmp)

    def _resume(self, model: nn.Module, opt: torch.optim.Optimizer
                ) -> tuple[int, list[dict[str, float]], tuple[float | None, int, dict[str, torch.Tensor] | None]]:
        assert self.checkpoint is not None
        try:
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)  # no pickled code
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError, EOFError) as exc:
            raise ConfigError(
                f"cannot resume from checkpoint {self.checkpoint}: {exc}; delete it to start over"
            ) from exc
        best_state = state["best_state"] or None
        return int(state["epoch"]), list(state["history"]), (state["best_score"], int(state["best_epoch"]), best_state)
