"""``folder``: bring-your-own data laid out as ``<root>/<class>/{train,test}/<id>.<ext>``.

Files may be meshes (``.off``, ``.obj``, ``.ply`` with faces), sampled by surface area (cached per file), or
point clouds (``.ply`` without faces, ``.xyz``/``.txt``/``.csv`` text, ``.npy`` (K, >=3) arrays, ``.npz`` with
one array or a ``points``/``xyz``/``data`` key), whose first N points (or FPS) are kept. Extensions may be mixed;
``--format ply`` (etc.) reads only one kind. Other files are skipped with a warning.

Labels follow ``<root>/classes.txt`` (one class name per line) when it exists, else the sorted class folder
names. A ``val/`` folder next to ``train/`` is used as the validation split instead of carving one from train.
``up_axis`` (``x``, ``y`` or ``z``; default ``y``) names the data's up axis, rotated to robench3d's y-up frame.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from robench3d.datasets.base import DatasetOptions
from robench3d.datasets.formats import read_lines, read_npy, read_npz, read_point_text
from robench3d.datasets.loader import FileDataset, Plan, RawSplit
from robench3d.datasets.meshio import UP_AXES, read_obj, read_off, to_y_up
from robench3d.datasets.ply import ply_has_faces, read_ply
from robench3d.errors import ConfigError, DataError
from robench3d.norms import Split

__all__ = ["EXTENSIONS", "FolderDataset", "detect_format", "read_shape"]

logger = logging.getLogger(__name__)

EXTENSIONS = ("ply", "off", "obj", "xyz", "txt", "csv", "npy", "npz")
_NPZ_KEYS = ("points", "xyz", "data", "pc", "pos")


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
            raise DataError(f"{path} holds arrays {sorted(arrays)}; name the points 'points' (or keep one array)")
        arr = arrays[key]
    else:
        raise DataError(f"{path}: unsupported extension .{ext}; supported: {', '.join(EXTENSIONS)}")
    if arr.ndim != 2 or arr.shape[1] < 3 or arr.dtype.kind != "f":
        raise DataError(f"{path}: expected a (K, 3) float array of points, got shape {arr.shape} dtype {arr.dtype}")
    return arr[:, :3].astype(np.float64), no_faces


def _is_mesh(path: Path) -> bool:
    ext = path.suffix.lower()
    return ext in (".off", ".obj") or (ext == ".ply" and ply_has_faces(path))


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

    def __init__(self, options: DatasetOptions) -> None:
        super().__init__(options)
        self.up_axis = str(self.settings["up_axis"] or options.up_axis or "y")
        if self.up_axis not in UP_AXES:
            raise ConfigError(f"up_axis must be one of {', '.join(UP_AXES)}, got {self.up_axis!r}")

    def detect_format(self, root: Path) -> str:
        return detect_format(root)

    def _classes(self, root: Path) -> tuple[str, ...]:
        dirs = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith((".", "__")))
        listed = root / "classes.txt"
        if not listed.is_file():
            if not dirs:
                raise DataError(f"{root} has no class folders; expected <root>/<class>/train/<id>.<ext>")
            return tuple(dirs)
        names = read_lines(listed)
        if len(set(names)) != len(names):
            raise DataError(f"{listed} lists a class twice: {[n for n, c in Counter(names).items() if c > 1]}")
        unexpected = [d for d in dirs if d not in names]
        if unexpected:
            raise DataError(f"{root} has class folder(s) {unexpected} that {listed} does not list; add them to the "
                            f"file or move them away")
        return tuple(names)

    def scan(self) -> Plan:
        root = self.root()
        fmt = self.options.format or "folder"
        exts = EXTENSIONS if fmt == "folder" else (fmt,)
        classes = self._classes(root)
        per_split: dict[Split, list[tuple[Path, int, str]]] = {}
        skipped: Counter[str] = Counter()
        for label, cls in enumerate(classes):
            cdir = root / cls
            if cdir.is_dir() and not any((cdir / s).is_dir() for s in Split):
                raise DataError(f"{cdir} has no train/ or test/ folder; expected {cdir}/train/<id>.<ext>")
            for split in Split:
                sdir = cdir / split.value
                if not sdir.is_dir():
                    continue
                seen: dict[str, Path] = {}
                for f in sorted(sdir.iterdir()):
                    ext = f.suffix.lower().lstrip(".")
                    if not f.is_file() or f.name.startswith("."):
                        continue
                    if ext not in exts:
                        skipped[f.suffix or f.name] += 1
                        continue
                    if f.stem in seen:
                        raise DataError(f"{f} and {seen[f.stem]} have the same id {f.stem!r}; keep one of them")
                    seen[f.stem] = f
                    per_split.setdefault(split, []).append((f, label, f"{cls}/{f.stem}"))
        if skipped:
            logger.warning("folder %s: skipped %d file(s) with unsupported extensions %s (supported: %s)", root,
                           sum(skipped.values()), dict(skipped), ", ".join(exts))
        if not per_split:
            raise DataError(f"{root} holds no {'/'.join(exts)} files in <class>/{{train,val,test}}/ folders")
        sampler = self.mesh_sampler(self.up_axis)

        def load() -> dict[Split, RawSplit]:
            out = {}
            for split, entries in per_split.items():
                raw = out[split] = RawSplit()
                for path, label, shape_id in entries:
                    if _is_mesh(path):  # sampled once, then served from the per-file cache
                        pts = sampler.sample(path, shape_id, read_shape)
                    else:
                        pts = to_y_up(read_shape(path)[0], self.up_axis)
                    raw.add(np.asarray(pts)[None], [label], [shape_id], str(path))
            return out

        files = [e[0] for entries in per_split.values() for e in entries]
        return Plan(fmt, root, files, classes, load,
                    tags=[f"up-{self.up_axis}", f"mesh{self.mesh_points}", f"ds{self.data_seed}"])
