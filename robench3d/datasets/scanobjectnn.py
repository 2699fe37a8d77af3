"""``scanobjectnn``: the ScanObjectNN real-scan benchmark (15 classes) from the official h5 files.

The variant (``--dataset scanobjectnn:PB_T50_RS``, the default and the most used) picks the file pair:

========== =================== ============================================
variant    folder              files (``training_*`` and ``test_*``)
========== =================== ============================================
OBJ_BG     ``main_split``      ``objectdataset.h5``
OBJ_ONLY   ``main_split_nobg`` ``objectdataset.h5``
PB_T25     ``main_split``      ``objectdataset_augmented25_norot.h5``
PB_T25_R   ``main_split``      ``objectdataset_augmented25rot.h5``
PB_T50_R   ``main_split``      ``objectdataset_augmentedrot.h5``
PB_T50_RS  ``main_split``      ``objectdataset_augmentedrot_scale75.h5``
========== =================== ============================================

The root may be ``h5_files/``, its parent, or the split folder itself. Options: ``split`` (``main_split``, the
paper's, or ``split1`` ... ``split4``) and ``mask``, what to do with the background points that the ``mask`` key
marks with -1:

* ``keep`` (default, as in the papers): clouds keep all points; the per-point foreground flag is stored with the
  prepared data as ``meta["foreground"]`` (M, N) bool, following the sampling;
* ``drop``: only object points are kept; a cloud with fewer than N object points repeats them cyclically (as the
  protocol pads clouds after point removal), and a cloud with none is an error.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from robench3d.datasets.base import DatasetOptions
from robench3d.datasets.formats import check_cloud_array, check_labels, check_same_length, read_h5
from robench3d.datasets.loader import FileDataset, Plan, RawSplit
from robench3d.errors import ConfigError, DataError
from robench3d.norms import Split

__all__ = ["SCANOBJECTNN_CLASSES", "SCANOBJECTNN_VARIANTS", "ScanObjectNNDataset", "detect_format"]

logger = logging.getLogger(__name__)

#: Official label order (not alphabetical).
SCANOBJECTNN_CLASSES: tuple[str, ...] = (
    "bag", "bin", "box", "cabinet", "chair", "desk", "display", "door", "shelf", "table", "bed", "pillow", "sink",
    "sofa", "toilet",
)
#: variant -> (folder suffix, file suffix after ``training_`` / ``test_``).
SCANOBJECTNN_VARIANTS: dict[str, tuple[str, str]] = {
    "OBJ_BG": ("", "objectdataset.h5"),
    "OBJ_ONLY": ("_nobg", "objectdataset.h5"),
    "PB_T25": ("", "objectdataset_augmented25_norot.h5"),
    "PB_T25_R": ("", "objectdataset_augmented25rot.h5"),
    "PB_T50_R": ("", "objectdataset_augmentedrot.h5"),
    "PB_T50_RS": ("", "objectdataset_augmentedrot_scale75.h5"),
}
_SPLIT_FOLDERS = ("main_split", "split1", "split2", "split3", "split4")
_MASKS = ("keep", "drop")
_PREFIXES = ((Split.TRAIN, "training_"), (Split.TEST, "test_"))


def detect_format(root: Path) -> str:
    """``"h5"`` if ScanObjectNN h5 files lie in ``root`` or up to two folders below it."""
    for pattern in ("*objectdataset*.h5", "*/*objectdataset*.h5", "*/*/*objectdataset*.h5"):
        if any(root.glob(pattern)):
            return "h5"
    raise DataError(f"{root} holds no ScanObjectNN h5 files (*objectdataset*.h5); expected h5_files/main_split/"
                    f"training_objectdataset_augmentedrot_scale75.h5 and the matching test_ file")


class ScanObjectNNDataset(FileDataset):
    """ScanObjectNN, every h5 variant; 2 048 points per object."""

    name: ClassVar[str] = "scanobjectnn"
    description: ClassVar[str] = "ScanObjectNN real scans from your h5 copy (OBJ_BG, OBJ_ONLY, PB_T25..PB_T50_RS)"
    variants: ClassVar[tuple[str, ...]] = tuple(SCANOBJECTNN_VARIANTS)
    default_variant: ClassVar[str | None] = "PB_T50_RS"
    default_num_points: ClassVar[int] = 2048
    root_env: ClassVar[str | None] = "ROBENCH3D_SCANOBJECTNN_ROOT"
    formats: ClassVar[tuple[str, ...]] = ("h5",)
    extra_options: ClassVar[dict[str, Any]] = {"mask": "keep", "split": "main_split"}

    def __init__(self, options: DatasetOptions) -> None:
        if options.variant:  # accept pb_t50_rs as well as PB_T50_RS
            options = dataclasses.replace(options, variant=options.variant.upper())
        super().__init__(options)
        self.mask = str(self.settings["mask"])
        if self.mask not in _MASKS:
            raise ConfigError(f"scanobjectnn option mask must be one of {', '.join(_MASKS)}, got {self.mask!r}")
        self.split_folder = str(self.settings["split"])
        if self.split_folder not in _SPLIT_FOLDERS:
            raise ConfigError(f"scanobjectnn option split must be one of {', '.join(_SPLIT_FOLDERS)}, "
                              f"got {self.split_folder!r}")

    def detect_format(self, root: Path) -> str:
        return detect_format(root)

    def _folder(self, root: Path) -> tuple[Path, str]:
        """The folder holding this variant's files, and their common suffix."""
        assert self.variant is not None
        nobg, suffix = SCANOBJECTNN_VARIANTS[self.variant]
        want = self.split_folder + nobg
        for d in (root / want, root / "h5_files" / want, root):
            if any((d / (p + suffix)).is_file() for _, p in _PREFIXES):
                if d == root and root.name != want:
                    logger.warning("using %s for ScanObjectNN %s although it is not named %s", root, self.variant,
                                   want)
                return d, suffix
        found = sorted(p.relative_to(root).as_posix() for p in root.glob("**/*objectdataset*.h5"))[:8]
        raise DataError(f"no training_{suffix} or test_{suffix} for variant {self.variant} in {root / want}, "
                        f"{root / 'h5_files' / want} or {root}; ScanObjectNN files found: {found or 'none'}")

    def scan(self) -> Plan:
        root = self.root()
        if self.options.format is None:
            self.detect_format(root)
        folder, suffix = self._folder(root)
        files = [(s, folder / (p + suffix)) for s, p in _PREFIXES if (folder / (p + suffix)).is_file()]

        def load() -> dict[Split, RawSplit]:
            return {split: self._read(path, split) for split, path in files}

        return Plan("h5", folder, [f for _, f in files], SCANOBJECTNN_CLASSES, load,
                    tags=[folder.name, f"mask-{self.mask}"])

    def _read(self, path: Path, split: Split) -> RawSplit:
        arrays = read_h5(path, ("data", "label"), ("mask",))
        pts = check_cloud_array(arrays["data"], source=str(path))
        labels = check_labels(arrays["label"], len(SCANOBJECTNN_CLASSES), source=str(path))
        check_same_length(pts, labels, source=str(path))
        ids = [f"{split}_{i:05d}" for i in range(len(pts))]
        mask = arrays.get("mask")
        if mask is not None:
            if mask.shape != pts.shape[:2] or mask.dtype.kind not in "iuf":
                raise DataError(f"{path}: 'mask' has shape {mask.shape} and dtype {mask.dtype}; expected numbers "
                                f"of shape {pts.shape[:2]} (one per point)")
            mask = mask != -1  # -1 marks background; any other value (instance/part id) is the object
        raw = RawSplit()
        if self.mask == "keep":
            raw.add(pts, labels, ids, str(path), mask)
            return raw
        if mask is None:
            raise DataError(f"{path} has no 'mask' key, so background points cannot be dropped; use "
                            f"--opt dataset.mask=keep")
        for i, (cloud, fg) in enumerate(zip(pts, mask, strict=True)):
            obj = cloud[fg]
            if len(obj) == 0:
                raise DataError(f"{path}: cloud {i} has no object points (its mask is all -1)")
            # Cyclic repetition keeps the first-N order meaningful and adds no new geometry.
            obj = obj[np.arange(max(len(obj), self.num_points)) % len(obj)]
            raw.add(obj[None], [labels[i]], [ids[i]], f"{path} (cloud {i})")
        return raw
