"""Readers for the array and text files real datasets ship as: HDF5, ``.npy``/``.npz``, text point lists, lists.

Every reader validates what it returns and raises :class:`~robench3d.errors.DataError` naming the file and the
problem, so that a corrupt file never silently becomes a wrong sample. Files that are not what their extension
says are recognised by their first bytes: a failed download often leaves an HTML error page named ``.h5``.
Mesh formats (OFF, OBJ, PLY) live in :mod:`robench3d.datasets.meshio`.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path

import numpy as np

from robench3d.datasets.base import check_points
from robench3d.errors import DataError

__all__ = [
    "basename",
    "check_cloud_array",
    "check_labels",
    "check_same_length",
    "read_h5",
    "read_id_list",
    "read_lines",
    "read_npy",
    "read_npy_shape",
    "read_npz",
    "read_point_text",
    "sniff",
    "unique_ids",
]

logger = logging.getLogger(__name__)

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
# HDF5 allows a user block before the superblock, so the signature may sit at 0, 512, 1024, 2048, ...
_HDF5_OFFSETS = (0, 512, 1024, 2048, 4096, 8192)


def sniff(path: Path) -> str | None:
    """Recognise common impostors by their first bytes: ``"an HTML page"``, ``"empty"``, ... or ``None``."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "empty (0 bytes)"
    low = head.lstrip().lower()
    if low.startswith(b"<"):  # <!DOCTYPE html>, <html>, <?xml ...>: what web servers answer with
        return "an HTML/XML page (probably an error page saved by a failed download)"
    if low.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the data (run `git lfs pull`)"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip archive (decompress it first)"
    if head.startswith(ZIP_MAGIC) and path.suffix != ".npz":
        return "a ZIP archive (extract it first)"
    return None


def _wrong_kind(path: Path, expected: str) -> DataError:
    what = sniff(path)
    detail = f"it is {what}" if what else "its first bytes are not the format's signature (truncated or corrupt?)"
    return DataError(f"{path} is not a valid {expected} file: {detail}; download it again")


def read_h5(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Read the datasets ``required`` (+ those of ``optional`` present) from the root of an HDF5 file.

    Raises:
        DataError: missing file, not an HDF5 file (checked by magic bytes), truncated or corrupt data, or a
            required key missing (the message lists the keys the file has).
    """
    import h5py

    if not path.is_file():
        raise DataError(f"{path} does not exist; check the data root and the file lists")
    with open(path, "rb") as f:
        heads = []
        for off in _HDF5_OFFSETS:
            f.seek(off)
            heads.append(f.read(len(HDF5_MAGIC)))
    if HDF5_MAGIC not in heads:
        raise _wrong_kind(path, "HDF5")
    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as h5:
            missing = [k for k in required if k not in h5]
            if missing:
                raise DataError(f"{path} has no key(s) {missing}; it has {sorted(h5.keys())}. Is this the right file?")
            for key in required + tuple(k for k in optional if k in h5):
                node = h5[key]
                if not isinstance(node, h5py.Dataset):
                    raise DataError(f"{path}: {key!r} is a group, expected an array")
                out[key] = np.asarray(node[()])
    except OSError as exc:  # h5py reports truncation and bad chunks as OSError
        raise DataError(f"{path} is truncated or corrupt ({exc}); download it again") from exc
    return out


def read_npy(path: Path) -> np.ndarray:
    """Load a ``.npy`` array (no pickles), checking the magic bytes and that the data is complete."""
    if not path.is_file():
        raise DataError(f"{path} does not exist; check the data root")
    with open(path, "rb") as f:
        if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise _wrong_kind(path, ".npy")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # truncated data fails the reshape; object arrays need pickle
        raise DataError(f"{path} is truncated or unreadable ({exc}); download or export it again") from exc


def read_npy_shape(path: Path) -> tuple[int, ...]:
    """The shape stored in a ``.npy`` header, without reading the data."""
    if not path.is_file():
        raise DataError(f"{path} does not exist; check the data root")
    with open(path, "rb") as f:
        if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise _wrong_kind(path, ".npy")
        f.seek(0)
        try:
            version = np.lib.format.read_magic(f)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, _ = reader(f)
        except ValueError as exc:
            raise DataError(f"{path} has a corrupt .npy header ({exc}); download it again") from exc
    return tuple(int(s) for s in shape)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` archive (no pickles)."""
    with open(path, "rb") as f:
        if f.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
            raise _wrong_kind(path, ".npz")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path} is truncated or unreadable ({exc}); export it again") from exc


