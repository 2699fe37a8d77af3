"""Attack throughput on CPU: seconds per sample of every registered attack, and the overhead of our PGD loop.

Run:  python benchmarks/bench_attacks.py [--batch 8] [--points 1024] [--threads N]   (about 3-5 minutes here)

Tables printed:

1. Seconds per sample of each attack on PointNet (``cpu`` configuration, random init, 15 classes), B x N random
   clouds on the unit sphere. Early stopping / abort-early is switched OFF so every sample runs every iteration
   (a random-init model would otherwise be broken in one step and the numbers would say nothing): these are
   upper bounds. ``quick`` is measured. The full presets (``standard``) are *extrapolated*: each attack is run
   with k1 = 5 and k2 = 25 iterations (queries: 50 and 250; one binary step), giving a fixed cost per binary step
   and a cost per iteration, then scaled: ``binary_steps * fixed + total_iterations * per_iteration``.
2. Our ``pgd_linf`` (50 steps, eps 0.05) against a straightforward reference loop written here (same model,
   inputs, steps): wall-time ratio, with early stopping off (same work) and on.
3. PGD wall time / (steps x one forward+backward of the same batch), floored at 1.0: the loop's own overhead.

Timings are the minimum over repeats, on whatever else the machine is doing: compare ratios within one run.
The AdvPC autoencoder is random-init here (its training time is not part of an attack call; ``prepare`` trains it
once per dataset and caches it).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
import torch.nn.functional as F
from _timing import best_time

from robench3d.attacks._autoencoder import PointAutoEncoder
from robench3d.attacks.advpc import AdvPC
from robench3d.attacks.base import Attack
from robench3d.backbones.pointnet import POINTNET
from robench3d.evaluation.victims import ScoreOracle
from robench3d.norms import Setting
from robench3d.plugins import build_plugin_manager, build_registries

ITER_KEYS = ("steps", "iterations", "queries")
NO_EARLY = {"early_stop": False, "abort_early": False}


def clouds(b: int, n: int, num_classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random clouds on the unit sphere (plus a little noise) and random labels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, 3, generator=g)
    x = x / x.norm(dim=2, keepdim=True) + 0.02 * torch.randn(b, n, 3, generator=g)
    return x, torch.randint(0, num_classes, (b,), generator=g)


def build(cls: type[Attack], preset: str, overrides: dict[str, Any], n: int) -> Attack:
    params = cls.presets[preset]
    attack = cls(preset, {k: v for k, v in {**NO_EARLY, **overrides}.items() if k in params}, seed=0)
    if isinstance(attack, AdvPC):
        torch.manual_seed(0)
        attack.autoencoder = PointAutoEncoder(n).eval().requires_grad_(False)
    return attack


def total_iterations(params: dict[str, Any]) -> tuple[str, int]:
    """The iteration key of a preset and its total count (binary steps included)."""
    for key in ITER_KEYS:
        if key in params:
            return key, int(params[key]) * int(params.get("binary_steps", 1))
    return "", 1


def time_attack(cls: type[Attack], model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                targets: torch.Tensor) -> str:
    """One row of table 1."""
    b, n = x.shape[:2]
    victim = model if Setting.OBLIVIOUS in cls.supported_settings else ScoreOracle(model)

    def seconds(preset: str, overrides: dict[str, Any]) -> float:
        attack = build(cls, preset, overrides, n)
        return best_time(lambda: attack(victim, x, y, targets if attack.targeted else None, seed=0), warmup=False)

    quick = seconds("quick", {}) / b
    key, full = total_iterations(cls.presets["standard"])
    if not key:  # one-shot or fixed-work attacks (fgsm, drop, noise): the standard run is the measurement
        return f"{cls.name:<11} {quick:>17.4f} {'-':>11} {'-':>14} {seconds('standard', {}) / b:>17.4f} (meas.)"
    k1, k2 = (50, 250) if key == "queries" else (5, 25)
    t1 = seconds("standard", {key: k1, "binary_steps": 1})
    t2 = seconds("standard", {key: k2, "binary_steps": 1})
    per_iter = max(t2 - t1, 0.0) / (k2 - k1)
    fixed = max(t1 - k1 * per_iter, 0.0)
    binaries = int(cls.presets["standard"].get("binary_steps", 1))
    extrapolated = (fixed * binaries + per_iter * full) / b
    return f"{cls.name:<11} {quick:>17.4f} {full:>11d} {per_iter / b:>14.5f} {extrapolated:>17.2f} (extr.)"


def attack_table(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, targets: torch.Tensor) -> None:
    regs = build_registries(build_plugin_manager(autoload=False))
    b, n = x.shape[:2]
    print(f"\n1. seconds per sample, PointNet:cpu random init, B={b}, N={n}, early stopping off (upper bounds)")
    print(f"{'attack':<11} {'quick (measured)':>17} {'full iters':>11} {'s/iter/sample':>14} "
          f"{'standard':>24}")
    for name in regs.attacks.names():
        print(time_attack(regs.attacks.get(name), model, x, y, targets), flush=True)


def reference_pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step: float,
                  steps: int, start: torch.Tensor) -> torch.Tensor:
    """The textbook loop: no active set, no early stopping."""
    adv = (x + start).clamp(x - eps, x + eps)
    for _ in range(steps):
        adv = adv.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(adv), y), adv)
        adv = torch.min(torch.max(adv + step * grad.sign(), x - eps), x + eps)
    return adv.detach()


def pgd_tables(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int) -> None:
    regs = build_registries(build_plugin_manager(autoload=False))
    cls = regs.attacks.get("pgd_linf")
    p = cls.presets["standard"]
    eps, step, steps = float(p["eps"]), float(p["step"]), int(p["steps"])
    start = (torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1) * eps
    ours = cls("standard", {"early_stop": False})
    ours_es = cls("standard")
    t_ref = best_time(lambda: reference_pgd(model, x, y, eps, step, steps, start), repeats, warmup=False)
    t_ours = best_time(lambda: ours(model, x, y, seed=0), repeats, warmup=False)
    t_es = best_time(lambda: ours_es(model, x, y, seed=0), repeats, warmup=False)
    iters = ours_es(model, x, y, seed=0).info["iterations"].float().mean().item()
    print(f"\n2. pgd_linf standard ({steps} steps) vs a reference loop, B={x.shape[0]}, N={x.shape[1]}")
    print(f"{'loop':<34} {'seconds':>8} {'ratio to reference':>19}")
    print(f"{'reference (textbook)':<34} {t_ref:>8.3f} {1.0:>19.2f}")
    print(f"{'ours, early stopping off':<34} {t_ours:>8.3f} {t_ours / t_ref:>19.2f}")
    print(f"{f'ours, early stopping on ({iters:.1f} it.)':<34} {t_es:>8.3f} {t_es / t_ref:>19.2f}")

    xg = x.clone().requires_grad_(True)

    def fwd_bwd() -> None:
        torch.autograd.grad(F.cross_entropy(model(xg), y), xg)

    one = best_time(fwd_bwd, repeats * 3, warmup=False)
    print("\n3. PGD overhead: wall time / (steps x one forward+backward of the same batch), floor 1.0")
    print(f"one forward+backward: {one * 1000:.1f} ms; {steps} of them: {steps * one:.3f} s")
    print(f"ours (early stopping off): {max(t_ours / (steps * one), 1.0):.2f}   "
          f"reference: {max(t_ref / (steps * one), 1.0):.2f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--points", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the PGD timings (minimum is reported)")
    ap.add_argument("--skip-attacks", action="store_true", help="only the PGD tables")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = POINTNET.build(15, "cpu", None).eval().requires_grad_(False)
    x, _ = clouds(args.batch, args.points, 15)
    with torch.no_grad():
        y = model(x).argmax(dim=1)  # the model's own predictions: every sample starts correctly classified
    targets = (y + 1) % 15
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    t0 = time.perf_counter()
    if not args.skip_attacks:
        attack_table(model, x, y, targets)
    pgd_tables(model, x, y, args.repeats)
    print(f"\ntotal benchmark time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
