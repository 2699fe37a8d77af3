"""Cost of the baseline defenses (robench3d-baselines) on CPU: SOR backends, per-sample latency vs the bare backbone.

Run:  python benchmarks/bench_defenses.py [--batch 32] [--points 1024] [--threads N] [--repeats 3]
      (needs ``pip install -e plugins/robench3d-baselines``; about 1-2 minutes here)

Tables printed:

1. Statistical outlier removal, k-NN statistics of a B x N batch: the batched ``torch`` backend (``cdist`` + ``topk``,
   what runs on an accelerator) against a per-cloud scipy ``cKDTree`` loop (the ``kdtree`` backend, what runs on
   CPU), for the default (k=2) and ``mrpd`` (k=16) settings, with the fraction of points on which their masks agree.
2. Per-sample latency of every baseline's defended model against the bare backbone (PointNet ``cpu``, random init;
   DUP-Net with a random-init ``cpu`` upsampler: cost does not depend on the weights): a forward pass (what the
   result rows report as ``latency_ratio``) and a forward + backward pass of the adaptive victim (BPDA, and EOT
   over 10 draws for SRS): the cost of one iteration of a gradient attack in the adaptive setting.

Timings are the minimum over repeats on whatever else the machine is doing: compare ratios within one run.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from _timing import best_time
from tabulate import tabulate

from robench3d.backbones.pointnet import POINTNET
from robench3d.defenses.base import DefendedModel
from robench3d.evaluation.victims import adaptive_victim
from robench3d_baselines.dupnet import DUPNet, UpsampleThenClassify
from robench3d_baselines.pu_net import build_pu_net
from robench3d_baselines.sor import StatisticalOutlierRemoval, knn_mean_distance, sor_mask, sor_mask_reference
from robench3d_baselines.srs import SimpleRandomSampling


def clouds(b: int, n: int, seed: int = 0) -> torch.Tensor:
    """Random clouds on the unit sphere with a little noise and a few outliers per cloud."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, 3, generator=g)
    x = x / x.norm(dim=2, keepdim=True) + 0.02 * torch.randn(b, n, 3, generator=g)
    x[:, :8] *= 1.3
    return x


def sor_table(x: torch.Tensor, repeats: int) -> list[list[Any]]:
    """Table 1: torch vs cKDTree k-NN statistics for SOR."""
    rows = []
    for k, alpha in ((2, 1.1), (16, 1.0)):
        t_torch = best_time(lambda k=k: knn_mean_distance(x, k, backend="torch"), repeats)
        t_tree = best_time(lambda k=k: knn_mean_distance(x, k, backend="kdtree"), repeats)
        agree = float((sor_mask(x, k, alpha, backend="torch").numpy()
                       == sor_mask_reference(x.numpy(), k, alpha)).mean())
        rows.append([f"k={k}, alpha={alpha}", f"{1000 * t_torch:.1f}", f"{1000 * t_tree:.1f}",
                     f"{t_torch / t_tree:.2f}", f"{agree:.4f}"])
    return rows


def preprocessed(defense: SimpleRandomSampling | StatisticalOutlierRemoval, backbone: Any) -> DefendedModel:
    """What ``PreprocessingDefense.build`` returns, without a full context (only the backbone is used)."""
    return DefendedModel(backbone, defense.transform, differentiable=defense.differentiable,
                         randomized=defense.randomized, select=defense.select)


def latency_table(x: torch.Tensor, repeats: int) -> list[list[Any]]:
    """Table 2: per-sample forward and adaptive forward+backward latency, and their ratios to the bare backbone."""
    torch.manual_seed(0)
    backbone = POINTNET.build(15, "cpu").eval()
    dup = DUPNet("cpu")
    upsampler = build_pu_net("cpu", 4).eval()
    models = {
        "none (bare backbone)": DefendedModel(backbone),
        "srs": preprocessed(SimpleRandomSampling(), backbone),
        "sor": preprocessed(StatisticalOutlierRemoval(), backbone),
        "sor:mrpd": preprocessed(StatisticalOutlierRemoval("mrpd"), backbone),
        "dupnet (cpu: N/4 -> N)": DefendedModel(UpsampleThenClassify(upsampler, backbone), dup.transform,
                                                differentiable=False, randomized=False, backbone=backbone,
                                                select=dup.select),
        # The same SRS victim with BPDA's nearest-input search instead of the declared indices.
        "srs, nearest-input BPDA": DefendedModel(backbone, SimpleRandomSampling().transform, differentiable=False,
                                                 randomized=True),
    }
    # max_batch: how many clouds one EOT pass may stack (B: one pass per draw, as a plain loop would do).
    stacking = {"srs": 10_000, "srs, one pass per EOT draw": x.shape[0]}
    models["srs, one pass per EOT draw"] = models["srs"]
    b = x.shape[0]
    rows, base_fwd, base_bwd = [], None, None
    for name, model in models.items():
        model.eval()
        victim = adaptive_victim(model, eot_samples=10)
        if name in stacking:
            victim.max_batch = stacking[name]

        def forward(m: DefendedModel = model) -> None:
            with torch.no_grad():
                m(x)

        def backward(v: Any = victim) -> None:
            xg = x.clone().requires_grad_(True)
            v(xg).sum().backward()

        fwd, bwd = best_time(forward, repeats) / b, best_time(backward, repeats) / b
        base_fwd, base_bwd = base_fwd or fwd, base_bwd or bwd
        rows.append([name, f"{1000 * fwd:.2f}", f"{fwd / base_fwd:.2f}", f"{1000 * bwd:.2f}", f"{bwd / base_bwd:.2f}"])
    return rows


def main() -> None:
    """Print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--points", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x = clouds(args.batch, args.points)
    print(f"B={args.batch}, N={args.points}, torch threads={torch.get_num_threads()}\n")
    print("1. SOR k-NN statistics per batch (ms): batched torch (cdist + topk) vs per-cloud cKDTree loop")
    print(tabulate(sor_table(x, args.repeats), headers=["setting", "torch ms", "cKDTree ms", "torch / cKDTree",
                                                         "mask agreement"]))
    print("\n2. Per-sample latency (ms) vs the bare backbone (PointNet cpu); adaptive = BPDA (+ EOT 10 for srs)")
    print(tabulate(latency_table(x, args.repeats), headers=["defense", "forward ms", "ratio",
                                                            "adaptive fwd+bwd ms", "ratio"]))


if __name__ == "__main__":
    main()
