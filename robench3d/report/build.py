"""Draw a report: figures and numbers per section, then write markdown (with PNG files) and/or one HTML page.

Output, in ``out``: ``<dataset>-<preset>-<figure>.png`` and ``report.md`` (format ``markdown``), ``report.html``
(format ``html``, self-contained: the PNGs are embedded as data URIs), or all of them (``all``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from robench3d.cache import atomic_path
from robench3d.errors import ConfigError
from robench3d.report import figures, style, tables
from robench3d.report.inputs import ReportInput

__all__ = ["FORMATS", "SectionReport", "draw", "write"]

logger = logging.getLogger(__name__)

FORMATS = ("markdown", "html", "all")


@dataclass
class SectionReport:
    """One (dataset, preset): its figures (PNG bytes by file name), the summary table and notes."""

    section: tables.Section
    plots: list[style.Plot] = field(default_factory=list)
    pngs: dict[str, bytes] = field(default_factory=dict)
    per_attack: pd.DataFrame = field(default_factory=pd.DataFrame)
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)


def _notes(sec: tables.Section, ok: pd.DataFrame, summ: pd.DataFrame, sweeps: pd.DataFrame) -> list[str]:
    notes = []
    if sec.measured.empty:  # a section of papers' numbers only
        return []  # the reported block says what its rows are
    if sweeps.empty:
        notes.append("No swept rows (a `sweep` with an eps key, from `robench3d run --sweep attack.NAME.eps=...`): "
                     "no robust-accuracy-against-eps plot.")
    if ok.empty:
        notes.append("No measured ok rows: nothing is plotted.")
    elif summ.empty or not summ["attacks"].any():
        notes.append("Only controls (the noise control) were measured: clean accuracy and the control's accuracy, "
                     "no mean over attacks and no worst case.")
    missing = summ[summ["worst"].isna() & (summ["attacks"] > 0)] if not summ.empty else summ
    if not missing.empty:
        notes.append("Worst case not shown for " + ", ".join(f"{m} ({s})" for m, s in
                                                              zip(missing["model"], missing["setting"], strict=True))
                     + ": some of their cells have no per-example outcomes.")
    skipped = sec.measured[sec.measured["status"] == "skipped"]
    if not skipped.empty:
        notes.append(f"{len(skipped)} skipped cell(s) (the attack does not support the setting) are marked x.")
    if not sec.reported.empty:
        notes.append(f"{len(sec.reported)} reported row(s) (papers' numbers, their own metric convention) are "
                     "listed apart and never plotted with the measured rows.")
    return notes


def draw(data: ReportInput) -> list[SectionReport]:
    """Figures and tables of every section of ``data``."""
    out = []
    for sec in tables.sections(data.measured, data.reported):
        ok = sec.ok()
        pa, summ, sweeps = tables.per_attack(ok), tables.summary(ok, data.outcomes), tables.sweep_points(ok)
        rep = SectionReport(sec, per_attack=pa, summary=summ, notes=_notes(sec, ok, summ, sweeps))
        if not ok.empty:
            for plot in (figures.robust_bars(sec, pa), figures.eps_curves(sec, sweeps),
                         figures.clean_vs_robust(sec, summ), figures.worst_case_bars(sec, summ)):
                if plot is not None:
                    rep.plots.append(plot)
                    rep.pngs[f"{sec.slug}-{plot.name}.png"] = style.png_bytes(plot.figure)
        out.append(rep)
    return out


def _write_bytes(path: Path, payload: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)


def write(data: ReportInput, out: Path, fmt: str = "markdown") -> list[Path]:
    """Write the report of ``data`` into ``out``; returns the files written."""
    from robench3d.report import html, markdown

    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
    reports = draw(data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if fmt in ("markdown", "all"):
        for rep in reports:
            for name, payload in rep.pngs.items():
                _write_bytes(out / name, payload)
                written.append(out / name)
        _write_bytes(out / "report.md", markdown.render(data, reports).encode())
        written.append(out / "report.md")
    if fmt in ("html", "all"):
        _write_bytes(out / "report.html", html.render(data, reports).encode())
        written.append(out / "report.html")
    logger.info("report of %s: %d file(s) in %s", data.source, len(written), out)
    return written
