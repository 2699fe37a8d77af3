"""``dupnet``: DUP-Net, statistical outlier removal followed by a PU-Net upsampler trained here.

Pipeline (protocol.md section 5): SOR (k = 2, alpha = 1.1, mean *squared* k-NN distances as IF-Defense's code:
see :mod:`.sor`; ``sor_squared = false`` gives the Euclidean form of the DUP-Net paper's text) -> resample each
cloud to the upsampler's input size -> PU-Net x r -> the unchanged backbone.

* *Resampling* is deterministic: farthest point sampling among the kept points when there are more than needed,
  and the kept points in farthest-point order repeated cyclically when there are fewer (padding by duplication,
  as IF-Defense pads). Farthest-point order is also what the upsampler's levels expect (see :mod:`.pu_net`).
* *Sizes*: ``in_fraction`` sets the upsampler's input to ``in_fraction * N`` points and the backbone sees
  ``up_ratio`` times that. ``paper`` follows the protocol (1024 -> 4096: ``in_fraction`` 1). The default ``cpu``
  variant feeds N/4 points and upsamples them back to N (256 -> 1024), which costs a quarter of the upsampler
  compute, keeps the backbone at its usual N, and matches the training pairs exactly.
* *Training*: pairs of (N/r farthest points -> the N points) of the same training shapes (random up-axis rotation,
  random farthest-point start), Chamfer + repulsion loss (:func:`.pu_net.upsampling_loss`), selection on val
  Chamfer. Before training, duplicate-and-jitter upsampling (every input point repeated r times plus Gaussian
  noise, the best sigma of a grid, chosen on the same val clouds) is measured on the same pairs; both numbers go
  into the provenance, and a warning is logged if PU-Net does not beat it.

Flags: the SOR stage is the ``transform`` (non-differentiable: the adaptive setting uses BPDA through it);
``classify = backbone(upsampler(x))`` is differentiable and attacked with exact gradients. Nothing is random at
inference, so ``randomized = False``. ``extra_params`` and ``trainable_params`` are both the upsampler's parameter
count (it is what DUP-Net adds at inference and the only part it trains); ``train_seconds`` is the wall time of
the upsampler's training (reference measurement, fit and selection), kept in the artifact's sidecar so a cached
load reports the number measured when it was trained.

References:
    Zhou et al. DUP-Net: Denoiser and Upsampler Network for 3D Adversarial Point Clouds Defense. ICCV 2019,
    arXiv:1812.11017. Yu et al. PU-Net, CVPR 2018, arXiv:1801.06761. IF-Defense, arXiv:2010.05272.

Shape:
    transform: (B, N, 3) -> (B, M, 3), M = round(in_fraction * N); classify: (B, M, 3) -> logits (B, C) via
    (B, up_ratio * M, 3).
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import torch
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
from robench3d.pointops import chamfer, gather_points
from robench3d.training.backbone import augment
from robench3d_baselines._artifacts import Artifact, artifact_for, progress_of, train_seconds_of
from robench3d_baselines._data import epoch_batches, subset_indices
from robench3d_baselines._pointops import farthest_point_resample
from robench3d_baselines.pu_net import PU_NET_CONFIGS, PUNet, build_pu_net, mean_spacing, upsampling_loss
from robench3d_baselines.sor import sor_mask

__all__ = ["DUPNet", "UpsampleThenClassify"]

logger = logging.getLogger(__name__)

#: Noise levels tried for the duplicate-and-jitter reference (the best one on val is reported).
JITTER_SIGMAS = (0.0, 0.0025, 0.005, 0.01, 0.02, 0.04)

_COMMON: dict[str, Any] = {"sor_k": 2, "sor_alpha": 1.1, "sor_squared": True, "up_ratio": 4,
                           "repulsion_weight": 0.01, "repulsion_h": 1.0, "val_limit": 100, "eval_batch": 32}

#: Ranges and choices of the parameters (checked before any training).
PARAM_SPECS: dict[str, Param] = {
    "sor_k": Param(int, minimum=1, help="SOR neighbours per point"),
    "sor_alpha": Param(float, minimum=0, help="SOR threshold: mean + alpha * std"),
    "sor_squared": Param(bool, help="SOR on squared k-NN distances (IF-Defense's code) instead of Euclidean"),
    "up_ratio": Param(int, minimum=1, help="upsampling ratio r"),
    "repulsion_weight": Param(float, minimum=0, help="weight of PU-Net's repulsion term"),
    "repulsion_h": Param(float, minimum=0, exclusive_minimum=True,
                         help="repulsion radius, in units of the target spacing"),
    "val_limit": Param(int, minimum=0, help="val clouds for selection (0 = all)"),
    "eval_batch": Param(int, minimum=1, help="batch size of the val Chamfer evaluation"),
    "in_fraction": Param(float, minimum=0, exclusive_minimum=True, maximum=1,
                         help="upsampler input size as a fraction of N"),
    "arch": Param(str, choices=tuple(PU_NET_CONFIGS), help="PU-Net size"),
    "epochs": Param(int, minimum=1),
    "batch_size": Param(int, minimum=1),
    "lr": Param(float, minimum=0, exclusive_minimum=True),
    "max_train": Param(int, minimum=0, help="training clouds (0 = the whole training split)"),
}


class UpsampleThenClassify(nn.Module):
    """``backbone(upsampler(points))``: the differentiable part of DUP-Net. Shape: (B, M, 3) -> (B, C)."""

    def __init__(self, upsampler: PUNet, backbone: Backbone) -> None:
        super().__init__()
        self.upsampler = upsampler
        self.backbone = backbone

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Logits of the upsampled cloud."""
        return self.backbone(self.upsampler(points))