def read_lines(path: Path) -> list[str]:
    """The non-blank lines of a text file, stripped (also of Windows ``\\r``)."""
    if not path.is_file():
        raise DataError(f"{path} does not exist; check the data root")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not a text file ({exc}); it may be {sniff(path) or 'binary'}") from exc
    return [s for line in text.splitlines() if (s := line.strip())]


def read_id_list(path: Path) -> list[str]:
    """A JSON array of strings (``ply_data_*_id2file.json``)."""
    try:
        items = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); download it again") from exc
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise DataError(f"{path}: expected a JSON array of file names, got {type(items).__name__}")
    return items


def _is_number_row(tokens: list[str]) -> bool:
    try:
        [float(t) for t in tokens]
    except ValueError:
        return False
    return bool(tokens)


def read_point_text(path: Path) -> np.ndarray:
    """Read a text point list (``.xyz``, ``.txt``, ``.csv``): one point per line, at least 3 numeric columns.

    Commas, semicolons or whitespace separate the columns; a non-numeric first line is taken as a header, and
    lines starting with ``#`` or ``//`` are comments.

    Returns:
        (K, C) float64, C >= 3 (xyz first).

    Raises:
        DataError: binary or empty file, non-numeric values, rows of different lengths, fewer than 3 columns.
    """
    lines = [ln for ln in read_lines(path) if not ln.startswith(("#", "//"))]
    if not lines:
        raise DataError(f"{path} holds no points (empty or only comments)")
    delim = "," if "," in lines[0] else (";" if ";" in lines[0] else None)

    def split(line: str) -> list[str]:
        return line.replace(delim, " ").split() if delim else line.split()

    if not _is_number_row(split(lines[0])):
        lines = lines[1:]  # a header such as "x,y,z"
    if not lines:
        raise DataError(f"{path} holds only a header line and no points")
    ncols = len(split(lines[0]))
    body = "\n".join(lines)
    tokens = (body.replace(delim, " ") if delim else body).split()
    if len(tokens) != ncols * len(lines):
        bad = next(i for i, ln in enumerate(lines) if len(split(ln)) != ncols)
        raise DataError(f"{path}: point {bad + 1} has {len(split(lines[bad]))} values but the first has {ncols}; "
                        f"the file is truncated or malformed")
    if ncols < 3:
        raise DataError(f"{path}: expected at least 3 columns (x y z), found {ncols}")
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path}: non-numeric value ({exc}); expected numbers only") from exc
    return values.reshape(len(lines), ncols)


def check_labels(labels: np.ndarray, num_classes: int, *, source: str) -> np.ndarray:
    """Validate labels stored as (M,) or (M, 1) integers in ``[0, num_classes)``; return (M,) int64."""
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]  # PointNet's h5 and ModelNet40-C keep a trailing axis
    if arr.ndim != 1:
        raise DataError(f"{source}: expected labels of shape (M,) or (M, 1), got {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise DataError(f"{source}: expected integer labels, got dtype {arr.dtype}; labels are class indices")
    bad = (arr < 0) | (arr >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{source}: label {int(arr[i])} at row {i} is out of range [0, {num_classes}); "
                        f"{int(bad.sum())} label(s) are invalid. Is this file from another dataset?")
    return arr.astype(np.int64)


def check_same_length(points: np.ndarray, labels: np.ndarray, *, source: str) -> None:
    """Raise :class:`DataError` if ``points`` and ``labels`` have different lengths."""
    if len(points) != len(labels):
        raise DataError(f"{source}: {len(points)} clouds but {len(labels)} labels; data and labels must have the "
                        f"same length (truncated or mismatched files?)")


def check_cloud_array(points: np.ndarray, *, source: str) -> np.ndarray:
    """Validate a (M, K, 3) float array of clouds (shape, dtype, NaN/Inf) and return it as float32."""
    return check_points(points, source=source)


def basename(entry: str) -> str:
    """The file name of a path written in a list file: POSIX, absolute or Windows-style (``C:\\data\\x.h5``)."""
    return re.split(r"[\\/]", entry.strip())[-1]


def unique_ids(ids: list[str]) -> list[str]:
    """``ids`` with repeats suffixed ``#2``, ``#3``, ... so that per-example results never collide."""
    if len(set(ids)) == len(ids):
        return ids
    seen: Counter[str] = Counter()
    out = []
    for i in ids:
        seen[i] += 1
        out.append(i if seen[i] == 1 else f"{i}#{seen[i]}")
    return out
