"""The numbers a report plots, computed from measured rows only (``reported`` rows never enter them).

A report has one :class:`Section` per (dataset, preset). Within it a *model* is a defense, or "defense · backbone"
when the section has several backbones. Rows of several seeds are pooled (robust counts summed over seeds, one
Wilson interval over the pooled clouds); swept rows (a non-empty ``sweep``) feed :func:`sweep_points` only, so every
other number is the preset's own cell.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from robench3d.leaderboard.outcomes import Outcome
from robench3d.schema import cell_id

__all__ = ["SETTING_ORDER", "Section", "model_order", "per_attack", "sections", "summary", "sweep_points", "wilson"]

SETTING_ORDER = ("oblivious", "adaptive", "transfer", "query")


def model_order(names: pd.Series) -> list[str]:
    """Models in a stable order, the undefended ``none`` first."""
    return sorted(set(names), key=lambda m: (not m.startswith("none"), m))


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of ``successes / n`` (the interval the rows' ``robust_acc_ci_*`` carry)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Section:
    """The rows of one (dataset, preset): ``measured`` (every status) and ``reported`` (papers' numbers)."""

    dataset: str
    preset: str
    measured: pd.DataFrame
    reported: pd.DataFrame
    #: set when a board holding several defenses on several backbones is split into one section per backbone
    backbone: str = ""

    @property
    def title(self) -> str:
        """``dataset / preset`` (``/ backbone`` for a per-backbone section)."""
        return " / ".join([self.dataset, self.preset] + ([self.backbone] if self.backbone else []))

    @property
    def slug(self) -> str:
        parts = [self.dataset, self.preset] + ([self.backbone] if self.backbone else [])
        return "-".join(parts).replace("/", "_").replace(" ", "_").replace(":", "_")

    def settings(self, frame: pd.DataFrame | None = None) -> list[str]:
        present = set((self.measured if frame is None else frame)["setting"])
        return [s for s in SETTING_ORDER if s in present] + sorted(present - set(SETTING_ORDER))

    def subtitle(self, frame: pd.DataFrame | None = None) -> str:
        """Dataset, preset, n, backbone(s) and seed(s) of ``frame`` (default: the section's ok rows)."""
        f = self.ok() if frame is None else frame
        n = ", ".join(str(v) for v in sorted(set(f["n_examples"].dropna().astype(int)))) or "-"
        seeds = ", ".join(str(v) for v in sorted(set(f["seed"].dropna().astype(int)))) or "-"
        backbones = ", ".join(sorted(set(f["backbone"])))
        return f"dataset {self.dataset} · preset {self.preset} · n = {n} test clouds · {backbones} · seed {seeds}"

    def ok(self) -> pd.DataFrame:
        """Measured ``ok`` rows, with a ``model`` label and an ``attack_label`` column."""
        return self.labelled("ok")

    @property
    def model_kind(self) -> str:
        """What a model label names: ``defense``, ``backbone`` (one defense, several backbones) or both."""
        if self.measured["backbone"].nunique() <= 1:
            return "defense"
        return "backbone" if self.measured["defense"].nunique() <= 1 else "defense · backbone"

    def labelled(self, status: str) -> pd.DataFrame:
        """Measured rows of one status, with a ``model`` label and an ``attack_label`` column."""
        f = self.measured[self.measured["status"] == status].copy()
        kind = self.model_kind
        f["model"] = [d if kind == "defense" else b if kind == "backbone" else f"{d} · {b}"
                      for d, b in zip(f["defense"], f["backbone"], strict=True)]
        f["attack_label"] = [a + (" (control)" if c else "") + (" +custom" if o else "")
                             for a, c, o in zip(f["attack"], f["is_control"].fillna(False), f["overrides"],
                                                strict=True)]
        return f


def sections(measured: pd.DataFrame, reported: pd.DataFrame) -> list[Section]:
    """One section per (dataset, preset) of either kind of row, sorted; a (dataset, preset) with several defenses on
    several backbones is split into one section per backbone (the figures compare defenses on one model), the
    papers' rows going with the first."""
    keys = sorted({*zip(measured["dataset"], measured["preset"], strict=True),
                   *zip(reported["dataset"], reported["preset"], strict=True)})
    out: list[Section] = []
    for d, p in keys:
        m = measured[(measured["dataset"] == d) & (measured["preset"] == p)]
        r = reported[(reported["dataset"] == d) & (reported["preset"] == p)]
        backbones = sorted(set(m["backbone"]))
        if len(backbones) > 1 and m["defense"].nunique() > 1:
            out += [Section(d, p, m[m["backbone"] == b], r if i == 0 else r.iloc[0:0], backbone=b)
                    for i, b in enumerate(backbones)]
        else:
            out.append(Section(d, p, m, r))
    return out


def _pool(grp: pd.DataFrame) -> dict[str, float]:
    n = grp["n_examples"].astype(int)
    hits = (grp["robust_acc"].astype(float) * n).round().astype(int)
    if len(grp) == 1:
        r = grp.iloc[0]
        return {"robust": float(r["robust_acc"]), "lo": float(r["robust_acc_ci_low"]),
                "hi": float(r["robust_acc_ci_high"]), "n": int(n.sum())}
    lo, hi = wilson(int(hits.sum()), int(n.sum()))
    return {"robust": hits.sum() / n.sum(), "lo": lo, "hi": hi, "n": int(n.sum())}


def per_attack(ok: pd.DataFrame) -> pd.DataFrame:
    """Robust accuracy per (model, setting, attack) of the preset's cells (no sweeps), pooled over seeds."""
    f = ok[ok["sweep"] == ""]
    out = []
    for (model, setting, attack), grp in f.groupby(["model", "setting", "attack_label"], sort=True):
        out.append({"model": model, "setting": setting, "attack": attack, **_pool(grp),
                    "clean": float(grp["clean_acc"].astype(float).mean()),
                    "control": bool(grp["is_control"].fillna(False).any()),
                    "unreliable": bool(grp["unreliable"].fillna(False).any())})
    return pd.DataFrame(out, columns=["model", "setting", "attack", "robust", "lo", "hi", "n", "clean", "control",
                                      "unreliable"])


def _worst(grp: pd.DataFrame, found: Mapping[str, Outcome]) -> tuple[int, int] | None:
    """(robust to every attack, n) over the clouds of one seed, or None without compatible outcomes."""
    got = [found.get(cell_id(r)) for _, r in grp.iterrows()]
    if any(o is None for o in got) or len({o.examples for o in got if o is not None}) != 1:
        return None
    both = np.logical_and.reduce([o.correct for o in got if o is not None])
    return int(both.sum()), int(both.size)


def summary(ok: pd.DataFrame, found: Mapping[str, Outcome]) -> pd.DataFrame:
    """Per (model, setting): clean accuracy, mean robust accuracy over the attacks and the per-example worst case.

    Controls are excluded from the mean and the worst case, as in :func:`robench3d.evaluation.results.aggregate`
    (a model measured with controls only keeps its clean accuracy, with ``attacks`` 0). ``worst`` is NaN where a
    cell lacks per-example outcomes.
    """
    preset = ok[ok["sweep"] == ""]
    f = preset[~preset["is_control"].fillna(False).astype(bool)]
    out = []
    for (model, setting), grp in preset.groupby(["model", "setting"], sort=True):
        if grp["is_control"].fillna(False).all():
            out.append({"model": model, "setting": setting, "attacks": 0, "mean_robust": math.nan,
                        "clean": float(grp["clean_acc"].astype(float).mean()), "worst": math.nan,
                        "worst_lo": math.nan, "worst_hi": math.nan, "n": int(grp["n_examples"].astype(int).max())})
            continue
        grp = f[(f["model"] == model) & (f["setting"] == setting)]
        seeds = [_worst(g, found) for _, g in grp.groupby(["seed", "n_examples", "dataset_version"], sort=True)]
        hits = sum(s[0] for s in seeds if s) if all(seeds) else None
        n = sum(s[1] for s in seeds if s) if all(seeds) else 0
        lo, hi = wilson(hits, n) if hits is not None else (math.nan, math.nan)
        out.append({"model": model, "setting": setting, "attacks": int(grp["attack"].nunique()),
                    "clean": float(grp["clean_acc"].astype(float).mean()),
                    "mean_robust": float(grp["robust_acc"].astype(float).mean()),
                    "worst": hits / n if hits is not None and n else math.nan, "worst_lo": lo, "worst_hi": hi,
                    "n": int(grp.groupby("seed")["n_examples"].first().astype(int).sum())})
    return pd.DataFrame(out, columns=["model", "setting", "attacks", "clean", "mean_robust", "worst", "worst_lo",
                                      "worst_hi", "n"])


def _eps_key(sweep: str) -> tuple[float, str] | None:
    """(eps, the other swept values as text) of a ``sweep`` JSON with an eps key, else None."""
    try:
        values = json.loads(sweep) if sweep else {}
    except json.JSONDecodeError:
        return None
    if not isinstance(values, dict):
        return None
    eps = [k for k in values if str(k).split(".")[-1] == "eps"]
    if len(eps) != 1:
        return None
    try:
        value = float(values[eps[0]])
    except (TypeError, ValueError):
        return None
    rest = ", ".join(f"{k}={v}" for k, v in sorted(values.items()) if k != eps[0])
    return value, rest


def sweep_points(ok: pd.DataFrame) -> pd.DataFrame:
    """Robust accuracy against eps for rows swept over an eps option (pooled over seeds); empty without any."""
    rows = []
    for _, r in ok.iterrows():
        got = _eps_key(str(r["sweep"]))
        if got is not None:
            rows.append({**r.to_dict(), "sweep_eps": got[0], "sweep_rest": got[1]})
    cols = ["model", "setting", "attack", "rest", "eps", "norm", "robust", "lo", "hi", "n"]
    if not rows:
        return pd.DataFrame(columns=cols)
    f = pd.DataFrame(rows)
    out = []
    for (model, setting, attack, rest, eps), grp in f.groupby(["model", "setting", "attack", "sweep_rest",
                                                               "sweep_eps"], sort=True):
        out.append({"model": model, "setting": setting, "attack": attack, "rest": rest, "eps": eps,
                    "norm": str(grp["norm"].iloc[0]), **_pool(grp)})
    return pd.DataFrame(out, columns=cols)
