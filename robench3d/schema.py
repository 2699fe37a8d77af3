"""The result-row schema shared by results folders and the committed leaderboards (``leaderboards/README.md``).

One row per evaluated cell. Rows are upserted by :data:`KEY`, so re-running a cell replaces it and a run at another
``--n``, EOT count, option value or test subset writes a row of its own. :func:`validate` enforces the metric
conventions: for ``measured`` rows robust accuracy counts a sample only if it is correct on the clean input AND after
the attack (RobustBench/AutoAttack), so ``robust_acc <= clean_acc`` in every row; ``reported`` rows carry a paper's
numbers in the ``reported_*`` columns only (never in the measured ones, so no aggregate can mix them) under the
paper's own ``metric_convention``.

Schema changes: a new column is an additive change, done by bumping :data:`SCHEMA_VERSION` and adding a
:class:`Migration` that fills its default; ``robench3d leaderboard migrate`` then upgrades committed files without
re-running anything. Version 2 is not reachable from version 1 by migration (robust accuracy was redefined).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robench3d.cache import atomic_path, stable_hash
from robench3d.errors import LeaderboardSchemaError

__all__ = ["CLEAN_ATTACK", "COLUMNS", "CONVENTIONS", "KEY", "MEASURED", "MIGRATIONS", "SCHEMA_VERSION", "STATUSES",
           "Migration", "cell_id", "is_reported", "key_strings", "migrate", "normalize", "read_raw", "read_table",
           "upsert", "validate", "write_table"]

SCHEMA_VERSION = 2

#: Upsert key (protocol.md section 6, plus what makes two runs of one cell different experiments).
KEY: tuple[str, ...] = ("dataset", "dataset_version", "backbone", "defense", "attack", "preset", "setting",
                        "surrogate", "targeted", "seed", "n_examples", "eot_samples", "test_subset", "overrides",
                        "sweep")

#: Metric conventions: ``robustbench`` (ours: robust = correct on clean AND after the attack; attack success rate
#: over the clean-correct samples) and ``all-samples`` (correct after the attack over all samples, as the MRPD paper
#: counts, so robust can exceed clean). Measured rows are always ``robustbench``.
CONVENTIONS: tuple[str, ...] = ("robustbench", "all-samples")
STATUSES: tuple[str, ...] = ("ok", "skipped", "error")
#: The ``attack`` of a reported row that quotes a published clean accuracy only (no attack, no robust number).
CLEAN_ATTACK = "clean"

#: Every column, in file order, with its kind: s(tring), f(loat), i(nt), b(ool).
COLUMNS: dict[str, str] = {
    "schema_version": "i",
    "source": "s",  # measured | reported: <paper, table>
    "status": "s",  # ok | skipped | error
    "reason": "s",
    "dataset": "s", "dataset_version": "s", "backbone": "s", "defense": "s", "attack": "s", "preset": "s",
    "setting": "s", "surrogate": "s",
    "targeted": "b",
    "seed": "i",
    "n_examples": "i",
    "eot_samples": "i",
    "test_subset": "s",  # which test clouds: "first" (the first n of the stored order)
    "overrides": "s",  # JSON of attack/defense parameters that differ from their preset/variant ("" if none)
    "sweep": "s",  # JSON of swept option values ("" if the cell is not part of a sweep)
    "target_policy": "s",
    "suite": "s",
    "norm": "s",
    "eps": "f",
    "victim": "s",  # undefended | plain | bpda:select|pointwise|nearest [+eot<k>] | surrogate:<name> | query
    "metric_convention": "s",
    "clean_acc": "f",
    "robust_acc": "f",
    "robust_acc_ci_low": "f",
    "robust_acc_ci_high": "f",
    "attack_success_rate": "f",
    "n_clean_correct": "i",
    "reported_clean_acc": "f",
    "reported_robust_acc": "f",
    "reported_extra_params": "i",
    "chamfer": "f",
    "hausdorff": "f",
    "points_added": "f",
    "points_dropped": "f",
    "latency_ms": "f",
    "latency_ratio": "f",
    "attack_seconds": "f",
    "train_seconds": "f",  # building the evaluated model from scratch: backbone training + the defense's own
    "defense_train_seconds": "f",  # the defense's own training (0 when it trains nothing)
    "extra_params": "i",
    "trainable_params": "i",
    "is_control": "b",
    "unreliable": "b",
    "unreliable_reason": "s",
    "selection_split": "s",
    "data_fields": "s",
    "device": "s",
    "teachers": "s",
    "weights_provenance": "s",
    "defense_provenance": "s",
    "surrogate_provenance": "s",
    "plugins": "s",
    "robench3d_version": "s",
    "config_hash": "s",
}

#: Columns that hold measured numbers: empty in skipped, error and reported rows.
MEASURED = ("clean_acc", "robust_acc", "robust_acc_ci_low", "robust_acc_ci_high", "attack_success_rate")
_FRACTIONS = (*MEASURED, "reported_clean_acc", "reported_robust_acc")
_FLOAT_DIGITS = 6
_TOL = 1e-9


@dataclass(frozen=True)
class Migration:
    """How files of ``from_version`` become ``from_version + 1``.

    Attributes:
        added: new columns and the value every existing row gets.
        additive: False when rows cannot be upgraded without re-running them (then ``note`` says why).
    """

    from_version: int
    added: Mapping[str, Any] = field(default_factory=dict)
    additive: bool = True
    note: str = ""


MIGRATIONS: dict[int, Migration] = {
    1: Migration(1, additive=False, note=(
        "schema 1 counted a sample as robust when it was correct after the attack even if the clean input was "
        "misclassified, and its key lacked n_examples/eot_samples; its numbers cannot be converted, regenerate "
        "the rows with the commands in README's \"Reproduce\" section")),
}


def cell_id(row: Mapping[str, Any]) -> str:
    """Stable file-name-safe id of a row's key."""
    return stable_hash({k: _key_value(row.get(k)) for k in KEY}, length=20)


