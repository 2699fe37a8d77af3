"""Reports people look at: PNG figures, a markdown summary and a self-contained HTML page from measured rows.

``robench3d report --results DIR`` (a run's folder) or ``--leaderboard FILE_OR_DIR`` draws, per (dataset, preset):
robust accuracy per attack and defense (grouped bars, Wilson whiskers, a panel per setting), robust accuracy against
eps for swept attacks, clean against mean robust accuracy, and the per-example worst case. ``reported`` rows (papers'
numbers) are listed apart and never plotted with measured ones. matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

from robench3d.report.build import FORMATS, draw, write
from robench3d.report.inputs import ReportInput, from_leaderboard, from_results

__all__ = ["FORMATS", "ReportInput", "draw", "from_leaderboard", "from_results", "write"]
