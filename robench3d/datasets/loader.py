"""The pipeline shared by the real-data loaders: scan, fingerprint, load, sample, normalise, split, cache.

A loader (:class:`FileDataset` subclass) only knows its layouts. :meth:`FileDataset.scan` resolves the root,
detects the format and lists every file it will read, cheaply, as a :class:`Plan`; the files' names, sizes and
modification times key the prepared cache, so editing or replacing any source file rebuilds it. Loading turns the
files into :class:`RawSplit` chunks; the shared pipeline then picks N points per cloud (first N of the stored
order, or farthest-point sampling), normalises each cloud into the unit sphere, draws target labels, carves a
deterministic val split from train and writes one ``.npz`` under ``<cache_dir>/datasets/<name>/``.

Options (``DatasetOptions`` fields, or ``--opt dataset.KEY=VALUE``, which wins): ``sampling`` (first | fps),
``val_fraction``, ``data_seed`` (mesh surface sampling, default 0, so a run's ``--seed`` never changes the test
clouds), ``normalize`` (true, except for ModelNet40-C whose corruptions would be undone), ``mesh_points``
(points sampled per mesh before picking N, default max(2048, N)), ``test_duplicates`` (keep | drop: drop the test
clouds that have a byte-identical copy in train or val, see :mod:`robench3d.datasets.duplicates`).

Every prepared split keeps each cloud's digest (``meta["digest"]``), so ``robench3d data info`` can report the
duplicates of any file dataset. ``test_duplicates=drop`` is applied after the prepared cache (both values share
one cache file), appends ``testdup-drop`` to the dataset version (rows with and without never share a key; a
version without it kept every test cloud) and records what it removed in the provenance and the notes; train and
val keep the ``keep`` version (``PreparedDataset.train_version``), so the models trained on them are reused.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from robench3d.cache import atomic_path, stable_hash
from robench3d.datasets import meshes
from robench3d.datasets.base import (
    Dataset,
    DatasetOptions,
    PreparedDataset,
    SplitData,
    carve_val,
    check_points,
    draw_targets,
)
from robench3d.datasets.duplicates import DIGEST_KEY, TEST_DUPLICATES, cloud_digests, drop_test_copies
from robench3d.datasets.roots import resolve_root
from robench3d.errors import ConfigError, DataError
from robench3d.norms import Split
from robench3d.params import Param, resolve

__all__ = ["LOADER_VERSION", "SAMPLINGS", "FileDataset", "MeshSampler", "Plan", "RawSplit", "collecting", "fingerprint",
           "note", "per_source"]

logger = logging.getLogger(__name__)

#: Bump when preprocessing changes, so that every prepared cache is rebuilt.
LOADER_VERSION = 1
SAMPLINGS = ("first", "fps")
_COMMON = {"sampling": None, "val_fraction": None, "data_seed": 0, "normalize": None, "mesh_points": None,
           "test_duplicates": "keep"}
_COMMON_SPECS = {"sampling": Param(str, choices=SAMPLINGS, nullable=True),
                 "val_fraction": Param(float, minimum=0.0, maximum=0.95, nullable=True),
                 "data_seed": Param(int, minimum=0), "normalize": Param(bool, nullable=True),
                 "mesh_points": Param(int, minimum=1, nullable=True),
                 "test_duplicates": Param(str, choices=TEST_DUPLICATES,
                                          help="drop: evaluate without test clouds that have a copy in train/val")}
#: Where :func:`per_source` and :func:`note` record instead of raising/only logging (set by :func:`collecting`).
_COLLECT: ContextVar[tuple[list[str], list[str]] | None] = ContextVar("robench3d_collect", default=None)


@contextmanager
def collecting(problems: list[str], notes: list[str]) -> Iterator[None]:
    """Within this block, loading goes on past a bad source file: its error is appended to ``problems``.

    ``robench3d data verify`` uses it to report every bad file of a copy at once; ``prepare`` never does, so a
    bad file always stops preparation. :func:`note` observations are appended to ``notes``.
    """
    token = _COLLECT.set((problems, notes))
    try:
        yield
    finally:
        _COLLECT.reset(token)


@contextmanager
def per_source() -> Iterator[None]:
    """Wrap the reading of one source file (or cloud): its :class:`DataError` propagates, or is recorded and
    skipped inside :func:`collecting`, so that the loader carries on with the next file."""
    try:
        yield
    except DataError as exc:
        collect = _COLLECT.get()
        if collect is None:
            raise
        collect[0].append(str(exc))


def note(message: str) -> None:
    """Log an observation about the data that is not an error (a warning); ``verify`` lists it as a note."""
    logger.warning("%s", message)
    collect = _COLLECT.get()
    if collect is not None:
        collect[1].append(message)


@dataclass
class RawSplit:
    """One split as read from disk, before sampling: clouds in chunks that share a point count.

    Shape:
        chunks[i] (m_i, K_i, 3) float; labels (sum m_i,) int64; ids: sum m_i strings; masks[i] (m_i, K_i) bool
        or None (per-point flags that follow the sampling, e.g. ScanObjectNN's foreground).
    """

    chunks: list[np.ndarray] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    masks: list[np.ndarray | None] = field(default_factory=list)

    def add(self, chunk: np.ndarray, labels: Any, ids: list[str], source: str,
            mask: np.ndarray | None = None) -> None:
        """Append a chunk of clouds with their labels, ids, the file they came from and an optional mask."""
        self.chunks.append(chunk)
        self.sources.append(source)
        self.labels.extend(int(x) for x in np.asarray(labels).ravel())
        self.ids.extend(ids)
        self.masks.append(mask)


@dataclass
class Plan:
    """What a loader will read: found by a cheap scan, before any data file is opened.

    Attributes:
        format: the detected (or forced) on-disk format.
        root: the folder the files live in.
        files: every file the load reads (fingerprinted for the cache; hashed by ``robench3d data verify``).
        class_names: label order.
        load: reads the files: ``{split: RawSplit}``.
        tags: short strings that go into the dataset version (variant folder, mask policy, mesh sampling).
        row_fields: extra fields every result row carries (ModelNet40-C: corruption and severity).
        notes: observations of the scan (files skipped, and why), kept in the prepared dataset's ``notes`` for
            ``robench3d data info`` and listed by ``verify``.
        problems: defects that the load works around but ``verify`` reports as problems (a file that cannot be
            read is skipped by ``prepare``, with a warning).
    """

    format: str
    root: Path
    files: list[Path]
    class_names: tuple[str, ...]
    load: Callable[[], dict[Split, RawSplit]]
    tags: list[str] = field(default_factory=list)
    row_fields: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def fingerprint(files: list[Path], root: Path) -> tuple[str, str]:
    """(content id from names and sizes, cache id that also covers modification times).

    The content id goes into the dataset version, so two users with identical copies report the same version;
    the cache id notices a file rewritten in place with the same size.
    """
    stats = []
    for f in sorted(files):
        try:
            st = f.stat()
        except OSError as exc:
            raise DataError(f"{f} cannot be read ({exc.strerror or 'input/output error'}); check that it exists and "
                            f"is readable under the data root") from exc
        rel = f.relative_to(root).as_posix() if f.is_relative_to(root) else str(f)
        stats.append((rel, st.st_size, st.st_mtime_ns))
    return stable_hash([s[:2] for s in stats]), stable_hash(stats)


class MeshSampler:
    """Area-weighted surface sampling of mesh files, with every sampled cloud cached as a ``.npy``.

    Each mesh's draw is seeded from ``data_seed`` and the shape's id (not its path or position in the list), so
    the same shape gives the same cloud wherever the copy lives and whatever else is loaded with it.
    """

    def __init__(self, cache_dir: Path, name: str, n_points: int, data_seed: int, up_axis: str) -> None:
        self.folder = cache_dir / "datasets" / name / "meshes"
        self.n_points, self.data_seed, self.up_axis = n_points, data_seed, up_axis

    def sample(self, path: Path, shape_id: str, reader: Callable[[Path], tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """(n_points, 3) float32 points on the surface of the mesh in ``path``, rotated to y-up."""
        from robench3d.datasets.meshio import sample_mesh, to_y_up

        try:
            st = path.stat()
        except OSError as exc:  # removed or made unreadable since the scan
            raise DataError(f"{path} cannot be read ({exc.strerror or 'input/output error'}); check that it exists "
                            f"and is readable under the data root") from exc
        key = stable_hash([str(path.resolve()), st.st_size, st.st_mtime_ns, self.n_points, self.data_seed,
                           self.up_axis, LOADER_VERSION])
        cached = self.folder / key[:2] / f"{key}.npy"
        if cached.is_file():
            try:
                pts = np.load(cached, allow_pickle=False)
                if pts.shape == (self.n_points, 3):
                    return pts
            except (ValueError, OSError, EOFError):
                pass  # a damaged cache entry is only a cache miss: resample below and overwrite it
            logger.warning("mesh cache entry %s for %s is damaged; resampling", cached, path)
        vertices, faces = reader(path)
        rng = np.random.default_rng([self.data_seed, int(stable_hash(shape_id, 8), 16)])
        pts = sample_mesh(to_y_up(vertices, self.up_axis), faces, self.n_points, rng, source=path)
        with atomic_path(cached) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, pts)
        return pts


class FileDataset(Dataset):
    """Base of the loaders that read a user's copy of a real dataset (see the module docstring)."""

    formats: ClassVar[tuple[str, ...]] = ()
    #: dataset-specific ``extra`` options and their defaults, and their declarations (ranges, choices).
    extra_options: ClassVar[dict[str, Any]] = {}
    option_specs: ClassVar[dict[str, Param]] = {}
    normalize_default: ClassVar[bool] = True

    def __init__(self, options: DatasetOptions) -> None:
        super().__init__(options)
        extra = dict(options.extra)
        # Typed like every component's options: an unknown key or a bad value fails here, naming both.
        self.settings = resolve({**_COMMON, **self.extra_options}, extra, owner=f"dataset {self.name!r}",
                                declared={**_COMMON_SPECS, **self.option_specs})
        self.sampling = str(extra.get("sampling", options.sampling))
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        self.val_fraction = float(extra.get("val_fraction", options.val_fraction))
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        self.data_seed = int(self.settings["data_seed"])
        self.test_duplicates = str(self.settings["test_duplicates"])
        norm = self.settings["normalize"]
        self.normalize = self.normalize_default if norm is None else bool(norm)
        if options.format is not None and options.format not in self.formats:
            raise ConfigError(f"dataset {self.name!r} has no format {options.format!r}; "
                              f"valid formats: {', '.join(self.formats)}")
        if self.num_points < 1:
            raise ConfigError(f"num_points must be positive, got {self.num_points}")
        mp = self.settings["mesh_points"]
        self.mesh_points = max(2048, self.num_points) if mp is None else int(mp)
        if self.mesh_points < self.num_points:
            raise ConfigError(f"mesh_points ({self.mesh_points}) must be at least num_points ({self.num_points})")

    def root(self) -> Path:
        """The data root (option, env var or config file; see :mod:`robench3d.datasets.roots`)."""
        return resolve_root(self.name, self.options.root, self.root_env)

    @abstractmethod
    def detect_format(self, root: Path) -> str:
        """The on-disk format found under ``root`` (one of :attr:`formats`)."""

    @abstractmethod
    def scan(self) -> Plan:
        """Resolve the root and the format and list the files to read, without reading the data."""

    def mesh_sampler(self, up_axis: str) -> MeshSampler:
        """The cached surface sampler for this dataset's mesh files."""
        return MeshSampler(self.options.cache_dir, self.name, self.mesh_points, self.data_seed, up_axis)

    def version_of(self, plan: Plan, content_id: str, *, test_duplicates: str | None = None) -> str:
        """Format, variant, layout tags, N, sampling, ``testdup-drop`` when dropping, a short source fingerprint."""
        parts = [plan.format] + ([self.variant] if self.variant else []) + plan.tags
        parts += [f"n{self.num_points}", self.sampling]
        if self.normalize != self.normalize_default:
            parts.append("norm" if self.normalize else "raw")
        if (test_duplicates or self.test_duplicates) == "drop":
            parts.append("testdup-drop")
        return "/".join(parts + [f"src-{content_id[:8]}"])

    def prepare(self) -> PreparedDataset:
        """Scan, then load the prepared cache for this exact configuration and source, or build and save it."""
        plan = self.scan()
        content_id, cache_id = fingerprint(plan.files, plan.root)
        version = self.version_of(plan, content_id)
        # test_duplicates is applied after the cache, so keep and drop share one file (keep's key is unchanged).
        kept = self.version_of(plan, content_id, test_duplicates="keep")
        key = stable_hash({"loader": LOADER_VERSION, "name": self.name, "version": kept, "source": cache_id,
                           "root": str(plan.root.resolve()), "seed": self.options.seed,
                           "val_fraction": self.val_fraction,
                           "settings": {k: v for k, v in self.settings.items() if k != "test_duplicates"}})
        path = self.options.cache_dir / "datasets" / self.name / f"{key}.npz"
        common = {"trained_on": self.trained_on, "row_fields": dict(plan.row_fields), "notes": list(plan.notes),
                  "provenance": {"root": str(plan.root), "format": plan.format, "files": len(plan.files),
                                 "source_id": content_id, "cache": str(path)}}
        prepared = None
        if path.is_file():
            prepared = PreparedDataset.load(path, name=self.name, version=version, **common)
            if all(DIGEST_KEY in d.meta for d in prepared.splits.values()):
                logger.debug("dataset %s: prepared cache hit %s", self.name, path)
            else:  # written before clouds carried digests: rebuild once so duplicates can be reported
                logger.info("dataset %s: prepared cache %s has no cloud digests; rebuilding it", self.name, path)
                prepared = None
        if prepared is None:
            t0 = time.perf_counter()
            prepared = PreparedDataset(self.name, version, plan.class_names, self.build(plan), **common)
            prepared.save(path)
            logger.info("prepared %s %s in %.1fs -> %s", self.name, version, time.perf_counter() - t0, path)
        return self._apply_test_duplicates(prepared, kept)

    def _apply_test_duplicates(self, prepared: PreparedDataset, kept: str) -> PreparedDataset:
        """Record the ``test_duplicates`` policy in the provenance; with ``drop``, remove the leaked test clouds
        (train and val keep the version ``kept``: models trained on them are shared with ``keep``)."""
        if self.test_duplicates != "drop":
            prepared.provenance["test_duplicates"] = "keep"
            return prepared
        prepared.train_version = kept
        prepared.splits, dropped = drop_test_copies(prepared.splits)
        shown = ", ".join(dropped[:5]) + (", ..." if len(dropped) > 5 else "")
        message = (f"test_duplicates=drop: {len(dropped)} test cloud(s) with a byte-identical copy in train/val "
                   f"left out of test" + (f" ({shown})" if dropped else ""))
        prepared.provenance["test_duplicates"] = f"drop ({len(dropped)} test clouds removed)"
        prepared.notes.append(message)
        logger.debug("dataset %s: %s", self.name, message)
        return prepared

    def build(self, plan: Plan) -> dict[Split, SplitData]:
        """Read the plan's files and return the finished splits (val carved from train); no caching."""
        splits = {}
        for s, raw in plan.load().items():
            data = self._finish(s, raw, plan) if len(raw.ids) else None
            if data is not None:
                splits[s] = data
        if not splits:
            raise DataError(f"{plan.root}: no shapes could be read for dataset {self.name!r} ({plan.format} "
                            f"format); check the data root (and the problems reported for its files)")
        if Split.TRAIN in splits and Split.VAL not in splits and self.val_fraction > 0:
            splits[Split.TRAIN], splits[Split.VAL] = carve_val(splits[Split.TRAIN], self.val_fraction,
                                                                 self.options.seed)
        return splits

    def _finish(self, split: Split, raw: RawSplit, plan: Plan) -> SplitData | None:
        """Sample N points, normalise, validate and attach targets (``None`` if every chunk was rejected)."""
        pts, masks, kept, digests = [], [], [], []
        start = 0
        for chunk, source, mask in zip(raw.chunks, raw.sources, raw.masks, strict=True):
            rows = np.arange(start, start + len(chunk))
            start += len(chunk)
            with per_source():
                picked, idx = self._sample(chunk, source)
                digests.append(cloud_digests(chunk))  # of every stored point, before picking and normalising
                pts.append(picked)
                masks.append(None if mask is None else np.take_along_axis(mask, idx, axis=1))
                kept.append(rows)
        if not pts:
            return None
        keep = np.concatenate(kept)
        labels = np.asarray(raw.labels, dtype=np.int64)[keep]
        counts = np.bincount(labels, minlength=len(plan.class_names))
        empty = [plan.class_names[i] for i in np.flatnonzero(counts == 0)]
        if empty:
            logger.warning("dataset %s, %s split: %d of %d classes have no shapes (counted as 0): %s", self.name,
                           split, len(empty), len(plan.class_names), ", ".join(empty))
        meta = {"foreground": np.concatenate(masks)} if all(m is not None for m in masks) else {}
        meta[DIGEST_KEY] = np.concatenate(digests)
        targets = draw_targets(labels, len(plan.class_names), self.options.seed)
        return SplitData(np.concatenate(pts), labels, targets, np.asarray(raw.ids, dtype=str)[keep], meta)

    def _sample(self, chunk: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
        """(the N points kept of each cloud of a (m, K, 3) chunk, normalised; their (m, N) indices)."""
        # Validate every stored point, not only the N kept: a NaN anywhere means a corrupt file.
        chunk = check_points(chunk, source=source)
        idx = self._pick(chunk, source)
        picked = np.take_along_axis(chunk, idx[..., None], axis=1)
        if self.normalize:
            try:
                picked = meshes.normalize_unit_sphere(picked)
            except ValueError as exc:  # NaN/Inf were rejected above, so a cloud has all its points in one place
                radius = np.linalg.norm(picked - picked.mean(axis=1, keepdims=True), axis=-1).max(axis=1)
                raise DataError(f"{source}: cloud {int(np.argmin(radius))} has all its points at one position (zero "
                                f"extent), so it cannot be scaled into the unit sphere; remove it or replace the file "
                                f"(or pass --opt dataset.normalize=false)") from exc
        return picked, idx

    def _pick(self, chunk: np.ndarray, source: str) -> np.ndarray:
        """(m, N) indices of the points kept from each cloud of a (m, K, 3) chunk."""
        m, k = chunk.shape[:2]
        n = self.num_points
        if k < n:
            raise DataError(f"{source}: clouds have {k} points, fewer than the {n} requested; pass "
                            f"--num-points {k} (or fewer)")
        if self.sampling == "first":
            return np.broadcast_to(np.arange(n), (m, n))
        return np.stack([meshes.farthest_point_sample(c, n) for c in chunk])
