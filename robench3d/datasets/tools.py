"""Data tooling behind ``robench3d data info|verify|prepare``: describe, verify and detect a user's copy.

* :func:`describe` summarises a prepared dataset as a JSON-able dict (classes, counts per class and split,
  points per cloud, version, byte-identical clouds) plus ready-to-print table rows;
* :func:`verify` re-reads every source file of a dataset (bypassing the prepared cache), collects the problems
  instead of stopping at the first, records each file's size and SHA-256 in a :class:`VerifyReport`, and reports
  the byte-identical clouds (:mod:`robench3d.datasets.duplicates`);
* :func:`detect_format` names the on-disk format a root holds, per dataset family.
"""

from __future__ import annotations

import logging
import struct
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robench3d.cache import file_sha256
from robench3d.datasets.base import Dataset, PreparedDataset
from robench3d.datasets.duplicates import find_duplicates
from robench3d.errors import ConfigError
from robench3d.norms import Split

__all__ = ["FileCheck", "VerifyReport", "describe", "detect_format", "verify"]

logger = logging.getLogger(__name__)


def describe(prepared: PreparedDataset) -> dict[str, Any]:
    """A summary of a prepared dataset.

    Returns:
        ``{"name", "version", "num_classes", "classes", "trained_on", "row_fields", "splits": {split: {"count",
        "points_per_cloud", "per_class": {class: count}}}, "headers", "rows", "notes", "duplicates", "provenance"}``;
        ``duplicates`` is a :class:`~robench3d.datasets.duplicates.DuplicateReport` as a dict (``None`` for data
        without cloud digests, e.g. generated datasets); ``headers``/``rows`` form a table of label, class and
        one count column per split (classes with no shapes show 0), ending with a total row; ``notes`` are
        one-line observations made while preparing (e.g. "3 file(s) skipped under <root>: a.foo (unknown
        extension .foo), ..."), for the CLI to print as ``note: ...``; ``provenance`` says where the data came
        from (root, format, source id, cache) and the ``test_duplicates`` policy.
    """
    present = [s for s in Split if prepared.has(s)]
    splits: dict[str, Any] = {}
    for s in present:
        data = prepared.split(s)
        counts = np.bincount(data.labels, minlength=prepared.num_classes)
        splits[str(s)] = {"count": len(data), "points_per_cloud": data.num_points,
                          "per_class": {c: int(n) for c, n in zip(prepared.class_names, counts, strict=True)}}
    rows: list[list[Any]] = [[i, c] + [splits[str(s)]["per_class"][c] for s in present]
                             for i, c in enumerate(prepared.class_names)]
    rows.append(["", "total"] + [splits[str(s)]["count"] for s in present])
    dups = find_duplicates(prepared.splits, prepared.class_names)
    return {"name": prepared.name, "version": prepared.version, "num_classes": prepared.num_classes,
            "classes": list(prepared.class_names), "trained_on": prepared.trained_on,
            "row_fields": dict(prepared.row_fields), "splits": splits,
            "headers": ["label", "class"] + [str(s) for s in present], "rows": rows, "notes": list(prepared.notes),
            "duplicates": None if dups is None else dups.to_dict(), "provenance": dict(prepared.provenance)}


@dataclass
class FileCheck:
    """One source file: path relative to the data root, size in bytes, SHA-256 of its bytes."""

    path: str
    size: int
    sha256: str


