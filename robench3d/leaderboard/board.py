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
from robench3d.schema import migrate, normalize, read_raw, read_table, upsert, validate, write_table

__all__ = ["load", "migrate_all", "render", "update", "validate_all"]


def _safe(part: str) -> str:
    if not part or "/" in part or part.startswith("."):
        raise LeaderboardSchemaError(f"invalid leaderboard path component {part!r}")
    return part


def update(results_dir: Path, boards: Path) -> tuple[list[tuple[Path, int]], int]:
    """Upsert the rows of a results folder into the leaderboard files.

    Failed cells (status ``error``) are never published: they are counted and left out.

    Returns:
        ((file, row count) per file written, number of failed cells left out).
    """
    csv = Path(results_dir) / "results.csv"
    if not csv.exists():
        raise ConfigError(f"no results at {csv}; run `robench3d run --output {results_dir}` first")
    validate(read_raw(csv), where=str(csv))
    rows = read_table(csv)
    failed = int((rows["status"] == "error").sum())
    rows = rows[rows["status"] != "error"]
    written = []
    for (dataset, preset, setting), grp in rows.groupby(["dataset", "preset", "setting"], sort=True):
        path = Path(boards) / _safe(str(dataset)) / _safe(str(preset)) / f"{_safe(str(setting))}.csv"
        existing = read_table(path) if path.exists() else None
        merged = upsert(existing, grp)
        validate(merged, where=str(path))
        write_table(merged, path)
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
