"""How the geometry kernels of ``robench3d.pointops`` scale with the number of points, vs naive versions.

Run:  python benchmarks/bench_ops.py [--batch 8] [--max-points 4096] [--repeats 2] [--threads N]
      (about 1-2 minutes here; ``--threads 1`` is the fair setting on a machine shared with other jobs)

For N = 256 .. max-points (doubling), B clouds of N random points in [-1, 1]^3, S = N / 4 query centres:

* FPS (S centres): ours (one vectorised update per centre, single-threaded) / the same loop with the default
  thread count (what the single-thread choice saves) / naive (a Python loop per cloud, one point at a time);
* kNN (k = 20 neighbours of S queries): ours (``baddbmm`` squared distances + ``topk``) / naive (broadcast
  differences + full ``argsort``);
* ball query (radius 0.2, 32 points): ours (float key + ``topk``) / naive (masked indices + full ``sort``).

Each cell is the minimum over ``--repeats`` runs after one warm-up, in milliseconds; ratios are naive / ours.
Timings depend on what else the machine runs: compare ratios within one run.
"""

from __future__ import annotations

import argparse

import torch
from _timing import best_time
from tabulate import tabulate

from robench3d.pointops import ball_query, farthest_point_sample, knn


def _ms(fn, repeats: int) -> float:
    return 1e3 * best_time(fn, repeats)


def fps_multithreaded(points: torch.Tensor, s: int) -> torch.Tensor:
    """Our FPS loop without the single-thread guard."""
    b, n, _ = points.shape
    xt = points.transpose(1, 2).contiguous()
    out = torch.empty(b, s, dtype=torch.long)
    min_dist = torch.full((b, n), float("inf"))
    far = torch.zeros(b, 1, dtype=torch.long)
    for i in range(s):
        out[:, i : i + 1] = far
        centre = torch.gather(xt, 2, far.unsqueeze(1).expand(b, 3, 1))
        torch.minimum(min_dist, (xt - centre).square_().sum(1), out=min_dist)
        far = min_dist.argmax(dim=-1, keepdim=True)
    return out


def fps_naive(points: torch.Tensor, s: int) -> torch.Tensor:
    """One cloud at a time, one distance row per selected point."""
    rows = []
    for cloud in points:
        chosen = [0]
        min_dist = torch.full((cloud.shape[0],), float("inf"))
        for _ in range(s - 1):
            min_dist = torch.minimum(min_dist, (cloud - cloud[chosen[-1]]).square().sum(-1))
            chosen.append(int(min_dist.argmax()))
        rows.append(torch.tensor(chosen))
    return torch.stack(rows)


def knn_naive(query: torch.Tensor, points: torch.Tensor, k: int) -> torch.Tensor:
    dist = (query[:, :, None] - points[:, None]).square().sum(-1)
    return dist.argsort(dim=-1)[..., :k]


def ball_query_naive(query: torch.Tensor, points: torch.Tensor, radius: float, k: int) -> torch.Tensor:
    n = points.shape[1]
    dist = (query[:, :, None] - points[:, None]).square().sum(-1)
    idx = torch.arange(n).expand_as(dist).clone()
    idx[dist > radius * radius] = n
    idx = idx.sort(dim=-1).values[..., :k]
    return torch.where(idx == n, idx[..., :1].expand_as(idx), idx)


@torch.no_grad()
def _row(batch: int, n: int, r: int) -> list[object]:
    """One table row: the three kernels at N points."""
    x = torch.rand(batch, n, 3) * 2 - 1
    s = n // 4
    q = x[:, :s].contiguous()
    fps = (_ms(lambda: farthest_point_sample(x, s), r), _ms(lambda: fps_multithreaded(x, s), r),
           _ms(lambda: fps_naive(x, s), 1))
    kn = (_ms(lambda: knn(q, x, 20), r), _ms(lambda: knn_naive(q, x, 20), r))
    bq = (_ms(lambda: ball_query(q, x, 0.2, 32), r), _ms(lambda: ball_query_naive(q, x, 0.2, 32), r))
    return [n, f"{fps[0]:.1f}", f"{fps[1]:.1f}", f"{fps[2]:.1f}", f"{fps[2] / fps[0]:.1f}x",
            f"{kn[0]:.1f}", f"{kn[1]:.1f}", f"{kn[1] / kn[0]:.1f}x",
            f"{bq[0]:.1f}", f"{bq[1]:.1f}", f"{bq[1] / bq[0]:.1f}x"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-points", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B = {args.batch}, S = N/4, times in ms")
    rows = []
    n = 256
    while n <= args.max_points:
        rows.append(_row(args.batch, n, args.repeats))
        n *= 2
    print(tabulate(rows, headers=["N", "FPS ours", "FPS threads", "FPS naive", "ratio", "kNN ours", "kNN naive",
                                  "ratio", "ball ours", "ball naive", "ratio"], tablefmt="github"))


if __name__ == "__main__":
    main()
