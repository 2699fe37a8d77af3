"""A results folder with upsert by key, and the aggregates over its cells.

A results folder (``run --output``, default ``robench3d-results/``) holds ``results.csv`` (one row per cell, in
the schema of :mod:`robench3d.schema`, which the committed leaderboards share), ``samples/<cell>.csv`` (per-example
outcomes of each cell, so aggregates can be recomputed) and ``errors/<cell>.log`` (the traceback of a failed cell).
Rows are upserted by :data:`KEY`: re-running replaces a cell, never duplicates it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from robench3d.cache import atomic_path
from robench3d.schema import (
    COLUMNS,
    KEY,
    SCHEMA_VERSION,
    cell_id,
    is_reported,
    key_strings,
    normalize,
    read_table,
    upsert,
    validate,
    write_table,
)

# The schema names are re-exported for code written against robench3d 0.1 (they moved to robench3d.schema).
__all__ = ["COLUMNS", "KEY", "SCHEMA_VERSION", "ResultsStore", "aggregate", "cell_id", "data_fields_json",
           "normalize", "read_table", "upsert", "validate", "write_table"]


class ResultsStore:
    """A results folder: ``results.csv`` plus ``samples/<cell>.csv`` per cell."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.csv = self.root / "results.csv"

    def load(self) -> pd.DataFrame:
        return read_table(self.csv) if self.csv.exists() else normalize(pd.DataFrame(columns=list(COLUMNS)))

    def find(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        """The stored row with the same key and config hash (a finished cell this run can reuse), if any."""
        frame = self.load()
        if frame.empty:
            return None
        wanted = key_strings(normalize(pd.DataFrame([dict(row)]))).iloc[0]
        hits = frame[(key_strings(frame) == wanted) & (frame["config_hash"] == row.get("config_hash"))]
        if hits.empty or (hits.iloc[0]["status"] == "ok" and not self.sample_path(row).exists()):
            return None
        return {k: (None if pd.isna(v) else v) for k, v in hits.iloc[0].to_dict().items()}

    def sample_path(self, row: Mapping[str, Any]) -> Path:
        return self.root / "samples" / f"{cell_id(row)}.csv"

    def put(self, row: Mapping[str, Any], samples: pd.DataFrame | None = None) -> None:
        """Write one cell (per-sample outcomes first, so a row never points to missing samples)."""
        if samples is not None:
            path = self.sample_path(row)
            with atomic_path(path) as tmp:
                samples.to_csv(tmp, index=False)
        self.put_many([row])

    def put_many(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Upsert several rows with one rewrite of ``results.csv`` (atomic: a reader never sees half a file)."""
        new = [dict(r) for r in rows]
        if not new:
            return
        existing = self.load() if self.csv.exists() else None
        write_table(upsert(existing, pd.DataFrame(new)), self.csv)

    def error_log(self, row: Mapping[str, Any]) -> Path:
        """Where the traceback of a failed cell is kept."""
        return self.root / "errors" / f"{cell_id(row)}.log"

    def samples(self, row: Mapping[str, Any]) -> pd.DataFrame:
        return pd.read_csv(self.sample_path(row), dtype={"example_id": str})


def aggregate(store: ResultsStore, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Mean robust accuracy over attacks and the per-example worst case over the suite.

    Grouped by (dataset, backbone, defense, preset, setting, seed, n_examples, sweep). Controls (``noise``),
    skipped and failed cells and ``reported`` rows (a paper's numbers, never measured here) are excluded. A sample
    counts as robust in the worst case only if it is robust to every attack, i.e. correct on the clean input and
    after each attack (the per-sample ``correct`` column of every cell).
    """
    frame = pd.DataFrame(list(rows))
    out: list[dict[str, Any]] = []
    if frame.empty:
        return pd.DataFrame(out)
    measured = ~is_reported(frame) if "source" in frame else True
    frame = frame[(frame["status"] == "ok") & (~frame["is_control"].astype(bool)) & measured]
    group_cols = ["dataset", "backbone", "defense", "preset", "setting", "seed", "n_examples", "sweep"]
    frame = frame.assign(sweep=frame["sweep"].fillna("") if "sweep" in frame else "")
    for key, grp in frame.groupby(group_cols, sort=True):
        worst: pd.Series | None = None
        for _, r in grp.iterrows():
            s = store.samples(r).set_index("example_id")["correct"].astype(bool)
            worst = s if worst is None else (worst & s.reindex(worst.index, fill_value=False))
        entry = dict(zip(group_cols, key, strict=True))
        entry.update({"attacks": len(grp), "clean_acc": float(grp["clean_acc"].astype(float).mean()),
                      "mean_robust_acc": float(grp["robust_acc"].astype(float).mean()),
                      "worst_case_acc": float(worst.mean()) if worst is not None else float("nan"),
                      "attack_list": ",".join(sorted(grp["attack"]))})
        out.append(entry)
    return pd.DataFrame(out)


def data_fields_json(fields: Mapping[str, Any]) -> str:
    """Dataset-specific row fields (e.g. corruption, severity) as compact JSON."""
    return json.dumps(dict(fields), sort_keys=True) if fields else ""
