"""Strict parsing of the numbers in text data files (OFF, OBJ, ASCII PLY, point lists), with line numbers.

Python's ``int``/``float`` and numpy's string casts accept more than a data file should hold: ``1_0`` is 10,
``"١٢"`` (Arabic-Indic digits) is 12. A typo of that kind would silently become a wrong coordinate or index, so
tokens must match the plain ASCII decimal grammar (``nan`` and ``inf`` are accepted here and rejected later by
the finiteness checks, whose messages say what is wrong). Large tables still go through one numpy call; the
per-line path runs only to find the line to blame.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from robench3d.errors import DataError

__all__ = ["as_index", "float_rows", "is_float", "is_int", "plain_text"]

_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)", re.ASCII | re.IGNORECASE)
_INT = re.compile(r"[+-]?\d+", re.ASCII)


def is_float(token: str) -> bool:
    """Whether ``token`` is a plain decimal number (``-1.5e3``, ``7``, ``nan``; not ``1_0`` or ``0x10``)."""
    return _FLOAT.fullmatch(token) is not None


def is_int(token: str) -> bool:
    """Whether ``token`` is a plain decimal integer (``-12``; not ``1_0``, ``2.0`` or ``+ 3``)."""
    return _INT.fullmatch(token) is not None


def as_index(token: str) -> int | None:
    """The whole number ``token`` spells (``2``, ``2.0``, ``2e0``), or ``None`` (``2.7``, ``1_0``, ``nan``)."""
    if is_int(token):
        return int(token)
    if is_float(token):
        value = float(token)
        if value.is_integer():  # False for nan and inf too
            return int(value)
    return None


def plain_text(lines: Sequence[str]) -> bool:
    """True when no line holds a character that numpy would parse more leniently than :func:`is_float`."""
    return all(ln.isascii() and "_" not in ln for ln in lines)


def float_rows(lines: Sequence[str], numbers: Sequence[int], ncols: int, *, source: Path, what: str, fix: str,
               exact: bool = True, sep: str | None = None) -> np.ndarray:
    """Parse the first ``ncols`` numbers of each line into a (L, ncols) float64 array.

    Args:
        lines: the data lines (comments and blanks already removed).
        numbers: the 1-based line number of each, for the messages.
        ncols: values wanted per line.
        source: the file, named in every message.
        what: what one line holds, for the messages: ``"vertex {i}"`` (``{i}`` is the 0-based row), ``"the point"``.
        fix: the end of every message: how to repair the file.
        exact: each line must hold exactly ``ncols`` values (else at least ``ncols``; the rest, such as colours,
            are ignored unchecked).
        sep: a column separator other than whitespace (``,`` or ``;``).

    Raises:
        DataError: the first line with too few (or, if ``exact``, too many) values or a value that is not a
            plain number, naming the file, the line and the value.
    """
    rows = [(ln.replace(sep, " ") if sep else ln).split() for ln in lines]
    lengths = {len(r) for r in rows}
    if len(lengths) == 1 and plain_text(lines):
        width = lengths.pop()
        if width == ncols or (width > ncols and not exact):
            try:
                return np.array(rows, dtype=np.float64)[:, :ncols].reshape(len(rows), ncols)
            except ValueError:
                pass  # a non-numeric value: the loop below names its line
    out = np.empty((len(rows), ncols), dtype=np.float64)
    for i, (tokens, num) in enumerate(zip(rows, numbers, strict=True)):
        label = what.format(i=i)
        if len(tokens) < ncols or (exact and len(tokens) != ncols):
            expected = f"{ncols}, as on line {numbers[0]}" if exact else f"at least {ncols}"
            raise DataError(f"{source}, line {num}: {label} has {len(tokens)} value(s), expected {expected} "
                            f"({lines[i][:60]!r}); {fix}")
        bad = next((t for t in tokens[:ncols] if not is_float(t)), None)
        if bad is not None:
            raise DataError(f"{source}, line {num}: {bad!r} in {label} is not a plain decimal number (such as "
                            f"-0.25 or 1e-3); {fix}")
        out[i] = [float(t) for t in tokens[:ncols]]
    return out
