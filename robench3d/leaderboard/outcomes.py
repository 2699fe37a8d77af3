"""Compact per-example outcomes beside a leaderboard file, so the per-example worst case survives publication.

A results folder keeps one ``samples/<cell>.csv`` per cell; a leaderboard keeps, next to
``<dataset>/<preset>/<setting>.csv``, the companion ``<dataset>/<preset>/samples/<setting>.csv`` with one line per
``ok`` row of the board:

| column | meaning |
|---|---|
| ``cell_id`` | :func:`robench3d.schema.cell_id` of the row's key (the join with the board) |
| ``backbone``, ``defense``, ``attack`` | for people reading the file (the join uses ``cell_id`` only) |
| ``config_hash`` | the board row's ``config_hash``; an entry whose hash differs from its row's is stale and unused |
| ``n`` | number of evaluated test clouds |
| ``examples`` | a 12-hex digest of the sorted example ids; cells are combined only when their digests agree |
| ``correct`` | one character per example in sorted ``example_id`` order: ``1`` robust (correct on the clean |
|  | input and after the attack), ``0`` not |

:func:`update` writes it from a run's ``samples/`` when ``robench3d leaderboard update --results`` upserts the rows,
keeps it in step with the board (entries of rows no longer in the board are removed) and sorts it deterministically.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from robench3d.cache import atomic_path, stable_hash
from robench3d.errors import LeaderboardSchemaError
from robench3d.evaluation.results import ResultsStore
from robench3d.schema import cell_id

__all__ = ["COLUMNS", "Outcome", "companion_path", "encode", "load", "update"]

logger = logging.getLogger(__name__)

COLUMNS = ("cell_id", "backbone", "defense", "attack", "config_hash", "n", "examples", "correct")


@dataclass(frozen=True)
class Outcome:
    """Per-example robustness of one cell: ``correct[i]`` for the i-th example id in sorted order.

    Shape: correct (n,) bool.
    """

    examples: str
    correct: np.ndarray
    config_hash: str = ""


def companion_path(board_csv: Path) -> Path:
    """``<dataset>/<preset>/samples/<setting>.csv`` for the board ``<dataset>/<preset>/<setting>.csv``."""
    board_csv = Path(board_csv)
    return board_csv.parent / "samples" / board_csv.name


def encode(samples: pd.DataFrame) -> Outcome:
    """The per-sample table of a results folder (``example_id``, ``correct``) as an :class:`Outcome`."""
    if not {"example_id", "correct"} <= set(samples.columns):
        raise LeaderboardSchemaError(f"per-sample outcomes need the columns example_id and correct, got "
                                     f"{sorted(samples.columns)}; regenerate the cell with this version")
    ordered = samples.assign(example_id=samples["example_id"].astype(str)).sort_values("example_id", kind="stable")
    flags = ordered["correct"].astype(str).str.lower().map({"true": True, "false": False, "1": True, "0": False})
    if flags.isna().any():
        bad = ordered["correct"][flags.isna()].iloc[0]
        raise LeaderboardSchemaError(f"per-sample column 'correct' holds {bad!r}; expected True/False")
    ids = ordered["example_id"].tolist()
    return Outcome(examples=stable_hash(ids, length=12), correct=flags.to_numpy(dtype=bool))


def _decode(frame: pd.DataFrame, where: Path) -> dict[str, Outcome]:
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise LeaderboardSchemaError(f"{where}: missing column(s) {missing}; regenerate it with `robench3d "
                                     "leaderboard update --results RUN`")
    out: dict[str, Outcome] = {}
    for line, (_, r) in enumerate(frame.iterrows(), start=2):
        bits, n = str(r["correct"]), str(r["n"])
        if not n.isdigit() or len(bits) != int(n) or set(bits) - {"0", "1"}:
            raise LeaderboardSchemaError(f"{where}: line {line}: 'correct' must be {n} characters 0/1, got "
                                         f"{len(bits)} ({bits[:20]!r}...); regenerate it with `robench3d "
                                         "leaderboard update --results RUN`")
        out[str(r["cell_id"])] = Outcome(str(r["examples"]), np.frombuffer(bits.encode(), dtype=np.uint8) == 49,
                                         str(r["config_hash"]))
    return out


def load(board_csv: Path) -> dict[str, Outcome]:
    """The companion of a board as ``cell_id -> Outcome`` (empty when the board has none)."""
    path = companion_path(board_csv)
    if not path.exists():
        return {}
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise LeaderboardSchemaError(f"{path}: unreadable per-example outcomes ({e}); regenerate it with "
                                     "`robench3d leaderboard update --results RUN`") from e
    return _decode(frame, path)


def update(board_csv: Path, board: pd.DataFrame, results_dir: Path, run_rows: pd.DataFrame) -> Path | None:
    """Write the companion of ``board_csv`` after its rows were upserted from ``run_rows`` of ``results_dir``.

    Entries of the run's ``ok`` rows that have per-sample outcomes are added or replaced; entries whose cell is no
    longer an ``ok`` row of ``board`` are dropped. Nothing is written when there is nothing to keep.

    Returns:
        The companion's path, or None when none was written.
    """
    path = companion_path(board_csv)
    store = ResultsStore(Path(results_dir))
    entries = {}
    if path.exists():
        entries = pd.read_csv(path, dtype=str, keep_default_na=False).set_index("cell_id").to_dict("index")
    added = missing = 0
    for _, row in run_rows[run_rows["status"] == "ok"].iterrows():
        if not store.sample_path(row).exists():
            missing += 1
            continue
        o = encode(store.samples(row))
        entries[cell_id(row)] = {"backbone": row["backbone"], "defense": row["defense"], "attack": row["attack"],
                                 "config_hash": row["config_hash"], "n": str(len(o.correct)),
                                 "examples": o.examples, "correct": "".join("1" if c else "0" for c in o.correct)}
        added += 1
    ok = {cell_id(r) for _, r in board[board["status"] == "ok"].iterrows()}
    entries = {k: v for k, v in entries.items() if k in ok}
    if missing:
        logger.warning("%s: %d ok row(s) of %s have no per-sample outcomes; the worst case leaves them out",
                       path, missing, results_dir)
    if not entries:
        return None
    frame = pd.DataFrame([{"cell_id": k, **v} for k, v in entries.items()], columns=list(COLUMNS))
    frame = frame.sort_values(["backbone", "defense", "attack", "cell_id"], kind="stable")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    logger.info("%s: per-example outcomes of %d cells (%d from this run)", path, len(frame), added)
    return path
