"""``modelnet40_c``: ModelNet40-C (Sun et al. 2022), corrupted copies of the ModelNet40 test set.

Test-only: models are trained on ``modelnet40`` (the ``trained_on`` class variable tells the evaluation layer).
The variant names one file, ``<corruption>_<severity>`` -> ``data_<corruption>_<severity>.npy`` (e.g.
``modelnet40_c:gaussian_1``), or ``original`` -> ``data_original.npy``; ``label.npy`` (M, 1) uint8 serves them
all. Every result row carries ``corruption`` and ``severity`` (0 for ``original``).

The point count differs by corruption (e.g. ``cutout_5`` has 724, ``upsampling_5`` 2 048), so N defaults to the
file's own; ``--num-points`` may only ask for fewer. The clouds are not re-normalised by default: the corruptions
(shear, background points, ...) are defined relative to the clean unit-sphere shape, and re-centring or scaling
would partly undo them (``--opt dataset.normalize=true`` does it anyway).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

from robench3d.datasets.base import DatasetOptions
from robench3d.datasets.formats import (
    check_cloud_array,
    check_labels,
    check_not_empty,
    check_same_length,
    read_npy,
    read_npy_shape,
)
from robench3d.datasets.loader import FileDataset, Plan, RawSplit, per_source
from robench3d.datasets.modelnet_formats import MODELNET40_CLASSES
from robench3d.errors import ConfigError, DataError
from robench3d.norms import Split

__all__ = ["CORRUPTIONS", "ModelNet40CDataset", "detect_format", "parse_variant"]

logger = logging.getLogger(__name__)

CORRUPTIONS: tuple[str, ...] = (
    "uniform", "gaussian", "background", "impulse", "upsampling", "distortion_rbf", "distortion_rbf_inv",
    "density", "density_inc", "shear", "rotation", "cutout", "distortion", "occlusion", "lidar",
)
SEVERITIES = (1, 2, 3, 4, 5)
_VARIANTS = tuple(f"{c}_{s}" for c in CORRUPTIONS for s in SEVERITIES) + ("original",)


def parse_variant(variant: str) -> tuple[str, int]:
    """``"distortion_rbf_inv_3"`` -> ``("distortion_rbf_inv", 3)``; ``"original"`` -> ``("original", 0)``."""
    if variant == "original":
        return "original", 0
    corruption, _, severity = variant.rpartition("_")  # corruption names contain "_": split the last one only
    return corruption, int(severity)


def detect_format(root: Path) -> str:
    """``"npy"`` if ``root`` (or its ``modelnet40_c/`` or ``data/modelnet40_c/``) holds ``label.npy``."""
    return "npy" if _folder(root) is not None else _missing(root)


def _folder(root: Path) -> Path | None:
    for d in (root, root / "modelnet40_c", root / "data" / "modelnet40_c"):
        if (d / "label.npy").is_file():
            return d
    return None


def _missing(root: Path) -> str:
    raise DataError(f"{root} holds no ModelNet40-C files: expected label.npy and data_<corruption>_<severity>.npy "
                    f"in it or in its modelnet40_c/ subfolder")


class ModelNet40CDataset(FileDataset):
    """ModelNet40-C corruption test sets (15 corruptions x 5 severities); test split only."""

    name: ClassVar[str] = "modelnet40_c"
    description: ClassVar[str] = "ModelNet40-C corruptions (test only; variant <corruption>_<severity>)"
    variants: ClassVar[tuple[str, ...]] = _VARIANTS
    trained_on: ClassVar[str | None] = "modelnet40"
    root_env: ClassVar[str | None] = "ROBENCH3D_MODELNET40_C_ROOT"
    formats: ClassVar[tuple[str, ...]] = ("npy",)
    normalize_default: ClassVar[bool] = False

    def __init__(self, options: DatasetOptions) -> None:
        if not options.variant:
            raise ConfigError(f"dataset 'modelnet40_c' needs a variant <corruption>_<severity>, e.g. "
                              f"--dataset modelnet40_c:gaussian_1; corruptions: {', '.join(CORRUPTIONS)}; "
                              f"severities 1-5 (or 'original')")
        super().__init__(options)
        self.num_points = options.num_points or 0  # 0: the file's own N, known once the file is opened
        self.mesh_points = 0

    def detect_format(self, root: Path) -> str:
        return detect_format(root)

    def scan(self) -> Plan:
        root = self.root()
        folder = _folder(root)
        if folder is None:
            _missing(root)
        assert folder is not None and self.variant is not None
        data_file, label_file = folder / f"data_{self.variant}.npy", folder / "label.npy"
        if not data_file.is_file():
            have = sorted(p.stem.removeprefix("data_") for p in folder.glob("data_*.npy"))
            raise DataError(f"{data_file} does not exist; variants present in {folder}: {', '.join(have) or 'none'}")
        # N must be in the version before loading: read it from the .npy header, which costs no data I/O.
        shape = read_npy_shape(data_file)
        if len(shape) != 3 or shape[2] != 3:
            raise DataError(f"{data_file}: expected points of shape (M, N, 3), got {shape}; download it again")
        native = shape[1]
        if self.options.num_points and self.options.num_points > native:
            raise ConfigError(f"{data_file} has {native} points per cloud; --num-points {self.options.num_points} "
                              f"asks for more (use {native} or fewer)")
        self.num_points = self.options.num_points or native

        def load() -> dict[Split, RawSplit]:
            raw = RawSplit()
            with per_source():
                data = read_npy(data_file)
                check_not_empty(data, source=str(data_file), fix="download it again")
                pts = check_cloud_array(data, source=str(data_file))
                labels = check_labels(read_npy(label_file), len(MODELNET40_CLASSES), source=str(label_file))
                check_same_length(pts, labels, source=f"{data_file} and {label_file}")
                raw.add(pts, labels, [f"test_{i:04d}" for i in range(len(pts))], str(data_file))  # h5 test row order
            return {Split.TEST: raw}

        corruption, severity = parse_variant(self.variant)
        return Plan("npy", folder, [data_file, label_file], MODELNET40_CLASSES, load,
                    row_fields={"corruption": corruption, "severity": severity})
