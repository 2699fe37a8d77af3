"""Procedural generator of the embedded ``shapes`` dataset: everyday objects built from parametric meshes.

Every instance is a triangle mesh composed of primitives (boxes, rods, surfaces of revolution, tori) with random
proportions, sampled by surface area like a real mesh, perturbed (Gaussian noise, random rotation about the up
axis, sometimes a missing cap or slab of surface) and normalised into the unit sphere. The classes come in
families that share parts (vessels; furniture with legs and slabs; cones, lamps and tents), and their proportion
ranges meet at the tails, so the task is hard for geometric reasons only: every label is exact.

Output is a pure function of ``(seed, size, num_points)`` and :data:`GENERATOR_VERSION`; each sample has its own
generator seeded from (seed, split name, class name, index), so adding a split or class leaves the others intact.
"""

from __future__ import annotations

import logging
import time
import zlib

import numpy as np

from robench3d.datasets.meshes import normalize_unit_sphere, rotate_about_up, sample_surface
from robench3d.datasets.shape_classes import CLASS_NAMES, make_mesh

__all__ = ["CLASS_NAMES", "GENERATOR_VERSION", "SIZES", "generate", "make_mesh"]

logger = logging.getLogger(__name__)

#: Bump whenever the generated output changes for any (seed, size, num_points): it keys the dataset cache.
GENERATOR_VERSION = "shapes-2"

#: Per-class sample counts per split, for each size variant.
SIZES: dict[str, dict[str, int]] = {
    "default": {"train": 100, "val": 20, "test": 30},
    "tiny": {"train": 8, "val": 4, "test": 4},
}

#: Probability that an instance loses part of its surface, and the largest fraction it can lose.
_PARTIAL_PROB, _PARTIAL_MAX = 0.6, 0.3
#: Range of the Gaussian noise sigma, relative to the cloud's radius.
_NOISE = (0.005, 0.01)


def _drop_part(points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Keep ``n`` of ``points`` after removing a cap (beyond a plane) or a slab (between two planes)."""
    direction = rng.normal(size=3)
    proj = points @ (direction / np.linalg.norm(direction))
    frac = rng.uniform(0.05, _PARTIAL_MAX)
    # Quantile cuts remove an exact fraction, so enough points always survive the oversampling.
    if rng.random() < 0.5:
        lo, hi = np.quantile(proj, [1.0 - frac, 1.0])
        keep = proj < lo
    else:
        start = rng.uniform(0.1, 0.9 - frac)
        lo, hi = np.quantile(proj, [start, start + frac])
        keep = (proj < lo) | (proj > hi)
    # At most frac (M - 1) + 1 points are removed, and the caller oversamples so that (1 - frac)(M - 1) >= n.
    return points[keep][:n]


def _sample_cloud(class_index: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """One normalised (n, 3) float32 cloud of class ``class_index``."""
    vertices, faces = make_mesh(class_index, rng)
    if rng.random() < _PARTIAL_PROB:
        pts = sample_surface(vertices, faces, int(np.ceil(n / (1.0 - _PARTIAL_MAX))) + 2, rng).astype(np.float64)
        pts = _drop_part(pts, n, rng)
    else:
        pts = sample_surface(vertices, faces, n, rng).astype(np.float64)
    centred = pts - pts.mean(axis=0)
    radius = np.linalg.norm(centred, axis=1).max()
    pts = centred + rng.normal(scale=rng.uniform(*_NOISE) * radius, size=pts.shape)
    pts = rotate_about_up(pts, rng.uniform(0.0, 2.0 * np.pi))
    return normalize_unit_sphere(pts).astype(np.float32)


def _code(name: str) -> int:
    """A stable integer for a name (seed material that does not depend on list positions)."""
    return zlib.crc32(name.encode("utf-8"))


def generate(seed: int, size: str = "default", num_points: int = 1024) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Generate every split of the dataset.

    Args:
        seed: non-negative data seed.
        size: a key of :data:`SIZES`.
        num_points: points per cloud, at least 2.

    Returns:
        ``{split: (points float32 (M, num_points, 3), labels int64 (M,))}``, ordered by class then index.
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; valid: {sorted(SIZES)}")
    # One point cannot be normalised into the unit sphere (it has no extent), hence num_points >= 2.
    if seed < 0 or num_points < 2:
        raise ValueError(f"seed must be >= 0 and num_points >= 2, got seed={seed}, num_points={num_points}")
    t0 = time.perf_counter()
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, count in SIZES[size].items():
        clouds, labels = [], []
        for c, name in enumerate(CLASS_NAMES):
            for i in range(count):
                rng = np.random.default_rng(np.random.SeedSequence([seed, _code(split), _code(name), i]))
                clouds.append(_sample_cloud(c, num_points, rng))
                labels.append(c)
        out[split] = (np.stack(clouds), np.asarray(labels, dtype=np.int64))
    logger.debug("generated %s/%s n=%d in %.2fs", GENERATOR_VERSION, size, num_points, time.perf_counter() - t0)
    return out