class DUPNet(Defense):
    """SOR, deterministic resampling, a PU-Net x4 upsampler trained on the training split, then the backbone.

    Args:
        variant: ``cpu`` (default: N/4 -> N, a 0.1 M-parameter upsampler, 6 epochs on 600 training clouds) or
            ``paper`` (N -> 4N, PU-Net's widths, 100 epochs on the whole training split).
        overrides: any key of the variant (``--opt defense.epochs=...``), within :data:`PARAM_SPECS`.
    """

    name: ClassVar[str] = "dupnet"
    trains: ClassVar[bool] = True
    differentiable: ClassVar[bool] = False  # of the transform (SOR); the upsampler is differentiated exactly
    randomized: ClassVar[bool] = False
    variants: ClassVar[dict[str, dict[str, Any]]] = {
        "cpu": {**_COMMON, "in_fraction": 0.25, "arch": "cpu", "epochs": 6, "batch_size": 16, "lr": 5e-3,
                "max_train": 600},
        "paper": {**_COMMON, "in_fraction": 1.0, "arch": "paper", "epochs": 100, "batch_size": 16, "lr": 1e-3,
                  "max_train": 0, "val_limit": 0},
    }
    param_specs: ClassVar[dict[str, Param]] = PARAM_SPECS
    description: ClassVar[str] = ("DUP-Net: SOR(k=2, alpha=1.1, squared) + a PU-Net x4 upsampler trained on the train "
                                  "split (cpu: N/4 -> N; paper: N -> 4N); BPDA through SOR in the adaptive setting")
    references: ClassVar[str] = "DUP-Net, Zhou et al. ICCV 2019, arXiv:1812.11017; PU-Net, arXiv:1801.06761"

    def input_points(self, num_points: int) -> int:
        """How many points the upsampler receives for clouds of ``num_points``."""
        m = round(float(self.params["in_fraction"]) * num_points)
        if not 2 <= m <= num_points:
            raise ConfigError(f"dupnet in_fraction={self.params['in_fraction']!r} gives {m} upsampler input points "
                              f"for N={num_points}; use a value in (0, 1] (--opt defense.in_fraction)")
        return m

    def transform(self, points: torch.Tensor) -> torch.Tensor:
        """SOR, then deterministic resampling to the upsampler's input size. Shape: (B, N, 3) -> (B, M, 3)."""
        return gather_points(points, self.select(points))

    def select(self, points: torch.Tensor) -> torch.Tensor:
        """The input points :meth:`transform` picks. Shape: (B, N, 3) -> (B, M) long."""
        mask = sor_mask(points, int(self.params["sor_k"]), float(self.params["sor_alpha"]),
                        squared=bool(self.params["sor_squared"]))
        return farthest_point_resample(points, self.input_points(points.shape[1]), mask)

    def build(self, ctx: DefenseContext) -> DefendedModel:
        """Load the cached upsampler of this configuration, or train and cache it; wrap it with SOR and the backbone."""
        p = self.params
        net = build_pu_net(str(p["arch"]), int(p["up_ratio"])).to(ctx.device)
        # The upsampler does not depend on the backbone or on the SOR parameters: keyed without them, one trained
        # upsampler serves every backbone and SOR setting.
        key = {k: v for k, v in p.items() if not k.startswith("sor_") and k not in ("in_fraction", "eval_batch")}
        art = artifact_for(ctx, self.name, {"upsampler": key})
        info = art.load_into(net)
        if info is None:
            info = self._train(net, ctx, art)
        else:
            progress_of(ctx, "dupnet")(f"cached upsampler {art.directory}")
        net.eval()
        provenance = {"defense": self.label, "upsampler": info["provenance"], "cache_key": info["cache_key"],
                      "reconstruction_loss": "chamfer", "val_chamfer_punet": info["val_chamfer_punet"],
                      "val_chamfer_dup_jitter": info["val_chamfer_dup_jitter"],
                      "dup_jitter_sigma": info["dup_jitter_sigma"], "beats_dup_jitter": info["beats_dup_jitter"]}
        size = count_params(net)  # added at inference, and the only part trained
        return DefendedModel(UpsampleThenClassify(net, ctx.backbone), self.transform, differentiable=False,
                             randomized=False, backbone=ctx.backbone, select=self.select, extra_params=size,
                             trainable_params=size, train_seconds=train_seconds_of(info), provenance=provenance)

    # -- training -------------------------------------------------------------------------------------------------
    def _val_pairs(self, ctx: DefenseContext) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed validation pairs: (N/r farthest points from the first point, the N points). Never test data."""
        split = Split.VAL if ctx.dataset.has(Split.VAL) else Split.TRAIN
        arrays = ctx.dataset.split(split)
        idx = subset_indices(len(arrays), int(self.params["val_limit"]), ctx.seed)
        target = torch.from_numpy(arrays.points[idx]).to(ctx.device)
        inputs = gather_points(target, farthest_point_resample(target, target.shape[1] // int(self.params["up_ratio"])))
        return inputs, target

    @torch.no_grad()
    def _val_chamfer(self, upsample: Any, inputs: torch.Tensor, target: torch.Tensor) -> float:
        bs = int(self.params["eval_batch"])
        total = sum(float(chamfer(upsample(inputs[s : s + bs]), target[s : s + bs]).sum())
                    for s in range(0, len(inputs), bs))
        return total / len(inputs)

    def _dup_jitter(self, inputs: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
        """Val Chamfer of duplicate-and-jitter upsampling at its best sigma: (chamfer, sigma)."""
        r = int(self.params["up_ratio"])
        gen = torch.Generator(device=inputs.device).manual_seed(0)
        best = (float("inf"), 0.0)
        for sigma in JITTER_SIGMAS:
            def dup(x: torch.Tensor, sigma: float = sigma) -> torch.Tensor:
                rep = x.repeat(1, r, 1)
                return rep + sigma * torch.randn(rep.shape, generator=gen, device=x.device)

            best = min(best, (self._val_chamfer(dup, inputs, target), sigma))
        return best

    def _train(self, net: PUNet, ctx: DefenseContext, art: Artifact) -> dict[str, Any]:
        t0 = time.perf_counter()
        p, say = self.params, progress_of(ctx, f"train dupnet upsampler on {ctx.dataset.name}")
        r, n = int(p["up_ratio"]), ctx.dataset.split(Split.TRAIN).num_points
        if n // r < 4:
            raise ConfigError(f"dupnet cannot train a x{r} upsampler on clouds of {n} points; use more points")
        val_in, val_gt = self._val_pairs(ctx)
        dup_cd, sigma = self._dup_jitter(val_in, val_gt)
        say(f"duplicate-and-jitter reference: val Chamfer {dup_cd:.3e} (sigma {sigma})")
        recipe = TrainRecipe(rotate=True, jitter_sigma=0.0)  # clean targets: only rotate about the up axis
        ntrain = len(subset_indices(len(ctx.dataset.split(Split.TRAIN)), int(p["max_train"]), ctx.seed))
        steps = max(ntrain // int(p["batch_size"]), 1)

        def batches(epoch: int) -> Any:
            return epoch_batches(ctx.dataset, Split.TRAIN, int(p["batch_size"]), epoch=epoch, seed=ctx.seed,
                                 limit=int(p["max_train"]), augment=lambda x, g: augment(x, g, recipe))

        def step(model: nn.Module, batch: tuple[int, torch.Tensor, torch.Tensor]) -> torch.Tensor:
            target = batch[1].to(ctx.device)
            # A random farthest-point start per cloud: varied inputs from the same shape (the Trainer seeds the RNG).
            start = torch.randint(target.shape[1], (target.shape[0],), device=ctx.device)
            inputs = gather_points(target, farthest_point_resample(target, target.shape[1] // r, start=start))
            spacing = mean_spacing(inputs) / r**0.5  # the density the output should have
            return upsampling_loss(model(inputs), target, spacing, float(p["repulsion_weight"]),
                                   float(p["repulsion_h"]))

        trainer = Trainer(TrainerConfig(epochs=int(p["epochs"]), lr=float(p["lr"]), weight_decay=1e-5,
                                        min_lr=float(p["lr"]) / 50, seed=ctx.seed),
                          checkpoint=art.checkpoint, progress=say)
        # Score: minus val Chamfer, scaled to read as a number of order 1 in the progress lines.
        result = trainer.fit(net, batches, step, lambda m: -1e3 * self._val_chamfer(m, val_in, val_gt),
                             steps_per_epoch=steps)
        pu_cd = self._val_chamfer(net, val_in, val_gt)
        beats = pu_cd < dup_cd
        say(f"PU-Net val Chamfer {pu_cd:.3e} vs duplicate-and-jitter {dup_cd:.3e} "
            f"({'better' if beats else 'NOT better'}, ratio {pu_cd / dup_cd:.3f})")
        if not beats:
            logger.warning("dupnet: the trained upsampler does not beat duplicate-and-jitter on val Chamfer "
                           "(%.3e vs %.3e); train longer (--opt defense.epochs=...)", pu_cd, dup_cd)
        info = {"val_chamfer_punet": pu_cd, "val_chamfer_dup_jitter": dup_cd, "dup_jitter_sigma": sigma,
                "beats_dup_jitter": beats, "best_epoch": result.best_epoch, "fit_seconds": round(result.seconds, 1),
                "resumed_from_epoch": result.resumed_from_epoch, "train_clouds": ntrain, "val_clouds": len(val_in),
                "pairs": f"{n // r} -> {n} points", "history": result.history, "reconstruction_loss": "chamfer",
                "params": dict(p)}
        summary = (f"PU-Net x{r} trained here on {ctx.dataset.name}@{ctx.dataset.version} seed {ctx.seed}, "
                   f"best val Chamfer epoch {result.best_epoch}")
        return art.save(net, info, summary, train_seconds=time.perf_counter() - t0)
