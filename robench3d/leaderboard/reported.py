"""Reported rows: papers' published numbers, from committed transcriptions into the leaderboard files.

A transcription (``leaderboards/reported/<paper>.csv``) has one line per printed table cell: the paper, its arXiv id
and table, the dataset, the backbone as the paper names it, the defense and attack mapped to robench3d's names
where they exist (``... (not in robench3d)`` otherwise), preset, setting, surrogate, targeted flag, the paper's
metric convention and the numbers exactly as printed (percent, ``+Params`` without thousands separators).
Derived columns ("Avg. R") are not transcribed. A published clean accuracy without an attack is a line with attack
:data:`CLEAN_ATTACK` and no robust number.

:func:`update_reported` turns them into schema rows whose ``source`` is ``reported: <paper> (arXiv:<id>), <table>``:
the numbers go to ``reported_*`` only (the measured columns stay empty, so no aggregate, sort or comparison mixes
them with measured rows), and every ``dataset_version`` says ``(as published)``, so a reported row never shares a
key with a measured one.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pandas as pd

from robench3d.errors import ConfigError, LeaderboardSchemaError
from robench3d.schema import (
    CLEAN_ATTACK,
    CONVENTIONS,
    SCHEMA_VERSION,
    is_reported,
    key_strings,
    normalize,
    read_table,
    upsert,
    validate,
    write_table,
)

__all__ = ["TRANSCRIPTION_COLUMNS", "read_transcriptions", "source_of", "to_rows", "update_reported"]

TRANSCRIPTION_COLUMNS: tuple[str, ...] = (
    "paper", "arxiv", "table", "dataset", "dataset_version", "backbone", "printed_row", "defense", "printed_column",
    "attack", "preset", "setting", "surrogate", "targeted", "metric_convention", "clean", "robust", "extra_params",
    "note")
_REQUIRED = ("paper", "arxiv", "table", "dataset", "dataset_version", "backbone", "printed_row", "defense",
             "printed_column", "attack", "preset", "setting", "targeted", "metric_convention", "clean")
_SETTINGS = ("oblivious", "adaptive", "transfer", "query")
_AS_PUBLISHED = "(as published)"


def _bad(where: str, line: int, message: str) -> LeaderboardSchemaError:
    return LeaderboardSchemaError(f"{where}: line {line} of the transcription: {message}")


def _percent(value: str, where: str, line: int, column: str) -> float:
    """A printed percentage (``61.83``) as a fraction, converted exactly in decimal (``0.6183``)."""
    try:
        d = Decimal(value)
    except InvalidOperation as e:
        raise _bad(where, line, f"{column} {value!r} is not a number; transcribe it as printed, e.g. 61.83") from e
    if not Decimal(0) <= d <= Decimal(100):
        raise _bad(where, line, f"{column} {value!r} is not a percentage in [0, 100]")
    return float(d / 100)


def read_transcriptions(folder: Path) -> pd.DataFrame:
    """Every ``*.csv`` of ``folder``, checked line by line, concatenated (as text, with a ``file`` column)."""
    paths = sorted(Path(folder).glob("*.csv"))
    if not paths:
        raise ConfigError(f"no transcriptions (*.csv) under {folder}; pass --reported leaderboards/reported")
    frames = []
    for path in paths:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = [c for c in TRANSCRIPTION_COLUMNS if c not in frame.columns]
        if missing:
            raise LeaderboardSchemaError(f"{path}: missing transcription column(s) {missing}; the columns are "
                                         f"{', '.join(TRANSCRIPTION_COLUMNS)}")
        for i, r in frame.iterrows():
            _check_line(r, str(path), int(i) + 2)  # type: ignore[call-overload]
        frames.append(frame.assign(file=path.name))
    return pd.concat(frames, ignore_index=True)


def _check_line(r: pd.Series, where: str, line: int) -> None:
    empty = [c for c in _REQUIRED if not str(r[c]).strip()]
    if empty:
        raise _bad(where, line, f"empty column(s) {empty}")
    if _AS_PUBLISHED not in r["dataset_version"]:
        raise _bad(where, line, f"dataset_version {r['dataset_version']!r} must contain {_AS_PUBLISHED!r}, so "
                                "the row never shares a key with a measured one")
    if r["metric_convention"] not in CONVENTIONS:
        raise _bad(where, line, f"metric_convention {r['metric_convention']!r} is not one of {', '.join(CONVENTIONS)}")
    if r["setting"] not in _SETTINGS:
        raise _bad(where, line, f"setting {r['setting']!r} is not one of {', '.join(_SETTINGS)}")
    if r["targeted"] not in ("true", "false"):
        raise _bad(where, line, f"targeted {r['targeted']!r} must be true or false")
    if (r["setting"] == "transfer") != bool(r["surrogate"]):
        raise _bad(where, line, "a transfer row names its surrogate, and only a transfer row has one")
    if (r["attack"] == CLEAN_ATTACK) == bool(r["robust"]):
        raise _bad(where, line, f"a row has a robust number unless its attack is {CLEAN_ATTACK!r} (a published "
                                "clean accuracy)")
    for col in ("clean", "robust"):
        if r[col]:
            _percent(r[col], where, line, col)
    if r["extra_params"] and not r["extra_params"].isdigit():
        raise _bad(where, line, f"extra_params {r['extra_params']!r} must be an integer without separators")


def source_of(r: pd.Series) -> str:
    """The ``source`` column of a transcription line: ``reported: <paper> (arXiv:<id>), <table>``."""
    return f"reported: {r['paper']} (arXiv:{r['arxiv']}), {r['table']}"


def to_rows(transcription: pd.DataFrame) -> pd.DataFrame:
    """Schema rows (measured columns empty, ``reported_*`` filled) of checked transcription lines."""
    rows = []
    for _, r in transcription.iterrows():
        clean_only = r["attack"] == CLEAN_ATTACK
        fields = {"paper_row": r["printed_row"], "paper_column": r["printed_column"]}
        if r["note"]:
            fields["note"] = r["note"]
        rows.append({
            "schema_version": SCHEMA_VERSION, "source": source_of(r), "status": "ok", "reason": "",
            "dataset": r["dataset"], "dataset_version": r["dataset_version"], "backbone": r["backbone"],
            "defense": r["defense"], "attack": r["attack"], "preset": r["preset"], "setting": r["setting"],
            "surrogate": r["surrogate"], "targeted": r["targeted"] == "true",
            "target_policy": "as published" if r["targeted"] == "true" else "none",
            "victim": "" if clean_only else (f"surrogate:{r['surrogate']}" if r["surrogate"] else "undefended"),
            "metric_convention": r["metric_convention"],
            "reported_clean_acc": _percent(r["clean"], "", 0, "clean"),
            "reported_robust_acc": _percent(r["robust"], "", 0, "robust") if r["robust"] else None,
            "reported_extra_params": int(r["extra_params"]) if r["extra_params"] else None,
            "is_control": False, "unreliable": False,
            "data_fields": json.dumps(fields, sort_keys=True, ensure_ascii=False),
            "weights_provenance": "not run here: the paper's own model and numbers",
        })
    return pd.DataFrame(rows)


def _target(boards: Path, dataset: str, preset: str, setting: str) -> Path:
    for part in (dataset, preset, setting):
        if not part or "/" in part or part.startswith("."):
            raise LeaderboardSchemaError(f"invalid leaderboard path component {part!r}")
    return Path(boards) / dataset / preset / f"{setting}.csv"


def update_reported(folder: Path, boards: Path) -> list[tuple[Path, int, int]]:
    """Write the reported rows of the transcriptions in ``folder`` into the leaderboard files.

    Rows are upserted by key like measured rows; a reported row of one of the transcribed sources (paper and table)
    that the transcription no longer produces is removed, so a corrected transcription leaves nothing stale.
    Measured rows are never touched, files without rows of these sources are not written, and the output is
    deterministic (running it twice gives identical files).

    Returns:
        (file, reported rows, all rows) per file holding rows of these sources.
    """
    rows = to_rows(read_transcriptions(folder))
    sources = set(rows["source"])
    targets = {_target(boards, d, p, s): g for (d, p, s), g in rows.groupby(["dataset", "preset", "setting"])}
    stale = [p for p in sorted(Path(boards).glob("*/*/*.csv")) if p not in targets
             and read_table(p)["source"].isin(sources).any()]
    out = []
    for path in sorted([*targets, *stale]):
        existing = read_table(path) if path.exists() else None
        if existing is not None:
            existing = existing[~existing["source"].isin(sources)]
        grp = targets.get(path)
        if existing is not None and grp is not None:
            clash = set(key_strings(existing[~is_reported(existing)])) & set(key_strings(normalize(grp)))
            if clash:
                raise LeaderboardSchemaError(f"{path}: a reported row would replace the measured row with key "
                                             f"{sorted(clash)[0]}; give the transcription line its own "
                                             "dataset_version")
        merged = upsert(existing, grp) if grp is not None else upsert(None, existing)  # type: ignore[arg-type]
        if merged.empty:  # the file held only rows the transcription no longer produces
            path.unlink()
            continue
        validate(merged, where=str(path))
        write_table(merged, path)
        out.append((path, int(is_reported(merged).sum()), len(merged)))
    return out
