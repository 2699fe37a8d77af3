"""MRPD's adversarial training clouds: the static set (generated once, cached) and online regeneration.

mrpd.md section 5: the static set is made as the released code makes it: PGD on the *training* split against the
*unprompted* student, targeted towards the stored random wrong class, cross-entropy, whole-cloud L2 budget 0.08
(unscaled), step 0.004, 20 iterations (``pgd_l2`` in its ``mrpd-paper`` preset), generated once and cached. Like
every cloud replayed on another model (here: the prompted student), it is generated without per-sample early
stopping. ``adv=online`` (our extension) regenerates the clouds of each batch against the current prompted student.

Shape:
    points (M, N, 3) -> adversarial points (M, N, 3).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = ["attack_batches", "static_set"]


def attack_batches(attack: Any, victim: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor,
                   labels: torch.Tensor, targets: torch.Tensor, *, batch_size: int, seed: int, device: str,
                   early_stop: bool, progress: Callable[[str], None] | None = None) -> torch.Tensor:
    """Run ``attack`` over ``points`` in batches (seeded per batch). Shape: (M, N, 3) -> (M, N, 3).

    ``progress`` receives a line about every tenth batch (and the last), with the elapsed and remaining time.
    """
    out = []
    total = -(-len(points) // batch_size)
    t0 = time.perf_counter()
    for b, s in enumerate(range(0, len(points), batch_size)):
        sl = slice(s, s + batch_size)
        res = attack(victim, points[sl].to(device), labels[sl].to(device), targets[sl].to(device),
                     seed=seed * 7919 + b, early_stop=early_stop)
        out.append(res.adv_points.cpu())
        if progress is not None and ((b + 1) % 10 == 0 or b + 1 == total):
            spent = time.perf_counter() - t0
            progress(f"batch {b + 1}/{total} ({spent:.0f}s, ETA {spent / (b + 1) * (total - b - 1):.0f}s)")
    return torch.cat(out) if out else points.clone()


def static_set(ctx: Any, attack: Any, student: torch.nn.Module, points: torch.Tensor, labels: torch.Tensor,
               targets: torch.Tensor, *, key: Mapping[str, Any], batch_size: int = 32
               ) -> tuple[torch.Tensor, dict[str, Any]]:
    """The cached static adversarial set of ``points`` against the unprompted ``student``.

    Returns:
        (adversarial points, the artifact's sidecar: provenance and generation seconds).
    """
    art = ctx.artifact("mrpd_static_set", {**key, "attack": attack.name, "preset": attack.preset,
                                           "params": attack.params, "n": len(points)}, kind="adversarial_sets")
    stored = art.load_tensors()
    if stored is not None:
        return stored["points"], art.info()
    ctx.say(f"mrpd: generating the static adversarial set ({len(points)} training clouds, {attack.name} "
            f"{attack.preset}, against the unprompted student)")
    t0 = time.perf_counter()
    student.eval()
    adv = attack_batches(attack, student, points, labels, targets, batch_size=batch_size, seed=ctx.seed,
                         device=ctx.device, early_stop=False, progress=lambda m: ctx.say(f"mrpd: static set {m}"))
    info = art.save({"points": adv}, {"attack": attack.name, "preset": attack.preset, "params": attack.params},
                    f"static set: {attack.name} ({attack.preset}) against the unprompted student, generated here",
                    train_seconds=time.perf_counter() - t0)
    return adv, info
