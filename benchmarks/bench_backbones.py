"""What each registered backbone costs on this CPU: forward, attack step and training step.

Run:  python benchmarks/bench_backbones.py [--configs cpu] [--batch 32] [--points 1024] [--repeats 2] [--threads N]
      (about 2 minutes here for the cpu configurations; ``--configs cpu,paper`` adds the published sizes, which
      take several minutes more: paper DGCNN and PointNet++ MSG steps take tens of seconds each)

One table row per (backbone, configuration), random initialisation, 15 classes, B x N random clouds in the unit
ball. Columns (seconds, minimum over repeats after one warm-up):

* forward: eval mode, no gradient (clean accuracy, query attacks);
* attack step: eval mode, forward + cross-entropy + gradient w.r.t. the input points (one PGD iteration);
* train step: train mode, forward + backward + Adam step, at N and at the recipe's train-time ``num_points``;
* epoch est.: train step at the recipe's points x steps per epoch on the embedded ``shapes`` dataset (1500 train
  clouds), and the recipe's epochs x that, in minutes (validation passes not included).

Timings depend on what else the machine runs: compare ratios within one run, re-measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from _timing import best_time  # noqa: E402
from tabulate import tabulate  # noqa: E402

from robench3d.plugins import build_plugin_manager, build_registries  # noqa: E402

NUM_CLASSES, TRAIN_CLOUDS = 15, 1500


def _cloud(b: int, n: int) -> torch.Tensor:
    x = torch.randn(b, n, 3)
    return x / x.norm(dim=-1).amax(dim=1, keepdim=True)[..., None]


def bench(name: str, variant: str, batch: int, points: int, repeats: int) -> list[object]:
    registries = build_registries(build_plugin_manager(autoload=False))
    spec = registries.backbones.get(name)
    torch.manual_seed(0)
    model = spec.build(NUM_CLASSES, variant)
    recipe = spec.recipe(variant)
    params = sum(p.numel() for p in model.parameters())
    x, y = _cloud(batch, points), torch.arange(batch) % NUM_CLASSES
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def forward() -> None:
        with torch.no_grad():
            model.eval()(x)

    def attack_step() -> None:
        xa = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model.eval()(xa), y), xa)

    def train_step(pts: torch.Tensor) -> None:
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(pts), y).backward()
        opt.step()

    t_fwd = best_time(forward, repeats)
    t_att = best_time(attack_step, repeats)
    t_train = best_time(lambda: train_step(x), repeats)
    n_rec = recipe.num_points or points
    x_rec = _cloud(batch, n_rec)
    t_rec = t_train if n_rec == points else best_time(lambda: train_step(x_rec), repeats)
    epoch = t_rec * max(TRAIN_CLOUDS // recipe.batch_size, 1) * recipe.batch_size / batch
    return [f"{name}:{variant}", f"{params / 1e6:.2f}M", f"{t_fwd:.2f}", f"{t_att:.2f}", f"{t_train:.2f}",
            f"{t_rec:.2f} @{n_rec}", f"{epoch:.0f} s", f"{recipe.epochs} x = {recipe.epochs * epoch / 60:.1f} min"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="cpu", help="comma list of configurations (cpu, paper, test)")
    parser.add_argument("--backbones", default="all", help="comma list of registered backbones")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--points", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = build_registries(build_plugin_manager(autoload=False)).backbones.names()
    if args.backbones != "all":
        names = [n for n in names if n in args.backbones.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B = {args.batch}, N = {args.points}, "
          "seconds (min over repeats)")
    rows = []
    for variant in args.configs.split(","):
        for name in names:
            rows.append(bench(name, variant, args.batch, args.points, args.repeats))
            print(" | ".join(str(c) for c in rows[-1]), flush=True)  # progress: paper sizes are slow
    print(tabulate(rows, headers=["backbone", "params", "forward", "attack step", f"train step @{args.points}",
                                  "train step @recipe", "epoch est.", "recipe est."], tablefmt="github"))


if __name__ == "__main__":
    main()
