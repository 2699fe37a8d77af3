"""The shared kernels of robench3d.pointops against brute-force references, and a check that nobody copies them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from robench3d import pointops
from robench3d.evaluation import metrics
from robench3d.pointops import (
    ball_query,
    chamfer,
    distance_ranking,
    farthest_point_sample,
    gather_points,
    hausdorff,
    knn,
    knn_with_distances,
    nearest_indices,
    nearest_sq_distances,
    single_thread,
    square_distance,
)

ROOT = Path(__file__).parents[1]


def _cloud(b: int = 3, n: int = 200, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, n, 3, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _brute_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a[:, :, None] - b[:, None]).square().sum(-1)


def test_square_distance_matches_broadcasting() -> None:
    a, p = _cloud(n=50), _cloud(n=70, seed=1)
    assert torch.allclose(square_distance(a, p), _brute_sq(a, p), atol=1e-5)
    assert (square_distance(p, p) >= 0).all()


def test_fps_picks_distinct_points_and_is_deterministic() -> None:
    x = _cloud()
    idx = farthest_point_sample(x, 64)
    assert idx.shape == (3, 64) and idx.dtype == torch.int64
    assert (idx[:, 0] == 0).all()
    for row in idx:
        assert len(set(row.tolist())) == 64
    assert torch.equal(idx, farthest_point_sample(x, 64))


def test_fps_follows_the_farthest_point_rule() -> None:
    x = _cloud(b=2, n=60)
    idx = farthest_point_sample(x, 10)
    for b in range(2):
        chosen = [0]
        for _ in range(9):
            d = torch.cdist(x[b], x[b, chosen]).amin(dim=1)
            chosen.append(int(d.argmax()))
        assert idx[b].tolist() == chosen


def test_fps_restores_thread_count_and_handles_s_equal_n() -> None:
    threads = torch.get_num_threads()
    farthest_point_sample(_cloud(n=20), 5)
    assert torch.get_num_threads() == threads
    assert torch.equal(farthest_point_sample(_cloud(n=8), 8)[0], torch.arange(8))
    with single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("k", [1, 8])
def test_knn_matches_brute_force(k: int) -> None:
    q, p = _cloud(n=30, seed=2), _cloud(n=120, seed=3)
    idx = knn(q, p, k)
    ref = torch.cdist(q, p).topk(k, dim=-1, largest=False).indices
    assert idx.shape == (3, 30, k)
    for b in range(3):
        for s in range(30):
            assert set(idx[b, s].tolist()) == set(ref[b, s].tolist())
    d = torch.cdist(q, p).gather(2, idx)
    assert (d[..., 1:] >= d[..., :-1] - 1e-6).all()  # nearest first


def test_knn_with_distances_returns_the_knn_indices_and_caps_k() -> None:
    q, p = _cloud(n=30, seed=2), _cloud(n=120, seed=3)
    d2, idx = knn_with_distances(q, p, 8)
    assert torch.equal(idx, knn(q, p, 8))
    assert torch.allclose(d2, _brute_sq(q, p).gather(2, idx), atol=1e-5) and (d2 >= 0).all()
    d2, idx = knn_with_distances(q, p[:, :5], 8)  # more neighbours than points: all of them
    assert idx.shape == d2.shape == (3, 30, 5)
    q.requires_grad_(True)
    assert not knn_with_distances(q, p, 2)[0].requires_grad


def test_ball_query_matches_brute_force() -> None:
    p = _cloud(n=150, seed=4)
    centres = gather_points(p, farthest_point_sample(p, 20))
    radius, k = 0.4, 16
    idx = ball_query(centres, p, radius, k)
    dist = torch.cdist(centres, p)
    for b in range(3):
        for s in range(20):
            inside = (dist[b, s] <= radius).nonzero().flatten().tolist()
            expect = inside[:k] + [inside[0]] * max(0, k - len(inside))
            assert idx[b, s].tolist() == expect


def test_ball_query_empty_ball_falls_back_to_nearest() -> None:
    p = _cloud(b=1, n=10)
    far = torch.full((1, 1, 3), 10.0)
    idx = ball_query(far, p, 0.1, 4)
    nearest = int(torch.cdist(far, p).argmin())
    assert idx.tolist() == [[[nearest] * 4]]


def test_gather_points_is_differentiable() -> None:
    v = torch.randn(2, 10, 4, requires_grad=True)
    idx = torch.tensor([[[0, 0, 1]], [[9, 8, 9]]])
    out = gather_points(v, idx)
    assert out.shape == (2, 1, 3, 4)
    assert torch.equal(out[1, 0, 0], v[1, 9])
    out.sum().backward()
    assert v.grad is not None and v.grad[0, 0].sum() == 8 and v.grad[1, 9].sum() == 8
    flat = torch.tensor([[3, 1], [0, 0]])
    assert torch.equal(gather_points(v, flat), torch.stack([v[0, [3, 1]], v[1, [0, 0]]]))


def test_ranking_orders_like_the_squared_distance() -> None:
    a, b = _cloud(n=40, seed=5), _cloud(n=90, seed=6)
    ranked = distance_ranking(a, b) + a.square().sum(-1, keepdim=True)
    assert torch.allclose(ranked, _brute_sq(a, b), atol=1e-5)
    assert torch.equal(nearest_indices(a, b), _brute_sq(a, b).argmin(dim=2))


def test_nearest_sq_distances_differentiate_the_matched_pairs() -> None:
    a, b = _cloud(n=40, seed=5).requires_grad_(True), _cloud(n=90, seed=6).requires_grad_(True)
    dense = _brute_sq(a, b).min(dim=2).values
    ours = nearest_sq_distances(a, b)
    assert torch.allclose(ours, dense, atol=1e-6)
    ga, gb = torch.autograd.grad(ours.sum(), (a, b))
    da, db = torch.autograd.grad(dense.sum(), (a, b))
    assert torch.allclose(ga, da, atol=1e-5) and torch.allclose(gb, db, atol=1e-5)
    on_top = nearest_sq_distances(a, a)  # a point on its neighbour: zero distance, finite gradient
    assert torch.equal(on_top, torch.zeros_like(on_top))
    assert torch.isfinite(torch.autograd.grad(on_top.sum(), a)[0]).all()


def _numpy_nearest(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    x, y = a.double().numpy(), b.double().numpy()
    return np.sqrt(((x[:, :, None] - y[:, None]) ** 2).sum(-1)).min(axis=2)


@pytest.mark.parametrize("scale", [1e-1, 1e-4])
def test_exact_chamfer_and_hausdorff_match_numpy(scale: float) -> None:
    a = _cloud(n=120, seed=7)
    b = a[:, :90] + scale * _cloud(n=90, seed=8)  # fewer points, slightly moved
    ab, ba = _numpy_nearest(a, b), _numpy_nearest(b, a)
    want_cd = 0.5 * ((ab**2).mean(axis=1) + (ba**2).mean(axis=1))
    want_hd = np.maximum(ab.max(axis=1), ba.max(axis=1))
    np.testing.assert_allclose(chamfer(a, b, exact=True).numpy(), want_cd, rtol=1e-5)
    np.testing.assert_allclose(hausdorff(a, b, exact=True).numpy(), want_hd, rtol=1e-5)
    # The differentiable forms agree to float32 rounding of the expansion.
    np.testing.assert_allclose(chamfer(a, b).numpy(), want_cd, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(hausdorff(a, b).numpy(), want_hd, rtol=1e-3, atol=1e-3)
    assert torch.equal(chamfer(a, a, exact=True), torch.zeros(3))
    assert torch.equal(hausdorff(a, a, exact=True), torch.zeros(3))


def test_metrics_report_the_exact_forms() -> None:
    a = _cloud(n=64, seed=9)
    b = a + 1e-3 * _cloud(n=64, seed=10)
    assert torch.equal(metrics.chamfer(a, b), chamfer(a, b, exact=True))
    assert torch.equal(metrics.hausdorff(a, b), hausdorff(a, b, exact=True))
    assert torch.equal(chamfer(a, b, exact=True), chamfer(b, a, exact=True))  # symmetric, bit for bit


def test_differentiable_chamfer_has_a_gradient() -> None:
    a = _cloud(n=50, seed=11).requires_grad_(True)
    b = _cloud(n=60, seed=12)
    (grad,) = torch.autograd.grad(chamfer(a, b).sum(), (a,))
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert not chamfer(a, b, exact=True).requires_grad


# Kernels that must exist once, in robench3d/pointops.py.
SHARED = {"square_distance", "square_distances", "squared_distances", "gather_points", "chamfer"}


def _sources() -> list[Path]:
    files = [*ROOT.joinpath("robench3d").rglob("*.py"), *ROOT.joinpath("plugins").rglob("*.py")]
    return [f for f in files if f != ROOT / "robench3d" / "pointops.py"]


def _is_pointops_wrapper(fn: ast.FunctionDef) -> bool:
    """A def whose body (after its docstring) is ``return pointops.<its name>(...)``: a named entry, not a copy."""
    body = fn.body[1:] if fn.body and isinstance(fn.body[0], ast.Expr) else fn.body
    if len(body) != 1 or not isinstance(body[0], ast.Return) or not isinstance(body[0].value, ast.Call):
        return False
    func = body[0].value.func
    return isinstance(func, ast.Attribute) and func.attr == fn.name and ast.unparse(func.value) == "pointops"


def test_the_kernels_are_not_copied() -> None:
    copies = []
    for path in _sources():
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and node.name in SHARED and not _is_pointops_wrapper(node):
                copies.append(f"{path.relative_to(ROOT)}:{node.lineno} defines {node.name}")
        if re.search(r"\bset_num_threads\s*\(", text):
            copies.append(f"{path.relative_to(ROOT)} sets torch's thread count (use pointops.single_thread)")
    assert not copies, copies


def test_the_meta_check_sees_a_copy() -> None:
    copy = ast.parse("def gather_points(x, i):\n    return x[i]\n").body[0]
    wrapper = ast.parse('def chamfer(a, b):\n    """Doc."""\n    return pointops.chamfer(a, b, exact=True)\n').body[0]
    assert isinstance(copy, ast.FunctionDef) and isinstance(wrapper, ast.FunctionDef)
    assert not _is_pointops_wrapper(copy) and _is_pointops_wrapper(wrapper)
    assert set(pointops.__all__) >= SHARED - {"square_distances", "squared_distances"}
