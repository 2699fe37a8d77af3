"""One trainer for everything robench3d trains: backbones, adversarial training, prompt distillation.

The trainer owns what every training loop in a benchmark must get right: deterministic seeding per epoch (so a
resumed run reproduces an uninterrupted one), an Adam/AdamW/SGD optimiser with a cosine schedule, parameter groups
with their own learning rate and weight decay, frozen parameters and modules, gradient clipping, model selection on
a named validation metric (never on test), checkpoints to resume from, and progress with an ETA. What a step
computes is the caller's ``step`` function: a loss tensor, or a dict of named losses and counters that reaches the
callbacks, the epoch metrics and the progress line.

When most of a model is frozen (a prompt-tuning defense around frozen towers), checkpoints and the selected state
hold only what training changes: the trainable parameters and the buffers of the modules that are not frozen, never
copies of the frozen towers. A plain backbone has nothing frozen, so its checkpoints keep every parameter and buffer.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robench3d.cache import atomic_path
from robench3d.errors import ConfigError

__all__ = ["Callback", "FitResult", "ParamGroup", "StepOutput", "Trainer", "TrainerConfig", "trained_state"]

#: What a step returns: the loss, or ``{"loss": tensor, "name": value, ...}`` (values: tensors or numbers;
#: keys starting with ``n_`` are counters, summed over the epoch; the others are averaged).
StepOutput = torch.Tensor | Mapping[str, Any]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainerConfig:
    """Optimisation settings.

    Attributes:
        min_lr: the floor of the cosine schedule (per step); a parameter group with its own ``lr`` decays to
            ``min_lr * group_lr / lr``.
        select: the validation metric that selects the kept epoch (``val`` when ``validate`` returns a number;
            any key of the dict it returns otherwise).
        select_mode: ``max`` (accuracies) or ``min`` (losses, distances).
    """

    epochs: int = 20
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    min_lr: float = 1e-5
    grad_clip: float | None = None
    seed: int = 0
    log_every: int = 20
    select: str = "val"
    select_mode: str = "max"


@dataclass
class ParamGroup:
    """Parameters trained with their own learning rate and weight decay (``None``: the config's)."""

    params: Sequence[nn.Parameter]
    lr: float | None = None
    weight_decay: float | None = None
    name: str = ""


class Callback:
    """Override any of these to observe training; return values are ignored."""

    def on_step(self, trainer: Trainer, epoch: int, step: int, logs: Mapping[str, float]) -> None:
        """After every optimiser step; ``logs`` holds ``loss`` and the step's named values."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        """After every epoch (and its validation): the epoch's averaged values, counters and val metrics."""


@dataclass
class FitResult:
    """Outcome of :meth:`Trainer.fit`: the selected state (already loaded into the model) and the history."""

    best_epoch: int
    best_score: float | None
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from_epoch: int = 0


def _frozen_module_names(model: nn.Module, declared: set[int], trainable: set[int]) -> set[str]:
    """Modules that training does not change: declared frozen, inside a frozen module, or whose parameters are
    all non-trainable. Parameterless modules (activations, affine-free norms) share their parent's status."""
    frozen: set[str] = set()
    for name, module in model.named_modules():
        params = [id(p) for p in module.parameters()]
        parent = name.rpartition(".")[0]
        if (id(module) in declared or (name and parent in frozen)
                or (params and not any(p in trainable for p in params))):
            frozen.add(name)
    return frozen


def trained_state(model: nn.Module, trainable: Iterable[nn.Parameter], frozen_modules: Iterable[nn.Module] = ()
                  ) -> dict[str, torch.Tensor]:
    """What training changes in ``model``: its trainable parameters and the buffers of the modules not frozen.

    Shape: a state-dict subset (name -> tensor), detached copies.
    """
    trainable_ids = {id(p) for p in trainable}
    frozen = _frozen_module_names(model, {id(m) for m in frozen_modules}, trainable_ids)
    saved = model.state_dict(keep_vars=True)  # persistent entries only (no non-persistent buffers)
    params = {n for n, p in model.named_parameters() if id(p) in trainable_ids}
    buffers = {n for n, _ in model.named_buffers() if n.rpartition(".")[0] not in frozen}
    return {n: t.detach().clone() for n, t in saved.items() if n in params or n in buffers}


def _scalar(value: Any) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


class _EpochLog:
    """Named values of one epoch: counters (``n_*``) summed, everything else averaged over the steps."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, logs: Mapping[str, float]) -> None:
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
            self.counts[k] = self.counts.get(k, 0) + 1

    def metrics(self) -> dict[str, float]:
        return {k: (v if k.startswith("n_") else v / max(self.counts[k], 1)) for k, v in self.sums.items()}


class Trainer:
    """Run epochs of ``step(model, batch)`` with selection on ``validate(model)`` (see :class:`TrainerConfig`).

    Args:
        config: optimisation settings.
        frozen: parameters or modules that must not change (their ``requires_grad`` is restored afterwards;
            frozen modules are kept in eval mode so BatchNorm statistics do not move either). Modules whose
            parameters are all non-trainable are treated as frozen too.
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
        if config.select_mode not in ("max", "min"):
            raise ConfigError(f"select_mode must be 'max' or 'min', got {config.select_mode!r}")
        self.config = config
        self.frozen_modules = [m for m in frozen if isinstance(m, nn.Module)]
        self.frozen_params = [p for m in frozen for p in ([m] if isinstance(m, nn.Parameter) else m.parameters())]
        self.callbacks = list(callbacks)
        self.checkpoint = checkpoint
        self.progress = progress or (lambda msg: logger.info("%s", msg))
        self.optimizer: torch.optim.Optimizer | None = None

    def _optimizer(self, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        c = self.config
        if not any(g["params"] for g in groups):
            raise ConfigError("nothing to train: every parameter is frozen")
        groups = [g for g in groups if g["params"]]
        if c.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=c.lr, weight_decay=c.weight_decay)
        if c.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=c.lr, momentum=0.9, weight_decay=c.weight_decay)
        return torch.optim.Adam(groups, lr=c.lr, weight_decay=c.weight_decay)

    def _groups(self, model: nn.Module, groups: Sequence[ParamGroup] | None, frozen_ids: set[int]
                ) -> list[dict[str, Any]]:
        """Optimiser groups: the given ones (frozen parameters removed), the rest of the trainable parameters in
        a default group with the config's learning rate and weight decay."""
        c = self.config
        out, seen = [], set(frozen_ids)
        for g in groups or ():
            params = [p for p in g.params if p.requires_grad and id(p) not in seen]
            seen |= {id(p) for p in params}
            lr = c.lr if g.lr is None else g.lr
            out.append({"params": params, "lr": lr, "base_lr": lr, "name": g.name or f"group{len(out)}",
                        "weight_decay": c.weight_decay if g.weight_decay is None else g.weight_decay})
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]
        if rest or not out:
            out.append({"params": rest, "lr": c.lr, "base_lr": c.lr, "name": "default",
                        "weight_decay": c.weight_decay})
        return out

    def fit(
        self,
        model: nn.Module,
        batches: Callable[[int], Iterable[Any]],
        step: Callable[[nn.Module, Any], StepOutput],
        validate: Callable[[nn.Module], float | Mapping[str, float]] | None = None,
        *,
        steps_per_epoch: int | None = None,
        groups: Sequence[ParamGroup] | None = None,
    ) -> FitResult:
        """Train ``model`` in place and load the selected (best-on-validation, else last) state into it.

        Args:
            batches: ``batches(epoch)`` yields the epoch's batches; it must be deterministic given the epoch.
            step: computes one batch's loss, or a dict with ``loss`` and other named values (the trainer does
                backward, clipping and the update).
            validate: a score on validation data, or a dict of named validation metrics.
            steps_per_epoch: for the schedule and ETA; counted from the first epoch when omitted.
            groups: parameter groups with their own learning rate / weight decay; trainable parameters in no
                group train with the config's.
        """
        c = self.config
        frozen_ids = {id(p) for p in self.frozen_params}
        saved_flags = [(p, p.requires_grad) for p in self.frozen_params]
        for p in self.frozen_params:
            p.requires_grad_(False)
        opt_groups = self._groups(model, groups, frozen_ids)
        params = [p for g in opt_groups for p in g["params"]]
        opt = self._optimizer(opt_groups)
        self.optimizer = opt  # callbacks may read the current learning rates
        inferred = _frozen_module_names(model, {id(m) for m in self.frozen_modules}, {id(p) for p in params})
        eval_modules = [m for n, m in model.named_modules() if n in inferred and n.rpartition(".")[0] not in inferred]
        start_epoch, history, best = 0, [], (None, -1, None)  # (score, epoch, state)
        total_steps = None if steps_per_epoch is None else steps_per_epoch * c.epochs
        if self.checkpoint is not None and self.checkpoint.exists():
            start_epoch, history, best = self._resume(model, opt)
            self.progress(f"resuming from {self.checkpoint} after epoch {start_epoch}")
        t0 = time.perf_counter()
        global_step = start_epoch * (steps_per_epoch or 0)
        try:
            for epoch in range(start_epoch, c.epochs):
                epoch_t0 = time.perf_counter()
                # Dropout etc. reseeded per epoch, so a resumed run reproduces an uninterrupted one.
                torch.manual_seed(c.seed * 100_003 + epoch)
                model.train()
                for m in eval_modules:
                    m.eval()
                log, n_steps = _EpochLog(), 0
                for i, batch in enumerate(batches(epoch)):
                    if total_steps is not None:
                        self._set_lr(opt, global_step, total_steps)
                    out = step(model, batch)
                    loss, logs = self._unpack(out)
                    if not torch.isfinite(loss):
                        raise ConfigError(f"training diverged: loss {loss.item()} at epoch {epoch + 1} step {i + 1}; "
                                          "lower the learning rate (--opt train.lr=...)")
                    opt.zero_grad(set_to_none=True)
                    if loss.requires_grad:
                        loss.backward()
                        if c.grad_clip:
                            torch.nn.utils.clip_grad_norm_(params, c.grad_clip)
                        opt.step()
                    log.add(logs)
                    n_steps += 1
                    global_step += 1
                    for cb in self.callbacks:
                        cb.on_step(self, epoch, i, logs)
                if steps_per_epoch is None:
                    steps_per_epoch = max(n_steps, 1)
                    total_steps = steps_per_epoch * c.epochs
                metrics = {"epoch": float(epoch + 1), **log.metrics()}
                metrics.setdefault("loss", float("nan"))
                if validate is not None:
                    model.eval()
                    with torch.no_grad():
                        scores = validate(model)
                    metrics.update({"val": float(scores)} if not isinstance(scores, Mapping)
                                   else {k: float(v) for k, v in scores.items()})
                    if c.select not in metrics:
                        raise ConfigError(f"validation returned {sorted(set(metrics) - {'epoch'})}, but the trainer "
                                          f"selects on {c.select!r}; return it or set TrainerConfig(select=...)")
                    score = metrics[c.select]
                    better = best[0] is None or (score > best[0] if c.select_mode == "max" else score < best[0])
                    if better:
                        best = (score, epoch, trained_state(model, params, self.frozen_modules))
                metrics["seconds"] = round(time.perf_counter() - epoch_t0, 3)
                history.append(metrics)
                for cb in self.callbacks:
                    cb.on_epoch_end(self, epoch, metrics)
                done = epoch + 1 - start_epoch
                eta = (time.perf_counter() - t0) / done * (c.epochs - epoch - 1)
                self.progress(f"epoch {epoch + 1}/{c.epochs} {self._describe(metrics)} ETA {eta:.0f}s")
                self._save(model, opt, params, epoch + 1, history, best)
        finally:
            for p, flag in saved_flags:
                p.requires_grad_(flag)
            opt.zero_grad(set_to_none=True)  # a trained model carries no stale gradients (or their memory)
        if best[2] is not None:
            _load_subset(model, best[2], "the selected epoch")
        model.eval()
        return FitResult(best_epoch=best[1] + 1 if best[1] >= 0 else c.epochs, best_score=best[0], history=history,
                         seconds=time.perf_counter() - t0, resumed_from_epoch=start_epoch)

    @staticmethod
    def _unpack(out: StepOutput) -> tuple[torch.Tensor, dict[str, float]]:
        if isinstance(out, torch.Tensor):
            return out, {"loss": float(out.detach())}
        if not isinstance(out, Mapping) or "loss" not in out or not isinstance(out["loss"], torch.Tensor):
            raise ConfigError("a training step must return the loss tensor, or a dict with a 'loss' tensor and "
                              f"other named values; got {type(out).__name__}")
        return out["loss"], {k: _scalar(v) for k, v in out.items()}

    @staticmethod
    def _describe(metrics: Mapping[str, float]) -> str:
        parts = [f"loss {metrics['loss']:.4f}"]
        parts += [f"{k} {v:.4g}" for k, v in metrics.items() if k not in ("epoch", "loss", "seconds")]
        return " ".join(parts)

    def _set_lr(self, opt: torch.optim.Optimizer, step: int, total: int) -> None:
        c = self.config
        decay = 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
        for group in opt.param_groups:
            base = group.get("base_lr", c.lr)
            floor = c.min_lr * base / c.lr if c.lr > 0 else c.min_lr
            group["lr"] = floor + (base - floor) * decay

    def _save(self, model: nn.Module, opt: torch.optim.Optimizer, params: list[nn.Parameter], epoch: int,
              history: list[dict[str, float]], best: tuple[float | None, int, dict[str, torch.Tensor] | None]) -> None:
        if self.checkpoint is None:
            return
        state = {"epoch": epoch, "model": trained_state(model, params, self.frozen_modules),
                 "optimizer": opt.state_dict(), "history": history, "best_score": best[0], "best_epoch": best[1],
                 "best_state": best[2] or {}}
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.checkpoint) as tmp:
            torch.save(state, tmp)

    def _resume(self, model: nn.Module, opt: torch.optim.Optimizer
                ) -> tuple[int, list[dict[str, float]], tuple[float | None, int, dict[str, torch.Tensor] | None]]:
        assert self.checkpoint is not None
        try:
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)  # no pickled code
            _load_subset(model, state["model"], f"checkpoint {self.checkpoint}")
            opt.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError, EOFError) as exc:
            raise ConfigError(
                f"cannot resume from checkpoint {self.checkpoint}: {exc}; delete it to start over"
            ) from exc
        best_state = state["best_state"] or None
        return int(state["epoch"]), list(state["history"]), (state["best_score"], int(state["best_epoch"]), best_state)


def _load_subset(model: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load a (possibly partial) state; every key must belong to the model."""
    _, unexpected = model.load_state_dict(dict(state), strict=False)
    if unexpected:
        raise ConfigError(f"{what} holds tensors this model lacks ({unexpected[:3]}); delete it to start over")
