"""Tests of the procedural ``shapes`` generator and the shared mesh utilities."""

from __future__ import annotations

import numpy as np
import pytest

from robench3d.datasets import shapes
from robench3d.datasets.confusion import confusion_pairs
from robench3d.datasets.meshes import (
    box,
    farthest_point_sample,
    merge_meshes,
    normalize_unit_sphere,
    revolve,
    rotate_about_up,
    sample_surface,
    torus,
    triangle_areas,
)

N = 64


@pytest.fixture(scope="module")
def tiny() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return shapes.generate(0, "tiny", N)


def test_same_seed_is_identical(tiny: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    again = shapes.generate(0, "tiny", N)
    for split, (points, labels) in tiny.items():
        np.testing.assert_array_equal(points, again[split][0])
        np.testing.assert_array_equal(labels, again[split][1])


def test_different_seed_differs(tiny: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    other = shapes.generate(1, "tiny", N)
    for split, (points, _) in tiny.items():
        assert not np.allclose(points, other[split][0])


def test_splits_are_distinct(tiny: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    assert not np.allclose(tiny["val"][0][:4], tiny["test"][0][:4])


def test_shapes_dtypes_and_counts(tiny: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    assert set(tiny) == {"train", "val", "test"}
    num_classes = len(shapes.CLASS_NAMES)
    assert num_classes >= 12 and len(set(shapes.CLASS_NAMES)) == num_classes
    for split, (points, labels) in tiny.items():
        per_class = shapes.SIZES["tiny"][split]
        assert points.shape == (num_classes * per_class, N, 3) and points.dtype == np.float32
        assert labels.shape == (num_classes * per_class,) and labels.dtype == np.int64
        np.testing.assert_array_equal(np.bincount(labels, minlength=num_classes), per_class)
        # Ordered by class, then index.
        assert np.all(np.diff(labels) >= 0)


def test_clouds_are_normalised_and_finite(tiny: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    for points, _ in tiny.values():
        assert np.isfinite(points).all()
        np.testing.assert_allclose(np.linalg.norm(points, axis=-1).max(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(points.mean(axis=1), 0.0, atol=1e-5)


def test_num_points_is_respected() -> None:
    points, _ = shapes.generate(3, "tiny", 17)["val"]
    assert points.shape[1] == 17


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown size"):
        shapes.generate(0, "huge", N)
    with pytest.raises(ValueError):
        shapes.generate(-1, "tiny", N)
    with pytest.raises(ValueError, match="num_points"):
        shapes.generate(0, "tiny", 1)
    with pytest.raises(ValueError):
        shapes.make_mesh(len(shapes.CLASS_NAMES), np.random.default_rng(0))


@pytest.mark.parametrize("class_index", range(len(shapes.CLASS_NAMES)))
def test_make_mesh_is_valid(class_index: int) -> None:
    vertices, faces = shapes.make_mesh(class_index, np.random.default_rng(class_index))
    assert vertices.dtype == np.float64 and vertices.shape[1] == 3 and np.isfinite(vertices).all()
    assert faces.dtype == np.int64 and faces.shape[1] == 3
    assert faces.min() >= 0 and faces.max() < len(vertices)
    assert triangle_areas(vertices, faces).sum() > 0


def test_triangle_areas_of_unit_cube() -> None:
    areas = triangle_areas(*box([1.0, 1.0, 1.0]))
    np.testing.assert_allclose(areas, 0.5)


def test_sample_surface_lies_on_the_mesh() -> None:
    pts = sample_surface(*box([2.0, 2.0, 2.0]), 500, np.random.default_rng(0))
    assert pts.shape == (500, 3) and pts.dtype == np.float32
    # Every point of a cube's surface has one coordinate at +-1 and the others inside.
    np.testing.assert_allclose(np.abs(pts).max(axis=1), 1.0, atol=1e-6)


def test_sample_surface_skips_zero_area_faces() -> None:
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5], [6, 6, 6], [7, 7, 7]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [3, 4, 5], [3, 3, 4]])  # one real triangle, a collinear one, a collapsed one
    pts = sample_surface(vertices, faces, 1000, np.random.default_rng(0))
    assert np.all(pts[:, 2] == 0) and np.all(pts[:, :2] >= 0) and np.all(pts[:, :2].sum(axis=1) <= 1 + 1e-6)


def test_sample_surface_rejects_bad_meshes() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="no faces"):
        sample_surface(np.zeros((3, 3)), np.zeros((0, 3), dtype=np.int64), 10, rng)
    with pytest.raises(ValueError, match="area"):
        sample_surface(np.zeros((3, 3)), np.array([[0, 1, 2]]), 10, rng)
    with pytest.raises(ValueError, match="NaN"):
        sample_surface(np.full((3, 3), np.nan), np.array([[0, 1, 2]]), 10, rng)


def test_normalize_unit_sphere() -> None:
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(4, 50, 3)).astype(np.float32) * 7 + 3
    out = normalize_unit_sphere(batch)
    assert out.shape == batch.shape and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1).max(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(normalize_unit_sphere(batch[0]), out[0], atol=1e-6)
    with pytest.raises(ValueError, match="zero extent"):
        normalize_unit_sphere(np.ones((10, 3)))


def test_farthest_point_sample() -> None:
    pts = np.random.default_rng(0).random((200, 3))
    idx = farthest_point_sample(pts, 50)
    assert idx.shape == (50,) and len(np.unique(idx)) == 50 and idx[0] == 0
    np.testing.assert_array_equal(idx, farthest_point_sample(pts, 50))
    # With duplicated coordinates the picks must still be distinct indices.
    dup = np.repeat(pts[:5], 4, axis=0)
    assert len(np.unique(farthest_point_sample(dup, 20))) == 20
    with pytest.raises(ValueError):
        farthest_point_sample(pts, 201)


def test_rotate_about_up_keeps_height_and_norm() -> None:
    pts = np.random.default_rng(0).normal(size=(30, 3))
    rot = rotate_about_up(pts, 1.0)
    np.testing.assert_allclose(rot[:, 1], pts[:, 1])
    np.testing.assert_allclose(np.linalg.norm(rot, axis=1), np.linalg.norm(pts, axis=1))


def test_primitives_and_merge() -> None:
    cyl = revolve([0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 2.0, 2.0], 64)
    # Lateral area 2 pi r h plus two caps pi r^2, up to the polygon approximation.
    np.testing.assert_allclose(triangle_areas(*cyl).sum(), 6 * np.pi, rtol=0.01)
    ring = torus(2.0, 0.5, 64, 32)
    np.testing.assert_allclose(triangle_areas(*ring).sum(), 4 * np.pi**2 * 2.0 * 0.5, rtol=0.01)
    vertices, faces = merge_meshes([cyl, ring])
    assert len(vertices) == len(cyl[0]) + len(ring[0]) and faces.max() == len(vertices) - 1


def test_confusion_pairs() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    preds = np.array([1, 1, 0, 0, 1, 1, 0, 2])
    assert confusion_pairs(labels, preds, ["a", "b", "c"], top=2) == [("a", "b", 2), ("b", "a", 1)]
    assert confusion_pairs(labels, labels, ["a", "b", "c"]) == []
