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

and ``empty_objects``, what to do with an object whose mask marks every point as background (no object left):

* ``refuse`` (default): preparing the dataset fails with a message naming the file and the objects (``robench3d
  data verify`` lists them as problems), since such an object is almost certainly a corrupt row;
* ``keep``: keep it, background points and all (only with ``mask=keep``); the version gains ``empty-keep``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from robench3d.datasets.base import DatasetOptions
from robench3d.datasets.formats import check_cloud_array, check_labels, check_not_empty, check_same_length, read_h5
from robench3d.datasets.loader import FileDataset, Plan, RawSplit, note, per_source
from robench3d.errors import ConfigError, DataError
from robench3d.norms import Split
from robench3d.params import Param

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
_EMPTY_OBJECTS = ("refuse", "keep")
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
    extra_options: ClassVar[dict[str, Any]] = {"mask": "keep", "split": "main_split", "empty_objects": "refuse"}
    option_specs: ClassVar[dict[str, Param]] = {"mask": Param(str, choices=("keep", "drop")),
                                                "empty_objects": Param(str, choices=("refuse", "keep"))}

    def __init__(self, options: DatasetOptions) -> None:
        if options.variant:  # accept pb_t50_rs as well as PB_T50_RS
            options = dataclasses.replace(options, variant=options.variant.upper())
        super().__init__(options)
        self.mask = str(self.settings["mask"])
        if self.mask not in _MASKS:
            raise ConfigError(f"scanobjectnn option mask must be one of {', '.join(_MASKS)}, got {self.mask!r}")
        self.empty_objects = str(self.settings["empty_objects"])
        if self.empty_objects not in _EMPTY_OBJECTS:
            raise ConfigError(f"scanobjectnn option empty_objects must be one of {', '.join(_EMPTY_OBJECTS)}, got "
                              f"{self.empty_objects!r}; e.g. --opt dataset.empty_objects=keep")
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
            out = {split: RawSplit() for split, _ in files}
            for split, path in files:
                with per_source():
                    out[split] = self._read(path, split)
            return out

        tags = [folder.name, f"mask-{self.mask}"] + (["empty-keep"] if self.empty_objects == "keep" else [])
        return Plan("h5", folder, [f for _, f in files], SCANOBJECTNN_CLASSES, load, tags=tags)

    def _read(self, path: Path, split: Split) -> RawSplit:
        arrays = read_h5(path, ("data", "label"), ("mask",))
        check_not_empty(arrays["data"], source=str(path), fix="download it again or remove it")
        pts = check_cloud_array(arrays["data"], source=str(path))
        labels = check_labels(arrays["label"], len(SCANOBJECTNN_CLASSES), source=str(path))
        check_same_length(pts, labels, source=str(path))
        ids = [f"{split}_{i:05d}" for i in range(len(pts))]
        mask = arrays.get("mask")
        if mask is not None:
            if mask.shape != pts.shape[:2] or mask.dtype.kind not in "iuf":
                raise DataError(f"{path}: 'mask' has shape {mask.shape} and dtype {mask.dtype}; expected numbers "
                                f"of shape {pts.shape[:2]} (one per point): replace the file with the original")
            mask = mask != -1  # -1 marks background; any other value (instance/part id) is the object
            self._check_empty(path, mask)
        raw = RawSplit()
        if self.mask == "keep":
            raw.add(pts, labels, ids, str(path), mask)
            return raw
        if mask is None:
            raise DataError(f"{path} has no 'mask' key, so background points cannot be dropped; use "
                            f"--opt dataset.mask=keep")
        for i, (cloud, fg) in enumerate(zip(pts, mask, strict=True)):
            # Cyclic repetition keeps the first-N order meaningful and adds no new geometry.
            obj = cloud[fg]
            obj = obj[np.arange(max(len(obj), self.num_points)) % len(obj)]
            raw.add(obj[None], [labels[i]], [ids[i]], f"{path} (object {i})")
        return raw

    def _check_empty(self, path: Path, foreground: np.ndarray) -> None:
        """Refuse (or, with ``empty_objects=keep`` under ``mask=keep``, note) objects with no object point."""
        empty = np.flatnonzero(~foreground.any(axis=1))
        if not len(empty):
            return
        which = ", ".join(f"object {i}" for i in empty[:10]) + (f" and {len(empty) - 10} more" if len(empty) > 10
                                                                 else "")
        what = (f"{path}: {len(empty)} of {len(foreground)} object(s) have no object points ({which}): the mask "
                f"marks all {foreground.shape[1]} of their points as background (-1)")
        if self.mask == "keep" and self.empty_objects == "keep":
            note(f"{what}; kept with their background points (empty_objects=keep)")
            return
        if len(empty) == len(foreground):  # every object: more likely a file whose mask means something else
            what += "; as that is every object, this file's mask may not mark objects at all"
        if self.mask == "drop":
            raise DataError(f"{what}, so mask=drop would leave nothing of them. Remove them from the file, or keep "
                            f"every point with --opt dataset.mask=keep --opt dataset.empty_objects=keep")
        raise DataError(f"{what}. Remove them from the file, or keep them as they are with "
                        f"--opt dataset.empty_objects=keep")
