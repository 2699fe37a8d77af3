"""``folder``: bring-your-own data laid out as ``<root>/<class>/{train,test}/<id>.<ext>``.

Files may be meshes (``.off``, ``.obj``, ``.ply`` with faces), sampled by surface area (cached per file), or
point clouds (``.ply`` without faces, ``.xyz``/``.txt``/``.csv`` text, ``.npy`` (K, >=3) arrays, ``.npz`` with
one array or a ``points``/``xyz``/``data`` key), whose first N points (or FPS) are kept. Extensions may be mixed;
``--format ply`` (etc.) reads only one kind. Every other entry (unknown extensions, hidden files, sub-folders,
broken or looping symbolic links, files that cannot be read) is skipped and named in a warning, in the prepared
dataset's ``notes`` (``robench3d data info``) and by ``robench3d data verify``, which counts the unreadable ones
as problems.

Labels follow ``<root>/classes.txt`` (one class name per line) when it exists, else the sorted class folder
names. A ``val/`` folder next to ``train/`` is used as the validation split instead of carving one from train.
``up_axis`` (``x``, ``y`` or ``z``; default ``y``) names the data's up axis, rotated to robench3d's y-up frame.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from robench3d.datasets.base import DatasetOptions
from robench3d.datasets.formats import read_lines, read_npy, read_npz, read_point_text, unreadable
from robench3d.datasets.loader import FileDataset, Plan, RawSplit, per_source
from robench3d.datasets.meshio import UP_AXES, read_obj, read_off, to_y_up
from robench3d.datasets.ply import ply_has_faces, read_ply
from robench3d.errors import ConfigError, DataError
from robench3d.norms import Split
from robench3d.params import Param

__all__ = ["EXTENSIONS", "FolderDataset", "detect_format", "read_shape"]

logger = logging.getLogger(__name__)

EXTENSIONS = ("ply", "off", "obj", "xyz", "txt", "csv", "npy", "npz")
_NPZ_KEYS = ("points", "xyz", "data", "pc", "pos")
_SHOWN = 20  # skipped files named in a note; the warning names them all


def read_shape(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read any supported file as ``(vertices (V, 3) float64, faces (F, 3) int64)``; F = 0 for point files."""
    ext = path.suffix.lower().lstrip(".")
    no_faces = np.zeros((0, 3), dtype=np.int64)
    if ext == "ply":
        return read_ply(path)
    if ext == "off":
        return read_off(path)
    if ext == "obj":
        return read_obj(path)
    if ext in ("xyz", "txt", "csv"):
        return read_point_text(path)[:, :3], no_faces
    if ext == "npy":
        arr = read_npy(path)
    elif ext == "npz":
        arrays = read_npz(path)
        key = next((k for k in _NPZ_KEYS if k in arrays), None) or (next(iter(arrays)) if len(arrays) == 1 else None)
        if key is None:
            raise DataError(f"{path} holds arrays {sorted(arrays)}; name the points 'points' (or keep one array): "
                            f"save it again with np.savez(path, points=...)")
        arr = arrays[key]
    else:
        raise DataError(f"{path}: unsupported extension .{ext}; supported: {', '.join(EXTENSIONS)}")
    if arr.ndim != 2 or arr.shape[1] < 3 or arr.dtype.kind != "f":
        raise DataError(f"{path}: expected a (K, 3) float array of points, got shape {arr.shape} dtype {arr.dtype}; "
                        f"save the points as a (K, 3) float32 array")
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/Inf are reported, naming the file, by check_points
        return arr[:, :3].astype(np.float64), no_faces


def _is_mesh(path: Path) -> bool:
    ext = path.suffix.lower()
    return ext in (".off", ".obj") or (ext == ".ply" and ply_has_faces(path))


def _skip_reason(f: Path, exts: tuple[str, ...]) -> tuple[str, bool] | None:
    """Why the split-folder entry ``f`` is not read (and whether ``verify`` calls it a problem), or ``None``."""
    if f.name.startswith("."):
        return "hidden file", False
    try:
        mode = f.stat().st_mode  # follows symbolic links
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop", True
        if f.is_symlink():
            return "broken symbolic link", True
        return f"cannot be read: {exc.strerror or 'input/output error'}", True
    if stat.S_ISDIR(mode):
        return "a folder; files must lie directly in <class>/<split>/", False
    if not stat.S_ISREG(mode):
        return "not a regular file", False
    ext = f.suffix.lower().lstrip(".")
    if ext not in EXTENSIONS:
        return f"unknown extension {f.suffix or '(none)'}", False
    if ext not in exts:
        return f"not {'/'.join(exts)}, the format asked for", False
    if not os.access(f, os.R_OK):
        return "cannot be read: permission denied", True
    return None


def detect_format(root: Path) -> str:
    """``"folder"`` if ``root`` has ``<class>/<split>/`` folders holding at least one supported file."""
    for ext in EXTENSIONS:
        if any(root.glob(f"*/train/*.{ext}")) or any(root.glob(f"*/test/*.{ext}")):
            return "folder"
    raise DataError(f"{root} is not a <class>/{{train,test}}/<id>.<ext> folder (ext: {', '.join(EXTENSIONS)})")


