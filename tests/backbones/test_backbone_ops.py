"""The geometry kernels of robench3d.backbones.ops against brute-force references."""

from __future__ import annotations

import pytest
import torch

from robench3d.backbones.ops import (
    ball_query,
    farthest_point_sample,
    gather_points,
    knn,
    single_thread,
    square_distance,
)


def _cloud(b: int = 3, n: int = 200, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, n, 3, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_square_distance_matches_broadcasting() -> None:
    a, p = _cloud(n=50), _cloud(n=70, seed=1)
    ref = (a[:, :, None] - p[:, None]).square().sum(-1)
    assert torch.allclose(square_distance(a, p), ref, atol=1e-5)
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