@dataclass
class VerifyReport:
    """What :func:`verify` found.

    Attributes:
        dataset: registry name (and variant, ``name:variant``).
        root: the resolved data root (``None`` if none could be resolved).
        format: the detected or forced format (``None`` if detection failed).
        files: every source file with its checksum (a CLI prints these as a table).
        problems: errors that make the copy unusable or wrong, one sentence each naming the file.
        notes: observations that are not errors (classes with no shapes, counts that differ from the official).
        duplicates: the byte-identical clouds found (a ``DuplicateReport`` as a dict), ``None`` if not read.
    """

    dataset: str
    root: str | None = None
    format: str | None = None
    files: list[FileCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duplicates: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def checksum_rows(self) -> list[list[Any]]:
        """``[path, size, sha256]`` rows, for a table with headers ``file, bytes, sha256``."""
        return [[f.path, f.size, f.sha256] for f in self.files]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``ok`` included)."""
        return {**asdict(self), "ok": self.ok}


def verify(dataset: Dataset, *, checksums: bool = True) -> VerifyReport:
    """Check a dataset's source files: layout, every file readable and valid, and checksums.

    Unlike ``prepare``, the prepared cache is bypassed, so a file corrupted after preparation is caught.

    Args:
        dataset: an instantiated dataset plugin (real-data loaders are checked file by file; generated datasets
            such as ``shapes`` are just prepared).
        checksums: compute SHA-256 of every source file (slow for large copies).

    Returns:
        The report; :attr:`VerifyReport.ok` says whether the copy is usable.
    """
    from robench3d.datasets.loader import FileDataset, collecting

    label = f"{dataset.name}:{dataset.variant}" if dataset.variant else dataset.name
    report = VerifyReport(dataset=label)
    if not isinstance(dataset, FileDataset):
        try:
            dataset.prepare()
            report.notes.append(f"{dataset.name} is generated locally; it has no source files to check")
        except ConfigError as exc:  # DataError included
            report.problems.append(str(exc))
        return report
    try:
        plan = dataset.scan()
    except ConfigError as exc:
        report.problems.append(str(exc))
        return report
    except _UNEXPECTED as exc:
        report.problems.append(_unexpected(dataset, exc))
        return report
    report.root, report.format = str(plan.root), plan.format
    report.notes += plan.notes
    report.problems += plan.problems
    for f in sorted(plan.files):
        rel = f.relative_to(plan.root).as_posix() if f.is_relative_to(plan.root) else str(f)
        try:
            report.files.append(FileCheck(rel, f.stat().st_size, file_sha256(f) if checksums else ""))
        except OSError as exc:
            report.problems.append(f"{f} cannot be read ({exc.strerror or 'input/output error'}); check its "
                                   f"permissions or copy it again")
    try:
        with collecting(report.problems, report.notes):  # every bad file is a problem; the others are still read
            splits = dataset.build(plan)
    except ConfigError as exc:
        report.problems.append(str(exc))
        return report
    except _UNEXPECTED as exc:
        report.problems.append(_unexpected(dataset, exc))
        return report
    report.notes += _count_notes(dataset.name, plan.class_names, {s: d.labels for s, d in splits.items()})
    dups = find_duplicates(splits, plan.class_names)
    report.duplicates = None if dups is None else dups.to_dict()
    return report


# Raised by file parsing (numpy, h5py, zipfile, struct); the readers turn every one they foresee into a DataError,
# so this only keeps ``verify`` from crashing on a case they missed, and says so.
_UNEXPECTED = (OSError, ValueError, IndexError, KeyError, TypeError, EOFError, RuntimeError, struct.error, zlib.error,
               zipfile.BadZipFile)


def _unexpected(dataset: Dataset, exc: Exception) -> str:
    return (f"unexpected {type(exc).__name__} while reading the {dataset.name} files: {exc}. This is a robench3d "
            f"bug (its readers should explain every bad file): please report it with the file that caused it")


def _count_notes(name: str, classes: tuple[str, ...], labels: dict[Split, np.ndarray]) -> list[str]:
    """Classes with no shapes, and (ModelNet) counts that differ from the official ones."""
    from robench3d.datasets.modelnet import OFFICIAL_COUNTS

    notes = []
    for split, lab in labels.items():
        counts = np.bincount(lab, minlength=len(classes))
        empty = [c for c, n in zip(classes, counts, strict=True) if n == 0]
        if empty:
            notes.append(f"{split}: {len(empty)} class(es) have no shapes: {', '.join(empty)}")
    if name not in ("modelnet40", "modelnet10"):
        return notes
    # val is carved from train, so the official train counts are compared with train + val.
    sides = {"test": [Split.TEST], "train+val": [Split.TRAIN, Split.VAL]}
    for side, (word, col) in zip(sides, (("test", 1), ("train", 0)), strict=True):
        parts = [labels[s] for s in sides[side] if s in labels]
        if not parts:
            continue
        counts = np.bincount(np.concatenate(parts), minlength=len(classes))
        off = [f"{c} {n}/{OFFICIAL_COUNTS[c][col]}" for c, n in zip(classes, counts, strict=True)
               if n != OFFICIAL_COUNTS[c][col]]
        if off:
            notes.append(f"{word} counts differ from the official ones for {len(off)} class(es) (have/official): "
                         + ", ".join(off[:10]) + (" ..." if len(off) > 10 else ""))
        else:
            notes.append(f"{side}: {int(counts.sum())} shapes, the official {word} count of every class")
    return notes


def detect_format(root: Path, family: str) -> str:
    """The on-disk format under ``root`` for a dataset family.

    Args:
        root: a data root.
        family: ``modelnet40``, ``modelnet10`` (-> ``h5``, ``normal_resampled``, ``off`` or ``aligned_ply``),
            ``scanobjectnn`` (-> ``h5``), ``modelnet40_c`` (-> ``npy``) or ``folder`` (-> ``folder``).

    Raises:
        ConfigError: unknown family.
        DataError: nothing of that family under ``root`` (the message says what was expected).
    """
    from robench3d.datasets import folder, modelnet, modelnet40c, scanobjectnn

    if family in ("modelnet40", "modelnet10"):
        return modelnet.detect_format(root, family)
    detectors = {"scanobjectnn": scanobjectnn.detect_format, "modelnet40_c": modelnet40c.detect_format,
                 "folder": folder.detect_format}
    if family not in detectors:
        raise ConfigError(f"unknown dataset family {family!r}; valid: modelnet40, modelnet10, "
                          f"{', '.join(detectors)}")
    return detectors[family](root)