class FolderDataset(FileDataset):
    """Your own point clouds or meshes, one folder per class, split into train/ and test/ (and optionally val/)."""

    name: ClassVar[str] = "folder"
    description: ClassVar[str] = "bring your own data: <root>/<class>/{train,test}/<id>.{ply,off,obj,xyz,npy,...}"
    root_env: ClassVar[str | None] = "ROBENCH3D_FOLDER_ROOT"
    formats: ClassVar[tuple[str, ...]] = ("folder",) + EXTENSIONS
    extra_options: ClassVar[dict[str, Any]] = {"up_axis": None}
    option_specs: ClassVar[dict[str, Param]] = {"up_axis": Param(str, choices=UP_AXES, nullable=True)}

    def __init__(self, options: DatasetOptions) -> None:
        super().__init__(options)
        self.up_axis = str(self.settings["up_axis"] or options.up_axis or "y")
        if self.up_axis not in UP_AXES:
            raise ConfigError(f"up_axis must be one of {', '.join(UP_AXES)}, got {self.up_axis!r}")

    def detect_format(self, root: Path) -> str:
        return detect_format(root)

    def _classes(self, root: Path, skipped: list[tuple[Path, str, bool]]) -> tuple[str, ...]:
        try:
            entries = sorted(root.iterdir())
        except OSError as exc:
            raise unreadable(root, exc) from exc
        dirs = []
        for d in entries:
            if d.is_dir() and not d.name.startswith((".", "__")):
                dirs.append(d.name)
            elif d.name != "classes.txt":
                skipped.append((d, "hidden or metadata folder" if d.is_dir() else "not a class folder", False))
        listed = root / "classes.txt"
        if not listed.is_file():
            if not dirs:
                raise DataError(f"{root} has no class folders; expected <root>/<class>/train/<id>.<ext>")
            return tuple(dirs)
        names = read_lines(listed)
        if len(set(names)) != len(names):
            raise DataError(f"{listed} lists a class twice: {[n for n, c in Counter(names).items() if c > 1]}; "
                            f"remove the repeated line")
        unexpected = [d for d in dirs if d not in names]
        if unexpected:
            raise DataError(f"{root} has class folder(s) {unexpected} that {listed} does not list; add them to the "
                            f"file or move them away")
        return tuple(names)

    def scan(self) -> Plan:
        root = self.root()
        fmt = self.options.format or "folder"
        exts = EXTENSIONS if fmt == "folder" else (fmt,)
        skipped: list[tuple[Path, str, bool]] = []  # (entry, why, whether verify reports it as a problem)
        classes = self._classes(root, skipped)
        per_split: dict[Split, list[tuple[Path, int, str]]] = {}
        for label, cls in enumerate(classes):
            cdir = root / cls
            if not cdir.is_dir():
                continue  # listed in classes.txt, no shapes: reported as a class with count 0
            if not any((cdir / s).is_dir() for s in Split):
                raise DataError(f"{cdir} has no train/ or test/ folder; expected {cdir}/train/<id>.<ext>")
            skipped += [(e, "not in a train/, val/ or test/ folder", False) for e in _entries(cdir)
                        if e.name not in {s.value for s in Split}]
            for split in Split:
                sdir = cdir / split.value
                if not sdir.is_dir():
                    continue
                seen: dict[str, Path] = {}
                for f in _entries(sdir):
                    reason = _skip_reason(f, exts)
                    if reason is not None:
                        skipped.append((f, *reason))
                        continue
                    if f.stem in seen:
                        raise DataError(f"{f} and {seen[f.stem]} have the same id {f.stem!r}; keep one of them")
                    seen[f.stem] = f
                    per_split.setdefault(split, []).append((f, label, f"{cls}/{f.stem}"))
        notes, problems = _skip_notes(root, skipped)
        if not per_split:
            raise DataError(f"{root} holds no {'/'.join(exts)} files in <class>/{{train,val,test}}/ folders"
                            + (f" ({notes[0]})" if notes else "") + "; put the files in <class>/train/ or /test/")
        sampler = self.mesh_sampler(self.up_axis)

        def load() -> dict[Split, RawSplit]:
            out = {}
            for split, entries in per_split.items():
                raw = out[split] = RawSplit()
                for path, label, shape_id in entries:
                    with per_source():
                        if _is_mesh(path):  # sampled once, then served from the per-file cache
                            pts = sampler.sample(path, shape_id, read_shape)
                        else:
                            pts = to_y_up(read_shape(path)[0], self.up_axis)
                        raw.add(np.asarray(pts)[None], [label], [shape_id], str(path))
            return out

        files = [e[0] for entries in per_split.values() for e in entries]
        return Plan(fmt, root, files, classes, load, notes=notes, problems=problems,
                    tags=[f"up-{self.up_axis}", f"mesh{self.mesh_points}", f"ds{self.data_seed}"])


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        raise unreadable(folder, exc) from exc


def _skip_notes(root: Path, skipped: list[tuple[Path, str, bool]]) -> tuple[list[str], list[str]]:
    """Warn about the skipped entries, naming each; (the note for ``data info``, the problems for ``verify``)."""
    if not skipped:
        return [], []

    def rel(f: Path) -> str:
        return f.relative_to(root).as_posix() if f.is_relative_to(root) else str(f)

    named = [f"{rel(f)} ({why})" for f, why, _ in skipped]
    head = f"{len(skipped)} file(s) skipped under {root}: "
    logger.warning("folder: %s%s", head, ", ".join(named))
    note = head + ", ".join(named[:_SHOWN]) + (f", and {len(named) - _SHOWN} more" if len(named) > _SHOWN else "")
    problems = [f"{f}: {why}, so it is skipped; fix or remove it (a link: point it at an existing file)"
                for f, why, bad in skipped if bad]
    return [note], problems
