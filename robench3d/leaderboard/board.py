"""Update, load, validate and render the committed leaderboards.

``leaderboards/<dataset>/<preset>/<setting>.csv`` use the result schema of
:mod:`robench3d.evaluation.results` (schema-versioned; see ``leaderboards/README.md``). They change only through
:func:`update` (``robench3d leaderboard update``), which upserts a run's rows by key: a user's ``run`` never
touches them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tabulate import tabulate

from robench3d.errors import ConfigError, LeaderboardSchemaError
from robench3d.evaluation.results import normalize, read_table, upsert, validate, write_table

__all__ = ["load", "render", "update", "validate_all"]


def _safe(part: str) -> str:
    if not part or "/" in part or part.startswith("."):
        raise LeaderboardSchemaError(f"invalid leaderboard path component {part!r}")
    return part


def update(results_dir: Path, boards: Path) -> list[tuple[Path, int]]:
    """Upsert the rows of a results folder into the leaderboard files; return (file, row count) per file."""
    csv = Path(results_dir) / "results.csv"
    if not csv.exists():
        raise ConfigError(f"no results at {csv}; run `robench3d run --output {results_dir}` first")
    rows = read_table(csv)
    validate(rows, where=str(csv))
    written = []
    for (dataset, preset, setting), grp in rows.groupby(["dataset", "preset", "setting"], sort=True):
        path = Path(boards) / _safe(str(dataset)) / _safe(str(preset)) / f"{_safe(str(setting))}.csv"
        existing = read_table(path) if path.exists() else None
        merged = upsert(existing, grp)
        validate(merged, where=str(path))
        write_table(merged, path)
        written.append((path, len(merged)))
    return written


def load(boards: Path, *, dataset: str | None = None, preset: str | None = None,
         setting: str | None = None) -> list[tuple[Path, pd.DataFrame]]:
    """Leaderboard files matching the filters, each read and schema-normalised."""
    out = []
    for path in sorted(Path(boards).glob("*/*/*.csv")):
        d, p, s = path.parent.parent.name, path.parent.name, path.stem
        if (dataset and d != dataset) or (preset and p != preset) or (setting and s != setting):
            continue
        out.append((path, read_table(path)))
    return out


def validate_all(boards: Path) -> list[Path]:
    """Validate every leaderboard file; raise on the first violation."""
    paths = []
    for path, frame in load(boards):
        validate(frame, where=str(path))
        paths.append(path)
    return paths


def render(frame: pd.DataFrame) -> str:
    """A compact markdown table: one line per (backbone, defense, attack), accuracies in percent."""
    f = normalize(frame)
    f = f[f["status"] == "ok"]
    cols = ["source", "backbone", "defense", "attack", "seed", "n_examples", "clean_acc", "robust_acc",
            "attack_success_rate", "unreliable"]
    view = f[cols].copy()
    for c in ("clean_acc", "robust_acc", "attack_success_rate"):
        view[c] = (view[c].astype(float) * 100).round(2)
    return tabulate(view.values.tolist(), headers=cols, tablefmt="github")
