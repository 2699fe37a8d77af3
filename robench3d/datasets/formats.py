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
import tokenize
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from robench3d.datasets.base import check_points
from robench3d.datasets.parsing import float_rows, is_float
from robench3d.errors import DataError

__all__ = [
    "basename",
    "check_cloud_array",
    "check_labels",
    "check_not_empty",
    "check_same_length",
    "read_bytes",
    "read_h5",
    "read_id_list",
    "read_lines",
    "read_npy",
    "read_npy_shape",
    "read_npz",
    "read_point_text",
    "sniff",
    "unique_ids",
    "unreadable",
]

logger = logging.getLogger(__name__)

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
# HDF5 allows a user block before the superblock, so the signature may sit at 0, 512, 1024, 2048, ...
_HDF5_OFFSETS = (0, 512, 1024, 2048, 4096, 8192)


def unreadable(path: Path, exc: OSError) -> DataError:
    """The error for a file the operating system refuses to read (permissions, a folder, a broken link)."""
    why = exc.strerror or "input/output error"
    return DataError(f"{path} cannot be read ({why}); check that it is a readable file (its permissions, or the "
                     f"target of a link) or copy it again")


def read_bytes(path: Path) -> bytes:
    """The bytes of a data file; :class:`DataError` if it is missing or cannot be read."""
    if not path.is_file():
        raise DataError(f"{path} does not exist; check the data root")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise unreadable(path, exc) from exc


def sniff(path: Path) -> str | None:
    """Recognise common impostors by their first bytes: ``"an HTML page"``, ``"empty"``, ... or ``None``."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return None  # only used to explain another error; the caller's message stands without it
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
    try:
        with open(path, "rb") as f:
            heads = []
            for off in _HDF5_OFFSETS:
                f.seek(off)
                heads.append(f.read(len(HDF5_MAGIC)))
    except OSError as exc:
        raise unreadable(path, exc) from exc
    if HDF5_MAGIC not in heads:
        raise _wrong_kind(path, "HDF5")
    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as h5:
            missing = [k for k in required if k not in h5]
            if missing:
                raise DataError(f"{path} has no key(s) {missing}; it has {sorted(h5.keys())}. Is this the right "
                                f"file? Replace it with the dataset's original file")
            for key in required + tuple(k for k in optional if k in h5):
                node = h5[key]
                if not isinstance(node, h5py.Dataset):
                    raise DataError(f"{path}: {key!r} is a group, expected an array; replace the file with the "
                                    f"dataset's original")
                out[key] = np.asarray(node[()])
    # h5py reports truncation and bad chunks as OSError, broken links as KeyError, unsupported types as TypeError.
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise DataError(f"{path} is truncated or corrupt (HDF5 could not read it{_h5_detail(exc)}); download it "
                        f"again") from exc
    return out


def _h5_detail(exc: Exception) -> str:
    """The part of an h5py message in parentheses (``truncated file: eof = 96, ...``), as ``": ..."``."""
    m = re.search(r"\(([^()]*)\)", str(exc))
    return f": {m.group(1)}" if m else ""


def read_npy(path: Path) -> np.ndarray:
    """Load a ``.npy`` array (no pickles), checking the magic bytes and that the data is complete."""
    _check_magic(path, NPY_MAGIC, ".npy")
    try:
        return np.load(path, allow_pickle=False)
    # Truncated data fails the reshape, object arrays need pickle, and numpy tokenizes the header (TokenError).
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as exc:
        raise _bad_npy(path, exc) from exc


def _check_magic(path: Path, magic: bytes, expected: str) -> None:
    if not path.is_file():
        raise DataError(f"{path} does not exist; check the data root")
    try:
        with open(path, "rb") as f:
            head = f.read(len(magic))
    except OSError as exc:
        raise unreadable(path, exc) from exc
    if head != magic:
        raise _wrong_kind(path, expected)


def _bad_npy(path: Path, exc: Exception) -> DataError:
    if "pickle" in str(exc).lower():
        return DataError(f"{path} holds Python objects (an object array), not numbers; save it again with a "
                         f"numeric dtype, e.g. np.save(path, points.astype(np.float32))")
    if isinstance(exc, OSError) and exc.strerror:
        return unreadable(path, exc)
    return DataError(f"{path} is truncated or corrupt (its data does not match the shape in its header); download "
                     f"or export it again")


def read_npy_shape(path: Path) -> tuple[int, ...]:
    """The shape stored in a ``.npy`` header, without reading the data."""
    _check_magic(path, NPY_MAGIC, ".npy")
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, _ = reader(f)
    except OSError as exc:
        raise unreadable(path, exc) from exc
    except (ValueError, EOFError, SyntaxError, tokenize.TokenError) as exc:  # short or garbled header
        raise DataError(f"{path} has a truncated or corrupt .npy header (it does not describe an array's shape and "
                        f"dtype); download it again") from exc
    return tuple(int(s) for s in shape)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` archive (no pickles)."""
    _check_magic(path, ZIP_MAGIC, ".npz")
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:  # our handle: closed whatever fails
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DataError(f"{path} is a truncated or corrupt ZIP archive (a damaged .npz); export it again") from exc
    except (NotImplementedError, RuntimeError) as exc:  # zipfile: encryption, unknown versions or compressions
        raise DataError(f"{path} uses a ZIP feature numpy cannot read (encryption, or an unusual version or "
                        f"compression), or is corrupt; save it again with np.savez(path, points=...)") from exc
    except (ValueError, OSError, SyntaxError, tokenize.TokenError) as exc:
        raise _bad_npy(path, exc) from exc
    odd = [k for k, v in arrays.items() if not isinstance(v, np.ndarray)]  # members that are not .npy files
    if odd:
        raise DataError(f"{path}: member(s) {odd} are not .npy arrays; write the file with np.savez(path, points=...)")
    return arrays