def _key_value(v: Any) -> Any:
    if v is None or (not isinstance(v, (list, tuple, dict)) and pd.isna(v)):
        return ""
    if hasattr(v, "item"):  # numpy / pandas scalars
        v = v.item()
    return v


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


def _fail(where: str, row: int, message: str) -> LeaderboardSchemaError:
    return LeaderboardSchemaError(f"{where}: row {row + 2} (line {row + 2} of the CSV): {message}")


def validate(frame: pd.DataFrame, *, where: str = "results") -> None:
    """Raise :class:`LeaderboardSchemaError` naming the file, row and column that violate the schema."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    versions = set(pd.to_numeric(frame.get("schema_version", pd.Series(dtype=str)), errors="coerce")
                   .dropna().astype(int))
    if versions - {SCHEMA_VERSION}:
        old = min(versions)
        hint = ("run `robench3d leaderboard migrate` to upgrade it" if old in MIGRATIONS and
                MIGRATIONS[old].additive else MIGRATIONS[old].note if old in MIGRATIONS else "regenerate it")
        raise LeaderboardSchemaError(f"{where}: schema version(s) {sorted(versions)} but this robench3d reads "
                                     f"{SCHEMA_VERSION}; {hint}")
    if missing:
        raise LeaderboardSchemaError(f"{where}: missing column(s) {missing}; regenerate it with this version")
    f = normalize(frame)
    for i, r in f.iterrows():
        _validate_row(r, int(i), where)  # type: ignore[arg-type]
    dup = f.duplicated(subset=list(KEY), keep=False)
    if dup.any():
        first = int(dup.idxmax())
        raise _fail(where, first, f"{int(dup.sum())} rows share the key {', '.join(KEY)}; keep one (re-run "
                                  "`robench3d leaderboard update`, which upserts)")


def _validate_row(r: pd.Series, i: int, where: str) -> None:
    status, source, conv = str(r["status"]), str(r["source"]), str(r["metric_convention"])
    if status not in STATUSES:
        raise _fail(where, i, f"status {status!r} is not one of {', '.join(STATUSES)}")
    if source != "measured" and not source.startswith("reported:"):
        raise _fail(where, i, f"source {source!r} must be 'measured' or 'reported: <paper, table>'")
    if conv not in CONVENTIONS:
        raise _fail(where, i, f"metric_convention {conv!r} is not one of {', '.join(CONVENTIONS)}")
    for col in _FRACTIONS:
        v = r[col]
        if pd.notna(v) and not 0.0 <= float(v) <= 1.0:
            raise _fail(where, i, f"column {col!r} must be a fraction in [0, 1], got {v}")
    has_numbers = [c for c in MEASURED if pd.notna(r[c])]
    if source.startswith("reported:"):
        if has_numbers:
            raise _fail(where, i, f"a reported row carries measured column(s) {has_numbers}; put the paper's "
                                  "numbers in reported_clean_acc / reported_robust_acc")
        clean, robust = r["reported_clean_acc"], r["reported_robust_acc"]
        if pd.isna(clean) and pd.isna(robust):
            raise _fail(where, i, "a reported row needs reported_clean_acc or reported_robust_acc")
        if str(r["attack"]) == CLEAN_ATTACK and pd.notna(robust):
            raise _fail(where, i, f"a reported row with attack {CLEAN_ATTACK!r} quotes a clean accuracy only; it "
                                  "has no reported_robust_acc")
        if conv == "robustbench" and pd.notna(clean) and pd.notna(robust) and float(robust) > float(clean) + _TOL:
            raise _fail(where, i, f"reported robust accuracy {robust} exceeds clean {clean} under the robustbench "
                                  "convention; if the paper counts correct-after-attack over all samples, set "
                                  "metric_convention to all-samples")
        return
    if conv != "robustbench":
        raise _fail(where, i, f"a measured row must use metric_convention 'robustbench', not {conv!r}")
    if pd.notna(r["reported_clean_acc"]) or pd.notna(r["reported_robust_acc"]):
        raise _fail(where, i, "a measured row carries reported_* numbers; those belong to reported rows")
    if status != "ok":
        if has_numbers:
            raise _fail(where, i, f"the {status} row carries numbers in {has_numbers}; only ok rows have results")
        return
    if pd.isna(r["clean_acc"]) or pd.isna(r["robust_acc"]):
        raise _fail(where, i, "an ok row needs clean_acc and robust_acc")
    clean, robust = float(r["clean_acc"]), float(r["robust_acc"])
    if robust > clean + _TOL:
        raise _fail(where, i, f"robust_acc {robust} exceeds clean_acc {clean} ({r['defense']} / {r['attack']} / "
                              f"{r['setting']}): robust samples must be correct on the clean input too; regenerate "
                              "the row with this version")
    lo, hi = r["robust_acc_ci_low"], r["robust_acc_ci_high"]
    if pd.notna(lo) and pd.notna(hi) and not float(lo) - _TOL <= robust <= float(hi) + _TOL:
        raise _fail(where, i, f"robust_acc {robust} lies outside its interval [{lo}, {hi}]")


def migrate(frame: pd.DataFrame, *, where: str = "leaderboard") -> tuple[pd.DataFrame, list[str]]:
    """Upgrade rows of older schema versions by the registered additive migrations.

    Returns:
        (the upgraded frame, one line per migration applied).

    Raises:
        LeaderboardSchemaError: a version with no migration, or a non-additive one (its note says what to do).
    """
    out = frame.copy()
    notes: list[str] = []
    versions = pd.to_numeric(out["schema_version"], errors="coerce")
    if versions.isna().any():
        raise LeaderboardSchemaError(f"{where}: row(s) without a schema_version; this is not a robench3d table")
    out["schema_version"] = versions.astype(int)
    version = int(versions.min())
    if int(versions.max()) > SCHEMA_VERSION:
        raise LeaderboardSchemaError(f"{where}: written by a newer robench3d (schema {int(versions.max())}); "
                                     f"upgrade robench3d (this one reads schema {SCHEMA_VERSION})")
    while version < SCHEMA_VERSION:
        m = MIGRATIONS.get(version)
        if m is None or not m.additive:
            why = m.note if m is not None else "no migration is registered"
            raise LeaderboardSchemaError(f"{where}: cannot migrate schema {version} to {version + 1}: {why}")
        mask = out["schema_version"] == version
        for col, default in m.added.items():
            if col not in out:
                out[col] = pd.NA
            out.loc[mask, col] = default
        out.loc[mask, "schema_version"] = version + 1
        notes.append(f"schema {version} -> {version + 1}: added {', '.join(m.added) or 'nothing'} "
                     f"({int(mask.sum())} rows)")
        version += 1
    return out, notes


def is_reported(frame: pd.DataFrame) -> pd.Series:
    """Bool mask of the ``reported: <paper, table>`` rows (a paper's numbers, never measured here)."""
    return frame["source"].astype("string").fillna("").str.startswith("reported:")


def upsert(existing: pd.DataFrame | None, rows: pd.DataFrame) -> pd.DataFrame:
    """Replace rows of ``existing`` that share a key with ``rows``, append the rest, sort deterministically.

    Measured rows come first, sorted by key, then reported rows, sorted by key: one sort never interleaves them.
    """
    rows = normalize(rows)
    if existing is None or existing.empty:
        merged = rows
    else:
        existing = normalize(existing)
        keys = set(key_strings(rows))
        keep = ~key_strings(existing).isin(keys)
        merged = pd.concat([existing[keep], rows], ignore_index=True)
    merged = merged.assign(_reported=is_reported(merged))
    merged = merged.sort_values(["_reported", *KEY], kind="stable", key=lambda s: s.astype(str))
    return normalize(merged.drop(columns="_reported").reset_index(drop=True))


def key_strings(frame: pd.DataFrame) -> pd.Series:
    """One string per row of its key; an empty key column (a reported row has no seed or n_examples) is ""."""
    return frame[list(KEY)].astype(str).fillna("").agg("|".join, axis=1)


def read_table(path: Path) -> pd.DataFrame:
    """Read a results/leaderboard CSV with every column as text, then coerce to the schema."""
    return normalize(pd.read_csv(path, dtype=str, keep_default_na=False))


def read_raw(path: Path) -> pd.DataFrame:
    """Read a CSV as text without coercing it to this schema (for validation and migration of old files)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Atomically write a schema-normalised CSV."""
    with atomic_path(path) as tmp:
        normalize(frame).to_csv(tmp, index=False, float_format=f"%.{_FLOAT_DIGITS}f")
