"""How far apart the two SOR definitions are on real clouds: squared (IF-Defense's code, the default) vs Euclidean.

Run:  python plugins/robench3d-baselines/benchmarks/sor_definitions.py [--dataset shapes] [--data-root DIR]
          [--up-axis z] [--n 200]
      e.g. on the development copy of ModelNet40:
          ... --dataset folder --data-root ../shared/data/modelnet40_aligned_1024 --up-axis z

For ``--n`` test clouds spread evenly over the test split (so every class is represented), and for both published
settings (k=2, alpha=1.1 and MRPD's k=16, alpha=1.0), it prints how many clouds keep exactly the same points under
both definitions, the points each removes per cloud, and the points per cloud that only one of them keeps. The
masks come from :func:`robench3d_baselines.sor.sor_mask_reference` (scipy cKDTree, float64). SOR is invariant to
the clouds' scale, so the dataset's normalisation does not matter.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from robench3d import Split
from robench3d.cache import default_cache_dir
from robench3d.evaluation.components import prepare_dataset
from robench3d.plugins import build_plugin_manager, build_registries
from robench3d_baselines.sor import sor_mask_reference

SETTINGS = ((2, 1.1), (16, 1.0))


def main() -> None:
    """Parse the arguments, load the clouds and print one line per setting."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="shapes")
    ap.add_argument("--data-root", type=Path, default=None)
    ap.add_argument("--up-axis", default=None, help="folder datasets: the up axis of the files (ModelNet40 OFF: z)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--cache-dir", type=Path, default=None, help="default: ROBENCH3D_CACHE or the XDG cache")
    args = ap.parse_args()
    extra = {"up_axis": args.up_axis} if args.up_axis else None
    registries = build_registries(build_plugin_manager())
    data = prepare_dataset(registries, args.dataset, cache_dir=args.cache_dir or default_cache_dir(),
                           root=args.data_root, extra=extra)
    test = data.split(Split.TEST)
    idx = np.unique(np.linspace(0, len(test) - 1, min(args.n, len(test))).round().astype(int))
    clouds = test.points[idx]
    print(f"{data.name} {data.version}: {len(clouds)} test clouds of {clouds.shape[1]} points")
    for k, alpha in SETTINGS:
        sq = sor_mask_reference(clouds, k, alpha, squared=True)
        eu = sor_mask_reference(clouds, k, alpha, squared=False)
        same = int((sq == eu).all(axis=1).sum())
        print(f"k={k}, alpha={alpha}: identical kept sets {same} of {len(clouds)}; removed per cloud: squared "
              f"{(~sq).sum(1).mean():.1f}, euclidean {(~eu).sum(1).mean():.1f}; kept by only one of them "
              f"{(sq != eu).sum(1).mean():.1f}")


if __name__ == "__main__":
    main()