def read_lines(path: Path) -> list[str]:
    """The non-blank lines of a text file, stripped (also of Windows ``\\r``)."""
    return [s for _, s in numbered_lines(path)]


def read_text(path: Path) -> str:
    """A UTF-8 text file's contents (a BOM is dropped); :class:`DataError` for binary or unreadable files."""
    raw = read_bytes(path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        what = sniff(path) or "binary data, or text in another encoding"
        raise DataError(f"{path} is not a UTF-8 text file (byte 0x{raw[exc.start]:02x} at offset {exc.start}); it "
                        f"may be {what}: replace it with the original text file or save it as UTF-8") from exc


def numbered_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, stripped line)`` for the non-blank lines of a text file (Windows ``\\r`` stripped too)."""
    return [(num, s) for num, line in enumerate(read_text(path).splitlines(), 1) if (s := line.strip())]


def read_id_list(path: Path) -> list[str]:
    """A JSON array of strings (``ply_data_*_id2file.json``)."""
    try:
        items = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno}); the file is "
                        f"damaged: download it again") from exc
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a JSON array of file names, got a JSON {type(items).__name__}; download "
                        f"it again")
    bad = next((i for i, s in enumerate(items) if not isinstance(s, str)), None)
    if bad is not None:
        raise DataError(f"{path}: entry {bad} is {items[bad]!r}, not a file name string; download it again")
    return items


def read_point_text(path: Path) -> np.ndarray:
    """Read a text point list (``.xyz``, ``.txt``, ``.csv``): one point per line, at least 3 numeric columns.

    Commas, semicolons or whitespace separate the columns; lines starting with ``#`` or ``//`` are comments. The
    first line is a header (``x,y,z``) only when none of its fields is a number: a first row with a typo such as
    ``0.1O,0.2,0.3`` is an error, not a header, so no point is dropped silently.

    Returns:
        (K, C) float64, C >= 3 (xyz first).

    Raises:
        DataError: binary or empty file, non-numeric values, rows of different lengths, fewer than 3 columns,
            NaN or Inf coordinates; the message names the line.
    """
    numbered = [(n, ln) for n, ln in numbered_lines(path) if not ln.startswith(("#", "//"))]
    if not numbered:
        raise DataError(f"{path} holds no points (empty or only comments); write one 'x y z' point per line or "
                        f"remove the file")
    first = numbered[0][1]
    delim = "," if "," in first else (";" if ";" in first else None)
    if not any(is_float(t) for t in (first.replace(delim, " ") if delim else first).split()):
        numbered = numbered[1:]  # a header such as "x,y,z"
    if not numbered:
        raise DataError(f"{path} holds only a header line and no points; add the points or remove the file")
    nums, lines = [n for n, _ in numbered], [ln for _, ln in numbered]
    ncols = len((lines[0].replace(delim, " ") if delim else lines[0]).split())
    if ncols < 3:
        raise DataError(f"{path}, line {nums[0]}: expected at least 3 columns (x y z), found {ncols}; write one "
                        f"'x y z' point per line")
    values = float_rows(lines, nums, ncols, source=path, what="the point", sep=delim, fix="fix or remove the line")
    bad = ~np.isfinite(values[:, :3]).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{path}, line {nums[i]}: the point has a NaN or Inf coordinate ({lines[i][:60]!r}); "
                        f"fix or remove the line")
    return values


def check_not_empty(points: np.ndarray, *, source: str, fix: str) -> None:
    """Raise :class:`DataError` if a file holds no clouds (0 rows would make its split vanish silently)."""
    if len(points) == 0:
        raise DataError(f"{source} holds 0 shapes (its data has shape {tuple(np.shape(points))}); an empty file is "
                        f"a failed download or export: {fix}")


def check_labels(labels: np.ndarray, num_classes: int, *, source: str) -> np.ndarray:
    """Validate labels stored as (M,) or (M, 1) integers in ``[0, num_classes)``; return (M,) int64."""
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]  # PointNet's h5 and ModelNet40-C keep a trailing axis
    if arr.ndim != 1:
        raise DataError(f"{source}: expected labels of shape (M,) or (M, 1), got {arr.shape}; replace the file "
                        f"with the dataset's original")
    if arr.dtype.kind not in "iu":
        raise DataError(f"{source}: expected integer labels, got dtype {arr.dtype}; labels are class indices: replace "
                        f"the file with the dataset's original")
    bad = (arr < 0) | (arr >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{source}: label {int(arr[i])} at row {i} is out of range [0, {num_classes}); "
                        f"{int(bad.sum())} label(s) are invalid. Is this file from another dataset? Replace it with "
                        f"this dataset's original")
    return arr.astype(np.int64)


def check_same_length(points: np.ndarray, labels: np.ndarray, *, source: str) -> None:
    """Raise :class:`DataError` if ``points`` and ``labels`` have different lengths."""
    if len(points) != len(labels):
        raise DataError(f"{source}: {len(points)} clouds but {len(labels)} labels; data and labels must have the "
                        f"same length (truncated or mismatched files?): download them again")


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
