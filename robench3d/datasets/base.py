"""The dataset API: a :class:`Dataset` plugin prepares a :class:`PreparedDataset` of named splits.

A prepared dataset is plain arrays (points float32 (M, N, 3), labels int64 (M,), target labels for targeted
attacks, example ids), cached as an ``.npz`` keyed by the dataset's full configuration. Every split is optional:
test-only data is valid for evaluating a pretrained model.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch

from robench3d.errors import ConfigError, DataError
from robench3d.norms import Split

__all__ = [
    "Batch",
    "Dataset",
    "DatasetOptions",
    "PreparedDataset",
    "SplitData",
    "carve_val",
    "check_points",
    "draw_targets",
]

logger = logging.getLogger(__name__)


class Batch(NamedTuple):
    """One batch. Shape: points (B, N, 3) float32; labels, targets (B,) int64; ids: B strings."""

    points: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor
    ids: list[str]


def check_points(points: np.ndarray, *, source: str) -> np.ndarray:
    """Validate a (M, N, 3) cloud array, returning it as float32; raise :class:`DataError` naming ``source``."""
    arr = np.asarray(points)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise DataError(f"{source}: expected points of shape (M, N, 3), got {arr.shape}; replace the file with "
                        f"the dataset's original (or re-export it)")
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"{source}: expected floating-point coordinates, got dtype {arr.dtype}; replace the "
                        f"file with the dataset's original (or save the points as float32)")
    bad = ~np.isfinite(arr).all(axis=(1, 2))
    if bad.any():
        raise DataError(
            f"{source}: {int(bad.sum())} cloud(s) contain NaN or Inf coordinates (first at index "
            f"{int(np.argmax(bad))}); fix or remove them"
        )
    return arr.astype(np.float32, copy=False)


def draw_targets(labels: np.ndarray, num_classes: int, seed: int) -> np.ndarray:
    """Target labels for targeted attacks: uniform over the other classes, drawn once per (data, seed)."""
    rng = np.random.default_rng([seed, 0x7A6E7])
    offset = rng.integers(1, max(num_classes, 2), size=len(labels))
    return ((labels + offset) % max(num_classes, 1)).astype(np.int64)


@dataclass
class SplitData:
    """The arrays of one split.

    Shape:
        points (M, N, 3) float32; labels (M,) int64; targets (M,) int64; ids (M,) str; meta: per-sample arrays.
    """

    points: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    ids: np.ndarray
    meta: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        m = len(self.points)
        for what, arr in (("labels", self.labels), ("targets", self.targets), ("ids", self.ids)):
            if len(arr) != m:
                raise DataError(f"split has {m} clouds but {len(arr)} {what}; they must have the same length")

    def __len__(self) -> int:
        return len(self.points)

    @property
    def num_points(self) -> int:
        return int(self.points.shape[1])

    def subset(self, index: np.ndarray) -> SplitData:
        """The samples at ``index`` (any numpy index)."""
        return SplitData(self.points[index], self.labels[index], self.targets[index], self.ids[index],
                         {k: v[index] for k, v in self.meta.items()})


def carve_val(train: SplitData, fraction: float, seed: int) -> tuple[SplitData, SplitData]:
    """Split ``fraction`` of each class of ``train`` off as a validation split, deterministically from ``seed``."""
    rng = np.random.default_rng([seed, 0x5A1])
    val_idx: list[int] = []
    for c in np.unique(train.labels):
        members = np.flatnonzero(train.labels == c)
        k = int(round(len(members) * fraction))
        if len(members) > 1:
            k = min(max(k, 1), len(members) - 1)
            val_idx.extend(rng.choice(members, size=k, replace=False).tolist())
    mask = np.zeros(len(train), dtype=bool)
    mask[val_idx] = True
    return train.subset(~mask), train.subset(mask)


@dataclass(frozen=True)
class DatasetOptions:
    """How to load a dataset (CLI: ``--dataset NAME[:VARIANT] --data-root ... --opt dataset.KEY=VALUE``).

    Attributes:
        cache_dir: robench3d cache directory (prepared data lives under ``<cache_dir>/datasets``).
        root: where the user's copy lives; ``None`` lets the dataset use its env var or config.
        variant: dataset-specific variant (``tiny`` for the embedded dataset, ``PB_T50_RS`` for ScanObjectNN).
        num_points: points per cloud; ``None`` means the dataset's default.
        seed: seed for sampling, the val split and target labels.
        format: force an on-disk format instead of detecting it.
        sampling: ``first`` (first N points of the stored order) or ``fps``.
        val_fraction: fraction of each class carved from train for validation.
        up_axis: ``x``, ``y`` or ``z``, for bring-your-own data.
        extra: further dataset-specific options.
    """

    cache_dir: Path
    root: Path | None = None
    variant: str | None = None
    num_points: int | None = None
    seed: int = 0
    format: str | None = None
    sampling: str = "first"
    val_fraction: float = 0.1
    up_axis: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class PreparedDataset:
    """A dataset ready to evaluate: class names, splits and the version string recorded in every row.

    ``notes`` are observations about the source made while preparing it that are not errors (e.g. files a folder
    dataset skipped); ``robench3d data info`` prints them. ``train_version`` is the version of the train and val
    splits when only the test split was filtered (``test_duplicates=drop``): models trained on them are the same.
    """

    name: str
    version: str
    class_names: tuple[str, ...]
    splits: dict[Split, SplitData]
    trained_on: str | None = None
    row_fields: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    train_version: str | None = None

    def for_training(self) -> PreparedDataset:
        """The dataset as models are trained on it: the same arrays under ``train_version`` when that is set, so
        a run that drops test clouds reuses the models (and every cached artifact) trained on the full data."""
        if self.train_version is None or self.train_version == self.version:
            return self
        return replace(self, version=self.train_version, train_version=None)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def has(self, split: Split | str) -> bool:
        s = Split.coerce(split)
        return s in self.splits and len(self.splits[s]) > 0

    def split(self, split: Split | str) -> SplitData:
        """The split's arrays; raises :class:`ConfigError` naming the available splits if it is missing."""
        s = Split.coerce(split)
        if not self.has(s):
            have = ", ".join(str(k) for k in self.splits if len(self.splits[k])) or "none"
            raise ConfigError(f"dataset {self.name!r} has no {s} split (it has: {have})")
        return self.splits[s]

    def batches(
        self,
        split: Split | str,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        limit: int | None = None,
        augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        """Iterate over a split in batches (first ``limit`` samples of the stored order when given)."""
        data = self.split(split)
        n = len(data) if limit is None else min(limit, len(data))
        order = np.arange(n)
        gen = torch.Generator().manual_seed(seed)
        if shuffle:
            order = np.random.default_rng(seed).permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if drop_last and len(idx) < batch_size:
                break
            pts = torch.from_numpy(np.ascontiguousarray(data.points[idx]))
            if augment is not None:
                pts = augment(pts, gen)
            yield Batch(pts, torch.from_numpy(data.labels[idx]), torch.from_numpy(data.targets[idx]),
                        [str(i) for i in data.ids[idx]])

    def save(self, path: Path) -> None:
        """Write as a single ``.npz`` (no pickles; strings as unicode arrays)."""
        from robench3d.cache import atomic_path

        arrays: dict[str, np.ndarray] = {"class_names": np.array(self.class_names, dtype=str)}
        for s, d in self.splits.items():
            arrays.update({f"{s}/points": d.points, f"{s}/labels": d.labels, f"{s}/targets": d.targets,
                           f"{s}/ids": d.ids.astype(str)})
            arrays.update({f"{s}/meta/{k}": v for k, v in d.meta.items()})
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    @classmethod
    def load(cls, path: Path, *, name: str, version: str, **kwargs: Any) -> PreparedDataset:
        """Read a file written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as z:
                files = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise DataError(f"prepared cache {path} is unreadable ({exc}); delete it to rebuild") from exc
        splits: dict[Split, SplitData] = {}
        for s in Split:
            if f"{s}/points" in files:
                meta = {k.split("/", 2)[2]: v for k, v in files.items() if k.startswith(f"{s}/meta/")}
                splits[s] = SplitData(files[f"{s}/points"], files[f"{s}/labels"], files[f"{s}/targets"],
                                      files[f"{s}/ids"], meta)
        return cls(name=name, version=version, class_names=tuple(str(c) for c in files["class_names"]),
                   splits=splits, **kwargs)


class Dataset(ABC):
    """Base class of dataset plugins. Subclasses set ``name`` and implement :meth:`prepare`.

    Class variables:
        name: registry name.
        description: one line for ``robench3d list datasets``.
        variants: valid values of ``DatasetOptions.variant`` (empty: none).
        default_num_points: N when the user gives none (protocol: 1024; ScanObjectNN 2048).
        trained_on: for test-only corruption sets, the dataset models are trained on (``modelnet40``).
        root_env: environment variable that may point to the data root.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    variants: ClassVar[tuple[str, ...]] = ()
    default_variant: ClassVar[str | None] = None
    default_num_points: ClassVar[int] = 1024
    trained_on: ClassVar[str | None] = None
    root_env: ClassVar[str | None] = None

    def __init__(self, options: DatasetOptions) -> None:
        variant = options.variant or self.default_variant
        if self.variants and variant not in self.variants:
            raise ConfigError(
                f"dataset {self.name!r} has no variant {variant!r}; valid variants: {', '.join(self.variants)}"
            )
        self.options = options
        self.variant = variant
        self.num_points = options.num_points or self.default_num_points

    @abstractmethod
    def prepare(self) -> PreparedDataset:
        """Load (or generate), validate, sample and cache the data; return the prepared splits."""
