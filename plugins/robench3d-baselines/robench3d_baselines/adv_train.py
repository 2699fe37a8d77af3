"""``adv_train``: PGD adversarial training of the whole backbone (Madry et al.), the ModelNet40-C baseline.

A copy of the trained base backbone (never the original) is trained through the shared Trainer on batches that
mix clean clouds with their PGD adversarial versions: every step attacks the batch with
``ctx.attack_factory("pgd_linf", "standard", {eps 0.05, step 0.01, 7 steps, random start, no early stopping})``
(the model in eval mode while attacked), then takes one gradient step on the concatenation [clean; adversarial]
with equal weights, so BatchNorm statistics see both. Training clouds are augmented as the backbones are
(up-axis rotation, clipped jitter) and, in the ``cpu`` variant, subsampled to 512 points as ``pointnet:cpu`` is.

Initialisation: ``cpu`` fine-tunes from the base weights (a few epochs fit a 2-core CPU); ``paper`` trains the same
architecture from scratch (``init = scratch``), as adversarial training is usually run.

Selection on val, never test: after every epoch, clean accuracy and robust accuracy under the same PGD-7 attack
(with early stopping, which can only make it stronger) on ``val_limit`` val clouds; the epoch with the best mean of
the two is kept (``select = robust`` keeps the best robust accuracy instead). The base model's val numbers are
measured first and recorded with the history in the provenance.

Flags: no preprocessing, so the adaptive setting attacks the trained model with plain gradients
(``differentiable = True``, ``randomized = False``). Parameter counts: ``extra_params`` is 0 (the weights change,
none are added: inference runs a model of the backbone's size) and ``trainable_params`` is the whole backbone's
parameter count (every weight is trained). ``train_seconds`` is the wall time of this training (the base model's
val measurement, the epochs and their val selection), kept in the artifact's sidecar so that a cached load reports
the number measured when it was trained.

References:
    Madry et al. Towards Deep Learning Models Resistant to Adversarial Attacks. arXiv:1706.06083.
    Sun et al. Benchmarking Robustness of 3D Point Cloud Recognition Against Common Corruptions (ModelNet40-C),
    arXiv:2201.12296 (PGD-7 adversarial training of point-cloud backbones).

Shape:
    points (B, N, 3) -> logits (B, C).
"""

from __future__ import annotations

import copy
import logging
import time
import zlib
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from robench3d import (
    Backbone,
    ConfigError,
    DefendedModel,
    Defense,
    DefenseContext,
    Split,
    Trainer,
    TrainerConfig,
    TrainRecipe,
)
from robench3d.defenses.base import count_params
from robench3d.params import Param
from robench3d.training.backbone import augment
from robench3d_baselines._artifacts import Artifact, artifact_for, progress_of, train_seconds_of
from robench3d_baselines._data import epoch_batches, subset_indices

__all__ = ["AdversarialTraining"]

logger = logging.getLogger(__name__)

_PGD: dict[str, Any] = {"eps": 0.05, "step": 0.01, "steps": 7, "random_start": True}

#: Ranges and choices of the parameters (checked before any training).
PARAM_SPECS: dict[str, Param] = {
    "eps": Param(float, minimum=0, help="linf budget of the training attack"),
    "step": Param(float, minimum=0, exclusive_minimum=True, help="PGD step size"),
    "steps": Param(int, minimum=1, help="PGD iterations per training batch"),
    "random_start": Param(bool),
    "epochs": Param(int, minimum=1),
    "lr": Param(float, minimum=0, exclusive_minimum=True),
    "batch_size": Param(int, minimum=1),
    "num_points": Param(int, minimum=0, help="points per training cloud (0 = N)"),
    "max_train": Param(int, minimum=0, help="training clouds (0 = the whole training split)"),
    "val_limit": Param(int, minimum=0, help="val clouds for selection (0 = all)"),
    "init": Param(str, choices=("base", "scratch"), help="start from the base weights or from scratch"),
    "select": Param(str, choices=("mean", "robust"), help="keep the epoch of best mean(clean, robust) or robust"),
}


