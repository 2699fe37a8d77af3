"""The report's markdown summary (``report.md``), embedding the PNG files written beside it.

The table builders here (headers and rows, accuracies in percent) are shared with :mod:`.html`. Nothing depends on
the time or the machine, so regenerating a committed report gives identical files.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd
from tabulate import tabulate

from robench3d.report.tables import model_order

if TYPE_CHECKING:
    from robench3d.report.build import SectionReport
    from robench3d.report.inputs import ReportInput

__all__ = ["pct", "per_attack_table", "render", "reported_table", "summary_table"]

Table = tuple[list[str], list[list[Any]]]

CONVENTION = ("Accuracies in %. Robust accuracy counts a test cloud only if it is classified correctly on the clean "
              "input and after the attack (RobustBench convention, `leaderboards/README.md`); intervals are 95% "
              "Wilson intervals over the n test clouds; the worst case counts a cloud only if it is robust to every "
              "attack of the setting (controls excluded); `!` marks a cell flagged unreliable (suspected gradient "
              "masking).")


def pct(v: Any, digits: int = 1) -> str:
    """A fraction as a percentage string; empty for a missing value."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(f) else f"{100 * f:.{digits}f}"


def summary_table(rep: SectionReport) -> Table:
    """Per (defense, setting): attacks, clean, mean robust, worst case with its interval, n."""
    headers = [rep.section.model_kind, "setting", "attacks", "clean %", "mean robust %", "worst case %",
               "worst 95% CI", "n"]
    rows = [[r["model"], r["setting"], r["attacks"], pct(r["clean"]), pct(r["mean_robust"]),
             pct(r["worst"]),
             f"[{pct(r['worst_lo'])}, {pct(r['worst_hi'])}]" if not math.isnan(r["worst"]) else "", r["n"]]
            for _, r in rep.summary.iterrows()]
    order = {m: i for i, m in enumerate(model_order(rep.summary["model"]))} if not rep.summary.empty else {}
    settings = rep.section.settings(rep.summary) if not rep.summary.empty else []
    rows.sort(key=lambda r: (order[r[0]], settings.index(r[1])))
    return headers, rows



def per_attack_table(rep: SectionReport, setting: str) -> Table:
    """Robust accuracy (%) of one setting: a row per attack, a column per defense (``!``: flagged unreliable)."""
    pa = rep.per_attack[rep.per_attack["setting"] == setting]
    models = model_order(pa["model"])
    attacks = sorted(set(pa["attack"]), key=lambda a: ("(control)" in a, a))
    cell = {(r["attack"], r["model"]): pct(r["robust"]) + (" !" if r["unreliable"] else "")
            for _, r in pa.iterrows()}
    return ["attack", *models], [[a, *(cell.get((a, m), "") for m in models)] for a in attacks]


def reported_table(frame: pd.DataFrame) -> Table:
    """Reported rows as published: source, backbone, defense, attack, setting, convention, clean and robust."""
    headers = ["source", "backbone", "defense", "attack", "setting", "convention", "reported clean %",
               "reported robust %"]
    rows = [[r["source"].removeprefix("reported: "), r["backbone"], r["defense"], r["attack"], r["setting"],
             r["metric_convention"], pct(r["reported_clean_acc"], 2), pct(r["reported_robust_acc"], 2)]
            for _, r in frame.iterrows()]
    return headers, rows


def _md(table: Table) -> str:
    headers, rows = table
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def render(data: ReportInput, reports: list[SectionReport]) -> str:
    """The whole ``report.md``."""
    parts = [f"# robench3d report: {data.source}", "", CONVENTION, ""]
    parts += [f"- {n}" for n in data.notes] + ([""] if data.notes else [])
    for rep in reports:
        sec = rep.section
        parts += [f"## {sec.title}", ""]
        if not rep.summary.empty or not rep.per_attack.empty:
            parts += [f"Measured rows: {sec.subtitle()}.", ""]
        if not rep.summary.empty:
            parts += ["### Summary per defense and setting", "", _md(summary_table(rep)), ""]
        for plot in rep.plots:
            parts += [f"### {plot.title}", "", f"![{plot.title}]({sec.slug}-{plot.name}.png)", "", plot.caption, ""]
        for setting in sec.settings(rep.per_attack) if not rep.per_attack.empty else []:
            parts += [f"### Robust accuracy per attack, {setting} (%)", "", _md(per_attack_table(rep, setting)), ""]
        if rep.notes:
            parts += ["### Notes", "", *[f"- {n}" for n in rep.notes], ""]
        if not sec.reported.empty:
            parts += ["### Reported rows (as published; not measured here, not plotted, never compared with the "
                      "measured rows above)", "", _md(reported_table(sec.reported)), ""]
    return "\n".join(parts).rstrip() + "\n"
