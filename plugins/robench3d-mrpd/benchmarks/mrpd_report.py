"""Render MRPD's result tables (markdown) from a run's results folder and the cache that holds its prompts.

Everything is read from what a real run wrote, never typed: the rows of ``results.csv`` (the same rows
``robench3d leaderboard update`` publishes), the per-sample outcomes under ``samples/`` for the per-example worst
case, and the sidecar of the distilled MRPD artifact for the per-epoch history (losses, gate kept fractions,
uncertainty weights, val clean and val PGD accuracy).

    python plugins/robench3d-mrpd/benchmarks/mrpd_report.py --results runs/mrpd runs/mrpd_baselines \
        runs/mrpd_ablations --backbone uni3d:cpu [--cache ~/.cache/robench3d] > plugins/robench3d-mrpd/RESULTS.md

Tables: (1) every defense on the same student, oblivious and adaptive: clean accuracy, mean robust accuracy over
the suite and over ``paper8``, the per-example worst case, latency relative to the bare student, extra and
trainable parameters; (2) transfer (the paper's black-box table); (3) the ablations (MRPD variants); (4) the
committed MRPD model's per-epoch history.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from robench3d.cache import default_cache_dir
from robench3d.evaluation.results import ResultsStore
from robench3d.plugins import build_plugin_manager, build_registries

ABLATIONS = ("mrpd", "mrpd:no_image", "mrpd:no_3d", "mrpd:no_context", "mrpd:no_gate", "mrpd:fixed_weights",
             "mrpd:no_prompts", "mrpd:online")


def _pct(x: Any) -> str:
    return "" if x is None or pd.isna(x) else f"{100 * float(x):.1f}"


def _aggregate(stores: dict[str, ResultsStore], grp: pd.DataFrame, suite: set[str]) -> dict[str, Any]:
    worst: pd.Series | None = None
    for _, r in grp.iterrows():
        row = r.to_dict()
        s = stores[row.pop("_folder")].samples(row).set_index("example_id")["correct"].astype(bool)
        worst = s if worst is None else (worst & s.reindex(worst.index, fill_value=False))
    p8 = grp[grp["attack"].isin(suite)]
    return {"clean": grp["clean_acc"].astype(float).mean(), "attacks": len(grp),
            "mean": grp["robust_acc"].astype(float).mean(),
            "mean_paper8": p8["robust_acc"].astype(float).mean() if len(p8) else float("nan"),
            "paper8_attacks": len(p8), "worst": float(worst.mean()) if worst is not None else float("nan"),
            "latency_ratio": grp["latency_ratio"].astype(float).median(),
            "extra_params": int(float(grp["extra_params"].iloc[0] or 0)),
            "trainable_params": int(float(grp["trainable_params"].iloc[0] or 0)),
            "n": int(grp["n_examples"].iloc[0])}


def _history(cache: Path, backbone: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The history of the MRPD artifact distilled for ``backbone`` with ``params`` (the default variant)."""
    for sidecar in sorted((cache / "defenses" / "mrpd").glob("*/model.json")):
        info = json.loads(sidecar.read_text())
        key = info.get("key", {})
        stored = {k: v for k, v in key.get("params", {}).items() if k != "text_context"}
        want = {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items() if k != "text_context"}
        if key.get("student_name") == backbone and stored == want:
            return list(info.get("history", [])), info
    return [], {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, nargs="+", required=True, help="results folders (rows of one cell "
                    "must not repeat across them)")
    ap.add_argument("--backbone", default="uni3d:cpu")
    ap.add_argument("--cache", type=Path, default=None)
    args = ap.parse_args(argv)
    cache = args.cache or default_cache_dir()
    regs = build_registries(build_plugin_manager())
    paper8 = {name for name in regs.attacks.names() if "paper8" in getattr(regs.attacks.get(name), "suites", ())}
    stores = {str(d): ResultsStore(d) for d in args.results}
    rows = pd.concat([st.load().assign(_folder=name) for name, st in stores.items()], ignore_index=True)
    rows = rows[(rows["status"] == "ok") & (rows["backbone"] == args.backbone)
                & ~rows["is_control"].astype(str).str.lower().isin(("true", "1"))]
    if rows.empty:
        print(f"no finished rows for backbone {args.backbone} in {args.results}", file=sys.stderr)
        return 1
    aggs: dict[tuple[str, str], dict[str, Any]] = {}
    for (defense, setting), grp in rows.groupby(["defense", "setting"], sort=True):
        aggs[(defense, setting)] = _aggregate(stores, grp, paper8)
    first = rows.iloc[0]
    out = [f"# MRPD results on `{args.backbone}` ({first['dataset']}@{first['dataset_version']}, preset "
           f"{first['preset']}, seed {first['seed']})", "",
           f"Rendered by `benchmarks/mrpd_report.py --results {' '.join(map(str, args.results))}` from the rows "
           "the runs wrote (the committed leaderboard rows). Percentages; `mean` over every attack of the suite "
           "(controls excluded), "
           f"`paper8` over the {len(paper8)} attacks of the MRPD paper's suite, `worst` = robust to every attack "
           "(RobustBench convention: correct on the clean cloud and after the attack).", ""]

    def table(defenses: list[str], settings: tuple[str, ...], extra: bool) -> str:
        body = []
        for d in defenses:
            for s in settings:
                a = aggs.get((d, s))
                if a is None:
                    continue
                line = [d, s, a["n"], a["attacks"], _pct(a["clean"]), _pct(a["mean"]), _pct(a["mean_paper8"]),
                        _pct(a["worst"])]
                if extra:
                    line += [f"{a['latency_ratio']:.2f}", a["extra_params"], a["trainable_params"]]
                body.append(line)
        head = ["defense", "setting", "n", "attacks", "clean", "mean", "paper8", "worst"]
        if extra:
            head += ["latency x", "extra params", "trainable params"]
        return tabulate(body, headers=head, tablefmt="github")

    defenses = [d for d in ("none", "mrpd", "srs", "sor", "dupnet", "adv_train", "adv_train.head")
                if any(k[0] == d for k in aggs)]
    out += ["## Every defense on the same student", "", table(defenses, ("oblivious", "adaptive"), True), "",
            "`latency x`: median over cells of the defended model's latency per cloud relative to the bare student.",
            ""]
    if any(k[1] == "transfer" for k in aggs):
        surrogates = sorted(set(rows.loc[rows["setting"] == "transfer", "surrogate"].astype(str)))
        out += [f"## Transfer (surrogate {', '.join(surrogates)}; the paper's black-box table)", "",
                table([d for d in defenses if (d, "transfer") in aggs], ("transfer",), False), ""]
    ablations = [d for d in ABLATIONS if any(k[0] == d for k in aggs)]
    if len(ablations) > 1:
        out += ["## Ablations (MRPD variants)", "", table(ablations, ("oblivious", "adaptive"), False), ""]
    from robench3d_mrpd.mrpd import MRPD

    history, info = _history(cache, args.backbone, MRPD.variants["default"])
    if history:
        keys = [k for k in ("epoch", "adv_phase", "loss", "L_image", "L_3d", "L_text", "kept_image", "kept_3d",
                            "w_image", "w_3d", "w_text", "val_clean", "val_pgd", "val_select", "seconds")
                if any(k in h for h in history)]
        body = [[(int(h["epoch"]) if k == "epoch" else
                  ("adv" if h.get(k) else "clean") if k == "adv_phase" else
                  "" if h.get(k) is None else f"{float(h[k]):.3f}") for k in keys] for h in history]
        out += ["## Per-epoch history of the evaluated `mrpd` model", "",
                f"Selected epoch: {info.get('best_epoch')} ({info.get('selection', '')}). `kept_*`: fraction of the "
                "batch the teacher's gate kept (its top-k prediction contains the label); `w_*`: uncertainty weights.",
                "", tabulate(body, headers=keys, tablefmt="github"), ""]
    else:
        out += [f"(no mrpd artifact for {args.backbone} with the default parameters under {cache})", ""]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
