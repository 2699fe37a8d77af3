"""Compare a results folder with the committed leaderboards (``robench3d leaderboard compare``).

Two kinds of match, never mixed:

* **By key** (:data:`robench3d.schema.KEY`) against the *measured* rows: the same cell run twice. Both numbers and
  their difference are shown for clean and robust accuracy. A difference is *flagged* when it lies outside the
  combined interval, ``|delta| > sqrt(h_yours**2 + h_board**2)``, where ``h`` is the half-width of the row's 95%
  Wilson interval over its ``n_examples`` (the interval of ``robust_acc_ci_low/high``; for clean accuracy the same
  formula over the clean count). A status that differs (``ok`` on one side, ``skipped`` on the other) is flagged too.
* **Loosely** against the *reported* rows (papers' numbers): same dataset family (the ``dataset`` name, so a paper's
  ``modelnet40`` rows sit beside a ``modelnet40`` run whatever the version), defense, attack, preset and setting.
  Papers share no dataset version, seed or backbone with us, so these are shown beside a row, never subtracted
  from it. A control row (``noise``, which carries the clean accuracy) gets the papers' clean-only rows (attack
  ``clean``) beside it.

Rows of the results that match no measured row are listed as not on the leaderboard, with the key columns in
which the closest committed cell (same dataset, backbone, defense, attack, preset and setting) differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from robench3d.errors import ConfigError, LeaderboardSchemaError
from robench3d.leaderboard.board import split_sources
from robench3d.schema import CLEAN_ATTACK, KEY, key_strings, read_raw, read_table, validate

__all__ = ["Comparison", "compare", "wilson_bounds", "wilson_half_width"]

_Z = 1.959964
_CELL = ["dataset", "backbone", "defense", "attack", "preset", "setting"]
_LOOSE = ["dataset", "defense", "preset", "setting"]  # and the attack (or ``clean`` beside a control row)
_SHOWN_UNMATCHED = 5


def wilson_bounds(p: float, n: int) -> tuple[float, float]:
    """The 95% Wilson interval of a proportion ``p`` over ``n`` samples (nan, nan for none).

    The formula of :func:`robench3d.evaluation.metrics.wilson_interval`, which the rows' ``robust_acc_ci_*`` come
    from (not imported: that module pulls in torch).
    """
    if n <= 0 or math.isnan(p):
        return float("nan"), float("nan")
    denom = 1 + _Z * _Z / n
    centre = (p + _Z * _Z / (2 * n)) / denom
    half = _Z * math.sqrt(p * (1 - p) / n + _Z * _Z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_half_width(p: float, n: int) -> float:
    """Half the width of :func:`wilson_bounds`: the ``h`` of the combined interval."""
    lo, hi = wilson_bounds(p, n)
    return (hi - lo) / 2


def _read(path: Path, what: str) -> pd.DataFrame:
    try:
        raw = read_raw(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise LeaderboardSchemaError(f"{path} is not a readable CSV ({type(e).__name__}: {e}); {what}") from e
    validate(raw, where=str(path))
    return read_table(path)


def _load_results(results: Path) -> tuple[Path, pd.DataFrame]:
    results = Path(results)
    if not results.is_dir():
        raise ConfigError(f"no results folder {str(results)!r}; pass --results DIR, the --output folder of a "
                          "`robench3d run`")
    csv = results / "results.csv"
    if not csv.exists():
        raise ConfigError(f"no results.csv in {results}; run `robench3d run --output {results}` first")
    rows = _read(csv, "regenerate it with `robench3d run`")
    if not split_sources(rows)[1].empty:
        raise ConfigError(f"{csv} holds reported rows; a run's results are measured only (compare the committed "
                          "reported rows with `robench3d leaderboard show`)")
    return csv, rows


def _load_boards(boards: Path) -> pd.DataFrame:
    paths = sorted(Path(boards).glob("*/*/*.csv"))
    if not paths:
        raise ConfigError(f"no leaderboard files under {boards} (expected <dataset>/<preset>/<setting>.csv); pass "
                          "--leaderboards DIR")
    frames = [_read(p, "the leaderboard file is damaged; restore it from git").assign(_file=str(p)) for p in paths]
    return pd.concat(frames, ignore_index=True)


@dataclass
class Comparison:
    """What :func:`compare` found; :meth:`render` formats it.

    Attributes:
        results: the results CSV compared.
        total: rows in it.
        matched: one line per user row with a measured match (columns ``file``, the cell, both numbers, deltas,
            allowed deltas, ``flag`` and ``reported`` references).
        skipped_both: matched rows that are skipped (or failed) on both sides: no numbers to compare.
        unmatched: user rows that match no measured row, with ``differs`` (key columns that differ from the closest
            committed cell, or ``no such cell``).
        failed: user rows with status ``error`` (never published, so never compared).
        sources: footnotes of the reported references, ``(number, text)``.
    """

    results: Path
    total: int
    matched: pd.DataFrame
    skipped_both: int
    unmatched: pd.DataFrame
    failed: int
    sources: list[tuple[int, str]] = field(default_factory=list)

    @property
    def flagged(self) -> int:
        """Matched rows whose delta lies outside the combined interval (or whose status differs)."""
        return int((self.matched["flag"] != "").sum()) if not self.matched.empty else 0

    def render(self) -> str:
        """Tables (tabulate, github format) per leaderboard file, the unmatched rows and a summary line."""
        parts = [f"{self.results} ({self.total} rows) against the committed measured rows, matched by key "
                 f"({', '.join(KEY)})"]
        for path, grp in self.matched.groupby("file", sort=True):
            parts.append(f"{path}: {len(grp)} matching row(s)\n" + _matched_table(grp))
        if self.sources:
            parts.append("reported rows beside them (same dataset name, defense, attack, preset, setting; a paper's "
                         "own model and data, shown, never subtracted):\n"
                         + "\n".join(f"  [{i}] {text}" for i, text in self.sources))
        if not self.unmatched.empty:
            shown = self.unmatched.head(_SHOWN_UNMATCHED)
            cols = ["backbone", "defense", "attack", "preset", "setting", "n_examples", "seed", "differs"]
            parts.append(f"not on the leaderboard: {len(self.unmatched)} row(s), not compared; the first "
                         f"{len(shown)}:\n" + tabulate(shown[cols].astype(str).values.tolist(), headers=cols,
                                                       tablefmt="github"))
        notes = [f"{len(self.matched)} row(s) compared", f"{self.flagged} outside the combined 95% interval"]
        if self.skipped_both:
            notes.append(f"{self.skipped_both} matched row(s) skipped on both sides (no numbers)")
        notes.append(f"{len(self.unmatched)} not on the leaderboard")
        if self.failed:
            notes.append(f"{self.failed} failed cell(s) (status error) not compared")
        parts.append("; ".join(notes))
        return "\n\n".join(parts)


def _pct(v: float) -> str:
    return "" if v is None or pd.isna(v) else f"{100 * v:.2f}"


def _delta(v: float) -> str:
    return "" if v is None or pd.isna(v) else f"{100 * v:+.2f}"


def _matched_table(grp: pd.DataFrame) -> str:
    headers = ["backbone", "defense", "attack", "n", "clean yours", "clean board", "Δ clean", "robust yours",
               "robust board", "Δ robust", "allowed |Δ| robust", "flag", "reported"]
    rows = [[r.backbone, r.defense, r.attack, r.n_examples, _pct(r.clean_yours), _pct(r.clean_board),
             _delta(r.d_clean), _pct(r.robust_yours), _pct(r.robust_board), _delta(r.d_robust),
             _pct(r.tol_robust), r.flag, r.reported] for r in grp.itertuples()]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _diff(a: float, b: float, n: int) -> tuple[float, float, bool]:
    """(delta, allowed |delta|, outside) of two accuracies over the same n (nan when either is missing)."""
    if pd.isna(a) or pd.isna(b):
        return float("nan"), float("nan"), False
    a, b = float(a), float(b)
    tol = math.sqrt(wilson_half_width(a, n) ** 2 + wilson_half_width(b, n) ** 2)
    return a - b, tol, abs(a - b) > tol + 1e-9


def _reported_refs(row: pd.Series, reported: pd.DataFrame, notes: dict[str, int]) -> str:
    """``[k] 12.30`` references to the reported rows beside ``row`` (footnote numbers allocated in ``notes``)."""
    if reported.empty:
        return ""
    same = (reported[_LOOSE].astype(str) == row[_LOOSE].astype(str).values).all(axis=1)
    attack = reported["attack"] == row["attack"]
    if bool(row["is_control"]):
        attack |= reported["attack"] == CLEAN_ATTACK
    refs = []
    for _, r in reported[same & attack].iterrows():
        text = (f"{str(r['source']).removeprefix('reported: ')}: {r['backbone']}, attack {r['attack']}, "
                f"{r['metric_convention']} convention")
        k = notes.setdefault(text, len(notes) + 1)
        if r["attack"] == CLEAN_ATTACK:
            refs.append(f"[{k}] clean {_pct(r['reported_clean_acc'])}")
        else:
            refs.append(f"[{k}] {_pct(r['reported_robust_acc'])}")
    return " ".join(refs)


def _differs(row: pd.Series, measured: pd.DataFrame) -> str:
    same = (measured[_CELL].astype(str) == row[_CELL].astype(str).values).all(axis=1)
    if not same.any():
        return "no such cell"
    best: list[str] | None = None
    for _, other in measured[same].iterrows():
        cols = [c for c in KEY if str(other[c]) != str(row[c])]
        if best is None or len(cols) < len(best):
            best = [f"{c} {row[c]} vs {other[c]}" for c in cols]
    return ", ".join(best or [])


def compare(results: Path, boards: Path) -> Comparison:
    """Match the rows of ``results/results.csv`` with the committed leaderboards (see the module docstring).

    Raises:
        ConfigError: a missing folder or results.csv, no leaderboard files, or reported rows in the results.
        LeaderboardSchemaError: a CSV that cannot be read or violates the schema (a schema 1 file included).
    """
    csv, rows = _load_results(results)
    measured, reported = split_sources(_load_boards(boards))
    reported = reported[reported["status"] == "ok"]
    failed = int((rows["status"] == "error").sum())
    rows = rows[rows["status"] != "error"]
    index = dict(zip(key_strings(measured), measured.index, strict=True))
    notes: dict[str, int] = {}
    matched, unmatched, skipped_both = [], [], 0
    for key, (_, r) in zip(key_strings(rows), rows.iterrows(), strict=True):
        if key not in index:
            unmatched.append({**{c: r[c] for c in KEY}, "differs": _differs(r, measured)})
            continue
        b = measured.loc[index[key]]
        if r["status"] != "ok" and b["status"] != "ok":
            skipped_both += 1
            continue
        n = int(r["n_examples"])
        d_clean, tol_clean, out_clean = _diff(r["clean_acc"], b["clean_acc"], n)
        d_robust, tol_robust, out_robust = _diff(r["robust_acc"], b["robust_acc"], n)
        flags = [name for name, out in (("clean", out_clean), ("robust", out_robust)) if out]
        if r["status"] != b["status"]:
            flags.append(f"status {r['status']} vs {b['status']}")
        matched.append({
            "file": b["_file"], "backbone": r["backbone"], "defense": r["defense"], "attack": r["attack"],
            "setting": r["setting"], "n_examples": n, "clean_yours": r["clean_acc"], "clean_board": b["clean_acc"],
            "d_clean": d_clean, "tol_clean": tol_clean, "robust_yours": r["robust_acc"],
            "robust_board": b["robust_acc"], "d_robust": d_robust, "tol_robust": tol_robust,
            "flag": ", ".join(flags), "reported": _reported_refs(r, reported, notes),
        })
    cols = ["file", "backbone", "defense", "attack", "setting", "n_examples", "clean_yours", "clean_board", "d_clean",
            "tol_clean", "robust_yours", "robust_board", "d_robust", "tol_robust", "flag", "reported"]
    return Comparison(results=csv, total=len(rows) + failed, matched=pd.DataFrame(matched, columns=cols),
                      skipped_both=skipped_both, unmatched=pd.DataFrame(unmatched, columns=[*KEY, "differs"]),
                      failed=failed, sources=[(k, text) for text, k in notes.items()])
