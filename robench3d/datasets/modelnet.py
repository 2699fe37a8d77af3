"""``modelnet40`` and ``modelnet10``: the ModelNet benchmarks from a user's copy, in any of four layouts.

Formats (``--format`` forces one; otherwise detected from the layout, in this order of preference):

* ``h5``: PointNet's ``modelnet40_ply_hdf5_2048/`` (``ply_data_*.h5``, ``shape_names.txt``, file lists);
* ``normal_resampled``: PointNet++'s ``modelnet40_normal_resampled/`` (one ``x,y,z,nx,ny,nz`` text per shape);
* ``off``: the original meshes ``ModelNet40/<class>/{train,test}/*.off`` (or ``ModelNet10/``), z-up CAD units,
  rotated to y-up by (x, y, z) -> (-x, z, y) and sampled by surface area (sampled clouds are cached);
* ``aligned_ply``: the orientation-aligned clouds (ORION's azimuth alignment, as AdvPC ships them in
  ``aligned_ModelNet40_pc/``): ``<class>/{train,test}/<class>_<NNNN>.ply``, one binary PLY point cloud per shape
  (``element vertex`` x y z float, then a ``camera`` element, which is skipped), z-up, rotated to y-up like ``off``.
  It is a different variant from the h5 release (many shapes are turned about the up axis), so its dataset version
  starts with ``aligned_ply/`` and its rows never share a key with ``h5`` rows.

The ``off`` and ``aligned_ply`` trees must hold only the canonical class folders (a misspelt one is an error that
names it, with the likely fix); a missing class folder is a partial copy (its class has no shapes, with a note).
Every format keeps the official shape ids (``airplane_0627``) as example ids, and ``robench3d data verify``
compares the per-class counts with :data:`OFFICIAL_COUNTS`. ModelNet40 holds byte-identical clouds across classes
and across train/test; ``data info``/``verify`` report them and ``--opt dataset.test_duplicates=drop`` evaluates
without the test clouds that have a copy in train (see :mod:`robench3d.datasets.duplicates`).

The root may be the format's folder itself or a folder holding it (e.g. PointNet's ``data/``). ModelNet10 is
read from its own files where they exist (``modelnet10_*.txt``, ``ModelNet10/``) and otherwise as the 10-class
subset of the ModelNet40 files, labels renumbered in ModelNet10's (alphabetical) order.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

from robench3d.datasets.loader import FileDataset, Plan
from robench3d.datasets.modelnet_formats import (
    MODELNET40_CLASSES,
    scan_aligned_ply,
    scan_h5,
    scan_off,
    scan_resampled,
)
from robench3d.errors import ConfigError, DataError

__all__ = [
    "MODELNET10_CLASSES",
    "MODELNET40_CLASSES",
    "MODELNET_FORMATS",
    "OFFICIAL_COUNTS",
    "ModelNet10Dataset",
    "ModelNet40Dataset",
    "detect_format",
    "locate",
]

logger = logging.getLogger(__name__)

MODELNET10_CLASSES: tuple[str, ...] = (
    "bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand", "sofa", "table", "toilet",
)
#: Official (train, test) shape counts per class; ``robench3d data verify`` compares a copy against them.
OFFICIAL_COUNTS: dict[str, tuple[int, int]] = dict(zip(MODELNET40_CLASSES, [
    (626, 100), (106, 50), (515, 100), (173, 20), (572, 100), (335, 100), (64, 20), (197, 100), (889, 100),
    (167, 20), (79, 20), (138, 20), (200, 86), (109, 20), (200, 86), (149, 20), (171, 100), (155, 100),
    (145, 20), (124, 20), (149, 20), (284, 100), (465, 100), (200, 86), (88, 20), (231, 100), (240, 100),
    (104, 20), (115, 100), (128, 20), (680, 100), (124, 20), (90, 20), (392, 100), (163, 20), (344, 100),
    (267, 100), (475, 100), (87, 20), (103, 20),
], strict=True))
MODELNET_FORMATS = ("h5", "normal_resampled", "off", "aligned_ply")
_EXPECTED = ("modelnet40_ply_hdf5_2048/ (ply_data_*.h5, shape_names.txt), modelnet40_normal_resampled/ "
             "(modelnet40_shape_names.txt, <class>/<class>_NNNN.txt), ModelNet40/<class>/{train,test}/*.off or the "
             "aligned clouds <class>/{train,test}/<class>_NNNN.ply")
#: Folder names the aligned PLY clouds are known under (robench3d's copy, AdvPC's repository).
_ALIGNED_CHILDREN = ("modelnet40_aligned_1024", "aligned_ModelNet40_pc", "ModelNet40")


def _looks_like(fmt: str, d: Path) -> bool:
    """Whether folder ``d`` itself holds the layout ``fmt``."""
    if fmt == "h5":
        return any(d.glob("ply_data_*.h5")) or any((d / f"{s}_files.txt").is_file() for s in ("train", "test"))
    if fmt == "normal_resampled":
        return any((d / n).is_file() for n in ("modelnet40_shape_names.txt", "modelnet10_shape_names.txt",
                                               "modelnet40_train.txt", "modelnet40_test.txt"))
    ext = "off" if fmt == "off" else "ply"
    return any(d.glob(f"*/train/*.{ext}")) or any(d.glob(f"*/test/*.{ext}"))


def _children(fmt: str, family: str) -> tuple[str, ...]:
    if fmt == "h5":
        return ("modelnet40_ply_hdf5_2048",)
    if fmt == "normal_resampled":
        return ("modelnet40_normal_resampled",)
    if fmt == "aligned_ply":
        return _ALIGNED_CHILDREN
    return ("ModelNet10", "ModelNet40") if family == "modelnet10" else ("ModelNet40", "ModelNet10")


def locate(root: Path, family: str = "modelnet40", fmt: str | None = None) -> tuple[str, Path]:
    """(format, folder holding it) under ``root``: the folder itself or a known child; ``fmt`` forces a format.

    Raises:
        ConfigError: ``fmt`` is not a ModelNet format.
        DataError: no (or not the forced) layout is found; the message lists what was expected.
    """
    if fmt is not None and fmt not in MODELNET_FORMATS:
        raise ConfigError(f"unknown ModelNet format {fmt!r}; valid formats: {', '.join(MODELNET_FORMATS)}")
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist or is not a folder")
    for f in (fmt,) if fmt else MODELNET_FORMATS:
        for d in (root, *(root / c for c in _children(f, family))):
            if d.is_dir() and _looks_like(f, d):
                logger.debug("%s: %s layout in %s", family, f, d)
                return f, d
    wanted = f"{fmt!r} layout" if fmt else "ModelNet layout"
    raise DataError(f"{root} holds no {wanted}; expected {_EXPECTED} (in the root or as its subfolder)")


def detect_format(root: Path, family: str = "modelnet40") -> str:
    """The ModelNet format found under ``root`` (see :func:`locate`)."""
    return locate(root, family)[0]


class _ModelNet(FileDataset):
    formats: ClassVar[tuple[str, ...]] = MODELNET_FORMATS
    classes: ClassVar[tuple[str, ...]] = MODELNET40_CLASSES

    def detect_format(self, root: Path) -> str:
        return detect_format(root, self.name)

    def scan(self) -> Plan:
        fmt, folder = locate(self.root(), self.name, self.options.format)
        if fmt == "h5":
            return scan_h5(folder, self.classes)
        if fmt == "normal_resampled":
            return scan_resampled(folder, self.classes, self.name)
        if fmt == "aligned_ply":
            return scan_aligned_ply(folder, self.classes, self.options.up_axis or "z")
        return scan_off(folder, self.classes, self.mesh_sampler(self.options.up_axis or "z"))


class ModelNet40Dataset(_ModelNet):
    """ModelNet40 (40 classes, 9 843 / 2 468 official shapes; the h5 release holds 9 840 train)."""

    name: ClassVar[str] = "modelnet40"
    description: ClassVar[str] = ("ModelNet40 from your copy: PointNet h5, PointNet++ resampled txt, OFF meshes or "
                                  "the aligned PLY clouds")
    root_env: ClassVar[str | None] = "ROBENCH3D_MODELNET40_ROOT"
    classes: ClassVar[tuple[str, ...]] = MODELNET40_CLASSES


class ModelNet10Dataset(_ModelNet):
    """ModelNet10 (10 classes, 3 991 / 908 shapes), from ModelNet10 files or the ModelNet40 ones."""

    name: ClassVar[str] = "modelnet10"
    description: ClassVar[str] = "ModelNet10 from your copy (its own files, or the 10-class subset of ModelNet40)"
    root_env: ClassVar[str | None] = "ROBENCH3D_MODELNET10_ROOT"
    classes: ClassVar[tuple[str, ...]] = MODELNET10_CLASSES
