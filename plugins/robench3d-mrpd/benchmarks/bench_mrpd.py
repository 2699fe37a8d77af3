"""MRPD distillation cost: seconds per epoch and peak memory, with and without cached teacher outputs.

Each mode runs in its own process (so its peak resident memory is its own), on the embedded ``shapes`` data with
the run's default student (``uni3d:cpu``, trained or taken from the cache) and the default teachers. The teachers
and the static adversarial set are built first (cached); the numbers are the distillation epochs only, from the
trainer's per-epoch ``seconds``. Run both modes in one invocation: the machine is shared and noisy, so compare the
ratio, not the absolute numbers across runs.

    python plugins/robench3d-mrpd/benchmarks/bench_mrpd.py [--max-train 512] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from robench3d import RunConfig
from robench3d.cache import default_cache_dir
from robench3d.evaluation.matrix import _Run
from robench3d.evaluation.preflight import plan_run
from robench3d.plugins import build_plugin_manager, build_registries
args = json.loads(sys.argv[1])
regs = build_registries(build_plugin_manager())
opts = {"defense": {"mrpd.max_train": args["max_train"], "mrpd.clean_epochs": args["epochs"] // 2,
                    "mrpd.adv_epochs": args["epochs"] - args["epochs"] // 2,
                    "mrpd.cache_teachers": args["cached"], "mrpd.val_limit": 16}}
cfg = RunConfig(cache_dir=default_cache_dir(), output_dir=Path("/tmp/bench_mrpd_out"), defenses=("mrpd",),
                attacks="fgsm", reference=False, opts=opts)
plan = plan_run(cfg, regs, None)
run = _Run(cfg, regs, plan, None, lambda m: None)
trained = run.backbone(cfg.backbones[0])
ctx = run.context(trained, cfg.backbones[0])
t0 = time.perf_counter()
defended = plan.defenses[0].build(ctx)
art = sorted((Path(cfg.cache_dir) / "defenses" / "mrpd").glob("*/model.json"), key=lambda p: p.stat().st_mtime)[-1]
history = json.loads(art.read_text())["history"]
print(json.dumps({"epoch_seconds": [h["seconds"] for h in history], "build_seconds": time.perf_counter() - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-train", type=int, default=512, help="training clouds distilled on (default 512)")
    ap.add_argument("--epochs", type=int, default=2, help="distillation epochs (half clean, half adversarial)")
    args = ap.parse_args()
    rows = []
    for cached in (True, False):
        spec = {"max_train": args.max_train, "epochs": args.epochs, "cached": cached}
        out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True,
                             check=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        per_epoch = sum(res["epoch_seconds"]) / len(res["epoch_seconds"])
        rows.append((cached, per_epoch, res["peak_rss_mb"]))
        print(f"teacher outputs {'cached' if cached else 'recomputed every step'}: {per_epoch:.1f} s/epoch "
              f"({args.max_train} clouds), peak RSS {res['peak_rss_mb']:.0f} MB")
    print(f"ratio (recomputed / cached): {rows[1][1] / rows[0][1]:.2f}x per epoch")


if __name__ == "__main__":
    main()
