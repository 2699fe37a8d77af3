"""What a report is drawn from: the rows of a results folder or of leaderboard files, and their per-example outcomes.

Both inputs become a :class:`ReportInput`: the schema-normalised rows split into measured and ``reported`` ones (a
paper's numbers, never plotted with measured ones) and the per-example outcomes by ``cell_id``, from a results
folder's ``samples/`` or a leaderboard's ``samples/<setting>.csv`` companions (:mod:`robench3d.leaderboard.outcomes`).
Bad input (a missing folder, an empty or corrupt table) raises a :class:`~robench3d.errors.Robench3DError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from robench3d.errors import ConfigError, LeaderboardSchemaError
from robench3d.evaluation.results import ResultsStore
from robench3d.leaderboard import outcomes
from robench3d.leaderboard.board import split_sources
from robench3d.schema import cell_id, read_raw, read_table, validate

__all__ = ["ReportInput", "from_leaderboard", "from_results"]

_UNREADABLE = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError)


@dataclass
class ReportInput:
    """Rows and outcomes a report is drawn from.

    Attributes:
        source: what was read, for the report's header (``results folder runs/suite``).
        measured: measured rows (every status), schema-normalised.
        reported: ``reported`` rows (papers' numbers), schema-normalised.
        outcomes: per-example outcomes by ``cell_id``; cells without one are left out of the worst case.
        notes: what the loader noticed (stale or missing outcomes).
    """

    source: str
    measured: pd.DataFrame
    reported: pd.DataFrame
    outcomes: dict[str, outcomes.Outcome] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _read(path: Path) -> pd.DataFrame:
    """A schema table, validated; unreadable or invalid files raise with the file's name."""
    try:
        raw = read_raw(path)
    except _UNREADABLE as e:
        raise LeaderboardSchemaError(f"{path}: not a readable CSV table ({str(e).strip()}); regenerate it with "
                                     "`robench3d run` or `robench3d leaderboard update`") from e
    validate(raw, where=str(path))
    return read_table(path)


def _split(source: str, frame: pd.DataFrame, where: Path) -> ReportInput:
    if frame.empty:
        raise ConfigError(f"{where} holds no rows; nothing to report (run `robench3d run --output DIR` and pass "
                          "--results DIR)")
    measured, reported = split_sources(frame)
    return ReportInput(source, measured.reset_index(drop=True), reported.reset_index(drop=True))


def from_results(results_dir: Path) -> ReportInput:
    """A results folder (``robench3d run --output DIR``): ``results.csv`` and ``samples/<cell>.csv``."""
    root = Path(results_dir)
    if not root.is_dir():
        raise ConfigError(f"results folder {str(root)!r} does not exist; pass the --output folder of a "
                          "`robench3d run`")
    store = ResultsStore(root)
    if not store.csv.exists():
        raise ConfigError(f"no results.csv in {str(root)!r}; pass the --output folder of a `robench3d run`")
    data = _split(f"results folder {root}", _read(store.csv), store.csv)
    missing = 0
    for _, row in data.measured[data.measured["status"] == "ok"].iterrows():
        path = store.sample_path(row)
        if not path.exists():
            missing += 1
            continue
        try:
            samples = pd.read_csv(path, dtype={"example_id": str})
        except _UNREADABLE as e:
            raise ConfigError(f"{path}: corrupt per-sample outcomes ({str(e).strip()}); re-run the cell with "
                              "`robench3d run --force`") from e
        data.outcomes[cell_id(row)] = outcomes.encode(samples)
    if missing:
        data.notes.append(f"{missing} ok cell(s) have no per-sample outcomes in {root / 'samples'}; the worst "
                          "case leaves their groups out")
    return data


def _board_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigError(f"leaderboard {str(path)!r} does not exist; pass a leaderboard file "
                          "(leaderboards/shapes/quick/oblivious.csv) or folder (leaderboards/shapes/quick)")
    files = sorted(p for p in path.rglob("*.csv")
                   if not {"samples", "reported"} & set(p.relative_to(path).parts[:-1]))
    if not files:
        raise ConfigError(f"no leaderboard files under {str(path)!r} (expected <dataset>/<preset>/<setting>.csv); "
                          "pass a folder such as leaderboards/shapes/quick")
    return files


def from_leaderboard(path: Path) -> ReportInput:
    """Leaderboard file(s): one ``<setting>.csv``, a ``<dataset>/<preset>`` folder, or any folder above them."""
    files = _board_files(Path(path))
    frames = [_read(f) for f in files]
    frame = pd.concat(frames, ignore_index=True)
    data = _split(f"leaderboard {path}", frame, Path(path))
    stale = missing = 0
    for f, rows in zip(files, frames, strict=True):
        found = outcomes.load(f)
        used = (rows["status"] == "ok") & (rows["source"] == "measured") & (rows["sweep"] == "")  # the worst case's
        for _, row in rows[used].iterrows():
            o = found.get(cell_id(row))
            if o is None:
                missing += 1
            elif o.config_hash != row["config_hash"]:
                stale += 1
            else:
                data.outcomes[cell_id(row)] = o
    if missing:
        data.notes.append(f"{missing} measured ok row(s) (not swept) have no per-example outcomes in "
                          "samples/<setting>.csv beside their board; the worst case leaves their groups out "
                          "(`robench3d leaderboard update --results RUN` writes them)")
    if stale:
        data.notes.append(f"{stale} per-example outcome(s) belong to an older version of their row (config_hash "
                          "differs) and were not used")
    return data
