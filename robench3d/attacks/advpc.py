"""AdvPC (``advpc``): an AOF-style clipped C&W attack that must also fool the victim *after* a point autoencoder.

References:
    Hamdi, Rojas, Thabet, Ghanem. AdvPC: Transferable Adversarial Perturbations on 3D Point Clouds.
    arXiv:1912.00461.

The loss is ``(1 - gamma) * loss(f(x')) + gamma * loss(f(AE(x')))`` on the perturbed cloud ``x'``, optimised with
Adam and clipped per point after every step; an iterate counts as a success when both the cloud and its
reconstruction fool the victim (the published success test), and the search keeps the successful iterate of
smallest global L2 norm. The autoencoder (:mod:`robench3d.attacks._autoencoder`) is trained on the dataset's train
split in :meth:`AdvPC.prepare` and cached under the run's cache directory; it is part of the attack, not of the
victim, so it is differentiated exactly in every setting.

Budget: ``l2_point`` eps 0.18.

Args (preset parameters; defaults are ``standard``):
    eps (0.18), kappa (30.0), gamma (0.25), lr (0.01), binary_steps (2), iterations (200; ``quick`` 50),
    c_init / c_max (0.0 / 0.0: no L2 penalty, as AOF), loss ("cw"; "ce" in ``mrpd-paper``), targeted (False;
    True in ``mrpd-paper``), abort_early (True), and the autoencoder's ae_latent (128), ae_epochs (10),
    ae_lr (0.001), ae_batch_size (32), ae_train_points (512: each training step encodes and reconstructs a
    random subset of this many points per cloud).

Shape:
    points (B, N, 3) -> adv_points (B, N, 3); info["iterations"] (B,).

Example:
    >>> attack = AdvPC("quick")
    >>> attack.prepare(AttackContext(dataset, cache_dir))  # doctest: +SKIP
    >>> result = attack(model, points, labels)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from robench3d.attacks._autoencoder import PointAutoEncoder, load_or_train_autoencoder
from robench3d.attacks._cw import CWTerms, cw_search
from robench3d.attacks._distances import clip_l2_point
from robench3d.attacks._losses import attack_loss, succeeded
from robench3d.attacks.base import Attack, AttackContext, AttackResult, victim_logits
from robench3d.errors import ConfigError
from robench3d.norms import Budget, Norm

__all__ = ["AdvPC"]

_AE_KEYS = ("ae_latent", "ae_epochs", "ae_lr", "ae_batch_size", "ae_train_points")
_STANDARD: dict[str, Any] = {"eps": 0.18, "kappa": 30.0, "gamma": 0.25, "lr": 0.01, "binary_steps": 2,
                             "iterations": 200, "c_init": 0.0, "c_max": 0.0, "loss": "cw", "targeted": False,
                             "abort_early": True, "ae_latent": 128, "ae_epochs": 10, "ae_lr": 0.001,
                             "ae_batch_size": 32, "ae_train_points": 512}


class AdvPC(Attack):
    """Autoencoder-guided transferable perturbation, l2_point clip 0.18."""

    name: ClassVar[str] = "advpc"
    norm: ClassVar[Norm] = Norm.L2_POINT
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "standard": dict(_STANDARD),
        "if-defense": dict(_STANDARD),
        "mrpd-paper": {**_STANDARD, "loss": "ce", "targeted": True},
        "quick": {**_STANDARD, "iterations": 50},
    }
    suites: ClassVar[frozenset[str]] = frozenset({"paper8"})
    description: ClassVar[str] = "AdvPC: clipped C&W through a point autoencoder, l2_point 0.18, 2 x 200"
    references: ClassVar[str] = "Hamdi et al. 2020, arXiv:1912.00461"

    autoencoder: PointAutoEncoder | None = None
    autoencoder_provenance: str = ""

    def budget(self, num_points: int) -> Budget:
        return Budget(Norm.L2_POINT, float(self.params["eps"]))

    def prepare(self, ctx: AttackContext) -> None:
        """Load the cached autoencoder for this dataset, or train it on the train split (about a minute)."""
        config = {k: self.params[k] for k in _AE_KEYS}
        self.autoencoder, self.autoencoder_provenance = load_or_train_autoencoder(
            ctx.dataset, ctx.cache_dir, config, seed=ctx.seed, device=ctx.device, progress=ctx.progress)

    def perturb(self, victim: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, labels: torch.Tensor,
                targets: torch.Tensor | None) -> AttackResult:
        if self.autoencoder is None:
            raise ConfigError("advpc needs its autoencoder: call attack.prepare(AttackContext(...)) first")
        ae = self.autoencoder.to(points.device)
        p = self.params
        eps, gamma, kind, kappa = float(p["eps"]), float(p["gamma"]), str(p["loss"]), float(p["kappa"])

        def objective(x: torch.Tensor, idx: torch.Tensor) -> CWTerms:
            t = targets[idx] if targets is not None else None
            logits_adv, logits_rec = victim_logits(victim, x), victim_logits(victim, ae(x))
            loss = (1 - gamma) * attack_loss(logits_adv, labels[idx], t, kind, kappa) \
                + gamma * attack_loss(logits_rec, labels[idx], t, kind, kappa)
            ok = succeeded(logits_adv.detach(), labels[idx], t) & succeeded(logits_rec.detach(), labels[idx], t)
            return CWTerms(loss, (x - points[idx]).flatten(1).norm(dim=1), ok, x)

        def start(_: int) -> torch.Tensor:
            return points + 1e-7 * torch.randn(points.shape, generator=self.generator, device=points.device)

        def project(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            return points[idx] + clip_l2_point(x - points[idx], eps)

        out = cw_search(objective, start, binary_steps=int(p["binary_steps"]), iterations=int(p["iterations"]),
                        lr=float(p["lr"]), c_init=float(p["c_init"]), c_max=float(p["c_max"]), project=project,
                        abort_early=self.stops_early(victim, "abort_early"))
        # The first recorded iterate is the unclipped start (1e-7 off); clip so the budget holds exactly.
        return AttackResult(points + clip_l2_point(out.points - points, eps), {"iterations": out.iterations})