class AdversarialTraining(Defense):
    """PGD-7 (linf 0.05) adversarial training of a copy of the whole backbone, clean and adversarial mixed.

    Args:
        variant: ``cpu`` (default: fine-tune the base weights for 3 epochs on 600 training clouds of 512 points)
            or ``paper`` (from scratch, 200 epochs on the whole training split at full N).
        overrides: any key of the variant (``--opt defense.epochs=...``), within :data:`PARAM_SPECS`.
    """

    name: ClassVar[str] = "adv_train"
    trains: ClassVar[bool] = True
    differentiable: ClassVar[bool] = True
    randomized: ClassVar[bool] = False
    variants: ClassVar[dict[str, dict[str, Any]]] = {
        "cpu": {**_PGD, "epochs": 3, "lr": 5e-4, "batch_size": 32, "num_points": 512, "max_train": 600,
                "val_limit": 100, "init": "base", "select": "mean"},
        "paper": {**_PGD, "epochs": 200, "lr": 1e-3, "batch_size": 32, "num_points": 0, "max_train": 0,
                  "val_limit": 0, "init": "scratch", "select": "mean"},
    }
    param_specs: ClassVar[dict[str, Param]] = PARAM_SPECS
    description: ClassVar[str] = ("PGD adversarial training of the whole backbone (linf 0.05, step 0.01, 7 steps, "
                                  "random start; clean + adversarial batches); cpu: fine-tunes the base weights")
    references: ClassVar[str] = "Madry et al. 2018, arXiv:1706.06083; ModelNet40-C, arXiv:2201.12296"

    #: What is trained, for descriptions and provenance.
    trained_part: ClassVar[str] = "whole backbone"

    # -- what is trained (overridden by adv_train.head) ------------------------------------------------------------
    def prepare_model(self, model: Backbone, ctx: DefenseContext) -> list[nn.Module | nn.Parameter]:
        """Make ``model`` (a copy of the base) ready to train: return its frozen parts (none here)."""
        if self.params["init"] == "scratch":
            try:
                model.load_state_dict(_fresh_backbone(ctx).state_dict())
            except RuntimeError as exc:  # e.g. the base was built with --opt backbone.* overrides
                raise ConfigError(f"adv_train cannot rebuild {ctx.backbone_name!r} from scratch ({exc}); "
                                  "use --opt defense.init=base") from exc
        elif self.params["init"] != "base":
            raise ConfigError(f"adv_train init={self.params['init']!r} is not valid; use 'base' or 'scratch'")
        return []

    def build(self, ctx: DefenseContext) -> DefendedModel:
        """Load the cached adversarially trained copy of ``ctx.backbone``, or train and cache it."""
        model = copy.deepcopy(ctx.backbone).to(ctx.device)  # never train the base model itself
        frozen = self.prepare_model(model, ctx)
        art = artifact_for(ctx, self.name, {"params": self.params, "backbone": ctx.backbone_name,
                                                   "backbone_provenance": ctx.backbone_provenance})
        info = art.load_into(model)
        if info is None:
            info = self._train(model, frozen, ctx, art)
        else:
            progress_of(ctx, self.name)(f"cached weights {art.directory}")
        model.eval()
        keep = ("provenance", "cache_key", "trained", "selection", "base_val_clean", "base_val_robust",
                "val_clean", "val_robust", "best_epoch")
        return DefendedModel(model, extra_params=max(count_params(model) - count_params(ctx.backbone), 0),
                             trainable_params=_trainable_count(model, frozen), train_seconds=train_seconds_of(info),
                             provenance={"defense": self.label, **{k: info[k] for k in keep if k in info}})

    # -- training -------------------------------------------------------------------------------------------------
    def _pgd(self, ctx: DefenseContext, early_stop: bool) -> Any:
        p = self.params
        return ctx.attack_factory("pgd_linf", "standard", {
            "eps": float(p["eps"]), "step": float(p["step"]), "steps": int(p["steps"]),
            "random_start": bool(p["random_start"]), "early_stop": early_stop})

    def _evaluate(self, model: nn.Module, ctx: DefenseContext, attack: Any) -> tuple[float, float]:
        """(clean, robust) accuracy on the first ``val_limit`` val clouds of a fixed random subset."""
        split = Split.VAL if ctx.dataset.has(Split.VAL) else Split.TRAIN
        arrays = ctx.dataset.split(split)
        idx = subset_indices(len(arrays), int(self.params["val_limit"]), ctx.seed)
        clean = robust = 0
        bs = int(self.params["batch_size"])
        model.eval()
        with torch.enable_grad():  # the Trainer validates under no_grad; PGD needs input gradients
            for j, s in enumerate(range(0, len(idx), bs)):
                x = torch.from_numpy(arrays.points[idx[s : s + bs]]).to(ctx.device)
                y = torch.from_numpy(arrays.labels[idx[s : s + bs]]).to(ctx.device)
                with torch.no_grad():
                    clean += int((model(x).argmax(1) == y).sum())
                adv = attack(model, x, y, seed=ctx.seed * 7919 + j).adv_points
                with torch.no_grad():
                    robust += int((model(adv).argmax(1) == y).sum())
        return clean / len(idx), robust / len(idx)

    def _train(self, model: Backbone, frozen: list[nn.Module | nn.Parameter], ctx: DefenseContext,
               art: Artifact) -> dict[str, Any]:
        t0 = time.perf_counter()
        p = self.params
        say = progress_of(ctx, f"train {self.name} ({self.trained_part}) on {ctx.dataset.name}")
        if p["select"] not in ("mean", "robust"):
            raise ConfigError(f"{self.name} select={p['select']!r} is not valid; use 'mean' or 'robust'")
        train_attack, val_attack = self._pgd(ctx, early_stop=False), self._pgd(ctx, early_stop=True)
        base_clean, base_robust = self._evaluate(model, ctx, val_attack)
        say(f"before training: val clean {base_clean:.3f}, robust {base_robust:.3f}")
        n_pts = int(p["num_points"]) or None
        recipe = TrainRecipe(num_points=n_pts)  # the IF-Defense augmentation (rotation, jitter) + subsampling
        ntrain = len(subset_indices(len(ctx.dataset.split(Split.TRAIN)), int(p["max_train"]), ctx.seed))
        seed_base = ctx.seed * 1_000_003 + zlib.crc32(self.name.encode())

        def batches(epoch: int) -> Any:
            for i, x, y in epoch_batches(ctx.dataset, Split.TRAIN, int(p["batch_size"]), epoch=epoch,
                                         seed=ctx.seed, limit=int(p["max_train"]),
                                         augment=lambda pts, g: augment(pts, g, recipe)):
                yield seed_base + epoch * 100_003 + i, x, y

        def step(m: nn.Module, batch: tuple[int, torch.Tensor, torch.Tensor]) -> torch.Tensor:
            seed, x, y = batch[0], batch[1].to(ctx.device), batch[2].to(ctx.device)
            adv = train_attack(m, x, y, seed=seed).adv_points  # attacks in eval mode, restores train mode
            loss = F.cross_entropy(m(torch.cat([x, adv])), torch.cat([y, y]))
            reg = getattr(m, "regularizer", None)
            return loss + 1e-3 * reg() if reg is not None else loss

        history: list[dict[str, float]] = []

        def validate(m: nn.Module) -> float:
            clean, robust = self._evaluate(m, ctx, val_attack)
            history.append({"val_clean": clean, "val_robust": robust})
            say(f"val clean {clean:.3f}, robust {robust:.3f}")
            return robust if p["select"] == "robust" else (clean + robust) / 2

        trainer = Trainer(TrainerConfig(epochs=int(p["epochs"]), lr=float(p["lr"]), weight_decay=1e-4,
                                        min_lr=float(p["lr"]) / 20, seed=ctx.seed),
                          frozen=frozen, checkpoint=art.checkpoint, progress=say)
        result = trainer.fit(model, batches, step, validate, steps_per_epoch=max(ntrain // int(p["batch_size"]), 1))
        for h, v in zip(result.history[-len(history):], history, strict=False):
            h.update(v)  # a resumed run only has the val numbers of the epochs it ran itself
        best = result.history[result.best_epoch - 1] if result.history else {}
        selection = "mean of val clean and robust accuracy" if p["select"] == "mean" else "val robust accuracy"
        info = {"trained": self.trained_part, "selection": f"best {selection} (PGD-{p['steps']}), "
                f"epoch {result.best_epoch}", "base_val_clean": base_clean, "base_val_robust": base_robust,
                "val_clean": best.get("val_clean"), "val_robust": best.get("val_robust"),
                "best_epoch": result.best_epoch, "history": result.history, "train_clouds": ntrain,
                "fit_seconds": round(result.seconds, 1), "resumed_from_epoch": result.resumed_from_epoch,
                "params": dict(p), "base": ctx.backbone_provenance}
        summary = (f"{self.name} ({self.trained_part}) trained here from {ctx.backbone_name} on "
                   f"{ctx.dataset.name}@{ctx.dataset.version} seed {ctx.seed}, {info['selection']}")
        return art.save(model, info, summary, train_seconds=time.perf_counter() - t0)


def _trainable_count(model: nn.Module, frozen: list[nn.Module | nn.Parameter]) -> int:
    """Parameters of ``model`` outside ``frozen`` (what the Trainer updates), shared tensors counted once."""
    held = {id(q) for f in frozen for q in ([f] if isinstance(f, nn.Parameter) else f.parameters())}
    return sum(q.numel() for q in {id(q): q for q in model.parameters()}.values() if id(q) not in held)


def _fresh_backbone(ctx: DefenseContext) -> Backbone:
    """A newly initialised backbone of the base's architecture and configuration (for ``init = scratch``)."""
    fresh = getattr(ctx.base, "fresh", None)
    if fresh is None:
        raise ConfigError(f"adv_train cannot rebuild backbone {ctx.backbone_name!r} from scratch here (the context "
                          "has no base TrainedBackbone); use --opt defense.init=base")
    torch.manual_seed(ctx.seed)
    model: Backbone = fresh()
    return model
