"""Result rows: the schema of protocol.md section 6, a results folder with upsert by key, and aggregates.

A results folder (``run --output``, default ``robench3d-results/``) holds ``results.csv`` (one row per cell) and
``samples/<cell>.csv`` (per-example outcomes of each cell, so aggregates can be recomputed). Rows are upserted by
:data:`KEY`: re-running replaces a cell, never duplicates it. Committed leaderboards use the same schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from robench3d.cache import atomic_path, stable_hash
from robench3d.errors import LeaderboardSchemaError

__all__ = ["COLUMNS", "KEY", "SCHEMA_VERSION", "ResultsStore", "aggregate", "cell_id", "normalize", "validate"]

SCHEMA_VERSION = 1

#: Upsert key (protocol.md section 6).
KEY: tuple[str, ...] = ("dataset", "dataset_version", "backbone", "defense", "attack", "preset", "setting",
                        "surrogate", "targeted", "seed")

#: Every column, in file order, with its dtype kind: s(tring), f(loat in [0,1] or a size), i(nt), b(ool).
COLUMNS: dict[str, str] = {
    "schema_version": "i",
    "source": "s",  # measured | reported: <paper, table>
    "status": "s",  # ok | skipped
    "reason": "s",
    **{k: "s" for k in KEY if k not in ("targeted", "seed")},
    "targeted": "b",
    "seed": "i",
    "target_policy": "s",
    "suite": "s",
    "norm": "s",
    "eps": "f",
    "n_examples": "i",
    "clean_acc": "f",
    "robust_acc": "f",
    "robust_acc_ci_low": "f",
    "robust_acc_ci_high": "f",
    "attack_success_rate": "f",
    "chamfer": "f",
    "hausdorff": "f",
    "points_added": "f",
    "points_dropped": "f",
    "latency_ms": "f",
    "latency_ratio": "f",
    "attack_seconds": "f",
    "is_control": "b",
    "unreliable": "b",
    "unreliable_reason": "s",
    "eot_samples": "i",
    "selection_split": "s",
    "data_fields": "s",
    "weights_provenance": "s",
    "defense_provenance": "s",
    "surrogate_provenance": "s",
    "plugins": "s",
    "robench3d_version": "s",
    "config_hash": "s",
}

_FLOAT_DIGITS = 6


def cell_id(row: Mapping[str, Any]) -> str:
    """Stable file-name-safe id of a row's key."""
    return stable_hash({k: row.get(k) for k in KEY}, length=20)


def normalize(frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce columns to the schema's types, fixed float precision and column order (missing columns empty)."""
    out = frame.copy()
    for col, kind in COLUMNS.items():
        if col not in out:
            out[col] = pd.NA
        if kind == "f":
            out[col] = pd.to_numeric(out[col], errors="coerce").round(_FLOAT_DIGITS)
        elif kind == "i":
            out[col] = pd.to_numeric(out[col], errors="coerce").astype("Int64")
        elif kind == "b":
            out[col] = out[col].map(lambda v: v if isinstance(v, bool) or pd.isna(v) else str(v).lower() == "true")
            out[col] = out[col].astype("boolean")
        else:
            out[col] = out[col].astype("string").fillna("")
    extra = [c for c in out.columns if c not in COLUMNS]
    return out[list(COLUMNS) + extra]


def validate(frame: pd.DataFrame, *, where: str = "results") -> None:
    """Raise :class:`LeaderboardSchemaError` naming the column/row that violates the schema."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise LeaderboardSchemaError(f"{where}: missing column(s) {missing}; regenerate it with this version")
    for col in ("clean_acc", "robust_acc", "attack_success_rate"):
        vals = pd.to_numeric(frame[col], errors="coerce")
        bad = vals.notna() & ((vals < 0) | (vals > 1))
        if bad.any():
            raise LeaderboardSchemaError(f"{where}: column {col!r} must be a fraction in [0, 1]; row "
                                         f"{int(bad.idxmax())} has {vals[bad].iloc[0]}")
    versions = set(pd.to_numeric(frame["schema_version"], errors="coerce").dropna().astype(int))
    if versions - {SCHEMA_VERSION}:
        raise LeaderboardSchemaError(f"{where}: schema version(s) {sorted(versions)} but this robench3d writes "
                                     f"{SCHEMA_VERSION}")
    dup = frame.duplicated(subset=list(KEY), keep=False)
    if dup.any():
        raise LeaderboardSchemaError(f"{where}: {int(dup.sum())} rows share a key, e.g. row {int(dup.idxmax())}")


def upsert(existing: pd.DataFrame | None, rows: pd.DataFrame) -> pd.DataFrame:
    """Replace rows of ``existing`` that share a key with ``rows``, append the rest, sort deterministically."""
    rows = normalize(rows)
    if existing is None or existing.empty:
        merged = rows
    else:
        existing = normalize(existing)
        keys = set(rows[list(KEY)].astype(str).agg("|".join, axis=1))
        keep = ~existing[list(KEY)].astype(str).agg("|".join, axis=1).isin(keys)
        merged = pd.concat([existing[keep], rows], ignore_index=True)
    merged = merged.sort_values(list(KEY), kind="stable", key=lambda s: s.astype(str)).reset_index(drop=True)
    return normalize(merged)


def read_table(path: Path) -> pd.DataFrame:
    """Read a results/leaderboard CSV with every column as text, then coerce to the schema."""
    return normalize(pd.read_csv(path, dtype=str, keep_default_na=False))


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Atomically write a schema-normalised CSV."""
    with atomic_path(path) as tmp:
        normalize(frame).to_csv(tmp, index=False, float_format=f"%.{_FLOAT_DIGITS}f")


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
        mask = pd.Series(True, index=frame.index)
        for k in KEY:
            mask &= frame[k].astype(str) == str(row.get(k))
        hits = frame[mask & (frame["config_hash"] == row.get("config_hash"))]
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
        existing = self.load() if self.csv.exists() else None
        write_table(upsert(existing, pd.DataFrame([dict(row)])), self.csv)

    def samples(self, row: Mapping[str, Any]) -> pd.DataFrame:
        return pd.read_csv(self.sample_path(row), dtype={"example_id": str})


def aggregate(store: ResultsStore, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Mean robust accuracy over attacks and the per-example worst case over the suite.

    Grouped by (dataset, backbone, defense, preset, setting, seed). Controls (``noise``) and skipped cells are
    excluded. A sample counts as robust in the worst case only if it is correct after every attack.
    """
    frame = pd.DataFrame(list(rows))
    out: list[dict[str, Any]] = []
    if frame.empty:
        return pd.DataFrame(out)
    frame = frame[(frame["status"] == "ok") & (~frame["is_control"].astype(bool))]
    group_cols = ["dataset", "backbone", "defense", "preset", "setting", "seed"]
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
