"""Update, load, validate and render the committed leaderboards.

``leaderboards/<dataset>/<preset>/<setting>.csv`` use the result schema of
:mod:`robench3d.evaluation.results` (schema-versioned; see ``leaderboards/README.md``). They change only through
:func:`update` (``robench3d leaderboard update``), which upserts a run's rows by key: a user's ``run`` never
touches them. Papers' numbers enter only as ``reported`` rows through :mod:`.reported` (``update --reported``), and
:func:`render` prints them in a section of their own, after the measured rows.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tabulate import tabulate

from robench3d.errors import ConfigError, LeaderboardSchemaError
from robench3d.leaderboard import outcomes
from robench3d.schema import is_reported, migrate, normalize, read_raw, read_table, upsert, validate, write_table

__all__ = ["load", "migrate_all", "render", "split_sources", "update", "validate_all"]


def _safe(part: str) -> str:
    if not part or "/" in part or part.startswith("."):
        raise LeaderboardSchemaError(f"invalid leaderboard path component {part!r}")
    return part


def update(results_dir: Path, boards: Path) -> tuple[list[tuple[Path, int]], int]:
    """Upsert the rows of a results folder into the leaderboard files.

    Failed cells (status ``error``) are never published: they are counted and left out. Each file's per-example
    outcomes are written beside it, in ``samples/<setting>.csv`` (:mod:`robench3d.leaderboard.outcomes`).

    Returns:
        ((file, row count) per file written, number of failed cells left out).
    """
    csv = Path(results_dir) / "results.csv"
    if not csv.exists():
        raise ConfigError(f"no results at {csv}; run `robench3d run --output {results_dir}` first")
    validate(read_raw(csv), where=str(csv))
    rows = read_table(csv)
    if is_reported(rows).any():
        raise ConfigError(f"{csv} holds reported rows; a run's results are measured only, and papers' numbers "
                          "enter through `robench3d leaderboard update --reported leaderboards/reported`")
    failed = int((rows["status"] == "error").sum())
    rows = rows[rows["status"] != "error"]
    written = []
    for (dataset, preset, setting), grp in rows.groupby(["dataset", "preset", "setting"], sort=True):
        path = Path(boards) / _safe(str(dataset)) / _safe(str(preset)) / f"{_safe(str(setting))}.csv"
        existing = read_table(path) if path.exists() else None
        merged = upsert(existing, grp)
        validate(merged, where=str(path))
        write_table(merged, path)
        outcomes.update(path, merged, Path(results_dir), grp)  # samples/<setting>.csv: per-example outcomes
        written.append((path, len(merged)))
    return written, failed


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


def _files(boards: Path) -> list[Path]:
    paths = sorted(Path(boards).glob("*/*/*.csv"))
    if not paths:
        raise ConfigError(f"no leaderboard files under {boards} (expected <dataset>/<preset>/<setting>.csv); pass "
                          "--leaderboards DIR")
    return paths


def validate_all(boards: Path) -> list[Path]:
    """Validate every leaderboard file as it is on disk; raise on the first violation."""
    paths = _files(boards)
    for path in paths:
        validate(read_raw(path), where=str(path))
    return paths


def migrate_all(boards: Path, *, dry_run: bool = False) -> list[tuple[Path, list[str]]]:
    """Upgrade every leaderboard file to this schema by its additive migrations, then validate it.

    Returns:
        (file, migrations applied) per file; an empty list for files already current.
    """
    out = []
    for path in _files(boards):
        frame, notes = migrate(read_raw(path), where=str(path))
        if notes:
            frame = normalize(frame)
            validate(frame, where=str(path))
            if not dry_run:
                write_table(frame, path)
        out.append((path, notes))
    return out


def split_sources(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(measured rows, reported rows): compare, sort or aggregate each on its own, never the two together."""
    mask = is_reported(frame)
    return frame[~mask], frame[mask]


def render(frame: pd.DataFrame) -> str:
    """Compact markdown tables, accuracies in percent: the measured rows (one line per backbone, defense, attack),
    then, under their own heading, the reported rows with the paper's numbers and its metric convention."""
    measured, reported = split_sources(normalize(frame))
    measured = measured[measured["status"] == "ok"]
    cols = ["source", "backbone", "defense", "attack", "seed", "n_examples", "clean_acc", "robust_acc",
            "attack_success_rate", "unreliable"]
    parts = [_table(measured, cols)] if not measured.empty or reported.empty else []
    if not reported.empty:
        rcols = ["source", "backbone", "defense", "attack", "targeted", "metric_convention", "reported_clean_acc",
                 "reported_robust_acc", "reported_extra_params"]
        parts.append(f"reported ({len(reported)} rows, as published; not measured here and never compared with the "
                     "rows above)\n" + _table(reported, rcols))
    return "\n\n".join(parts)


def _table(frame: pd.DataFrame, cols: list[str]) -> str:
    view = frame[cols].copy()
    for c in cols:
        if c.endswith("_acc") or c == "attack_success_rate":
            view[c] = (view[c].astype(float) * 100).round(2)
    view = view.astype(object).where(view.notna(), None)  # a clean-only row has no robust number: an empty cell
    return tabulate(view.values.tolist(), headers=cols, tablefmt="github", missingval="")
