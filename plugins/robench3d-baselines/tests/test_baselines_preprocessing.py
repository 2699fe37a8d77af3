"""SRS, SOR and the shared point operations: shapes, outputs drawn from the inputs, determinism, references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robench3d import ConfigError
from robench3d.pointops import chamfer
from robench3d_baselines._pointops import farthest_point_resample, keep_and_pad
from robench3d_baselines.dupnet import DUPNet
from robench3d_baselines.sor import StatisticalOutlierRemoval, sor_mask, sor_mask_reference
from robench3d_baselines.srs import SimpleRandomSampling


def _clouds(b: int = 4, n: int = 256, seed: int = 0) -> torch.Tensor:
    """Points on a unit sphere with a little noise: every point has close neighbours."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, 3, generator=g)
    return x / x.norm(dim=2, keepdim=True) + 0.01 * torch.randn(b, n, 3, generator=g)


def _only_input_points(out: torch.Tensor, inp: torch.Tensor) -> bool:
    """Every output point equals one of its own cloud's input points."""
    return bool((out.unsqueeze(2) == inp.unsqueeze(1)).all(dim=-1).any(dim=-1).all())


@pytest.mark.parametrize("defense", [SimpleRandomSampling(), StatisticalOutlierRemoval(),
                                     StatisticalOutlierRemoval("mrpd"), StatisticalOutlierRemoval("euclidean")])
def test_transform_keeps_shape_and_outputs_input_points(defense: SimpleRandomSampling) -> None:
    x = _clouds()
    out = defense.transform(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert _only_input_points(out, x)


def test_srs_drops_the_scaled_number_and_is_seeded() -> None:
    srs = SimpleRandomSampling()
    assert srs.num_dropped(1024) == 500 and srs.num_dropped(256) == 125
    assert SimpleRandomSampling(overrides={"scale_with_n": False}).num_dropped(1024) == 500
    x = _clouds(n=256)
    out = srs.transform(x)
    assert all(len(torch.unique(c, dim=0)) == 256 - 125 for c in out)
    torch.manual_seed(3)
    a = srs.transform(x)
    torch.manual_seed(3)
    b = srs.transform(x)
    assert torch.equal(a, b) and not torch.equal(a, srs.transform(x))
    with pytest.raises(ConfigError, match="drop"):
        SimpleRandomSampling(overrides={"drop": 300, "scale_with_n": False}).transform(_clouds(n=200))


def test_sor_removes_an_obvious_outlier() -> None:
    x = _clouds(b=2, n=256)
    x[0, 17] = torch.tensor([4.0, 4.0, 4.0])
    sor = StatisticalOutlierRemoval()
    assert not bool(sor.mask(x)[0, 17])
    out = sor.transform(x)
    assert out.shape == x.shape and not bool((out[0] == x[0, 17]).all(dim=1).any())


@pytest.mark.parametrize(("k", "alpha", "squared"), [(2, 1.1, True), (16, 1.0, True), (2, 1.1, False),
                                                     (16, 1.0, False)])
@pytest.mark.parametrize("backend", ["torch", "kdtree"])
def test_sor_backends_match_the_ckdtree_reference(k: int, alpha: float, squared: bool, backend: str) -> None:
    x = _clouds(b=6, n=300, seed=1)
    x[:, :5] *= 1.5  # a few real outliers per cloud, so the mask is not trivially all-true
    got = sor_mask(x, k, alpha, squared=squared, backend=backend).numpy()
    want = sor_mask_reference(x.numpy(), k, alpha, squared=squared)
    assert np.array_equal(got, want)
    assert not want.all()


#: Seven points on the x axis (hand-checkable; the two SOR definitions disagree about x = 9).
LINE = (0.0, 1.0, 2.0, 3.0, 4.0, 9.0, 10.0)


def _if_defense_sor(points: np.ndarray, k: int, alpha: float, squared: bool) -> np.ndarray:
    """SOR as IF-Defense's code defines it, written out from the definition with a dense distance matrix.

    (B, N, 3) -> (B, N) bool: per point, the mean of its k smallest squared distances to the other points (of the
    distances when not ``squared``); kept where <= mean + alpha * unbiased std over the cloud.
    """
    diff = points[:, :, None, :] - points[:, None, :, :]
    d2 = (diff**2).sum(-1)
    near = np.sort(d2, axis=2)[:, :, 1 : k + 1]  # column 0: the point itself
    score = (near if squared else np.sqrt(near)).mean(axis=2)
    threshold = score.mean(axis=1, keepdims=True) + alpha * score.std(axis=1, ddof=1, keepdims=True)
    return score <= threshold


def test_default_sor_averages_squared_distances_as_if_defense() -> None:
    """By hand, k = 2, alpha = 1.1 on x = 0, 1, 2, 3, 4, 9, 10.

    Squared: scores 2.5, 1, 1, 1, 2.5, 13, 18.5; mean 5.643, std 7.116, threshold 13.47: only x = 10 goes.
    Euclidean: scores 1.5, 1, 1, 1, 1.5, 3, 3.5; mean 1.786, std 1.035, threshold 2.92: x = 9 and x = 10 go.
    """
    x = torch.tensor([[[v, 0.0, 0.0] for v in LINE]])
    squared = np.array([[True] * 6 + [False]])
    euclidean = np.array([[True] * 5 + [False] * 2])
    assert np.array_equal(_if_defense_sor(x.double().numpy(), 2, 1.1, squared=True), squared)
    assert np.array_equal(_if_defense_sor(x.double().numpy(), 2, 1.1, squared=False), euclidean)
    for backend in ("torch", "kdtree"):
        assert np.array_equal(sor_mask(x, 2, 1.1, backend=backend).numpy(), squared)  # the function default too
    assert np.array_equal(sor_mask_reference(x.numpy(), 2, 1.1), squared)
    assert np.array_equal(StatisticalOutlierRemoval().mask(x).numpy(), squared)
    assert np.array_equal(StatisticalOutlierRemoval("euclidean").mask(x).numpy(), euclidean)
    assert np.array_equal(StatisticalOutlierRemoval(overrides={"squared": False}).mask(x).numpy(), euclidean)
    # The default's output keeps x = 9 (padded back to 7 points by repeating the kept ones).
    assert sorted(set(StatisticalOutlierRemoval().transform(x)[0, :, 0].tolist())) == list(LINE[:6])


def test_sor_mrpd_and_dupnet_use_the_squared_definition_too() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 200, 3, generator=g) ** 3  # skewed spacing: the two definitions disagree on some points
    want = _if_defense_sor(x.double().numpy(), 16, 1.0, squared=True)
    assert np.array_equal(StatisticalOutlierRemoval("mrpd").mask(x).numpy(), want)
    assert not np.array_equal(want, _if_defense_sor(x.double().numpy(), 16, 1.0, squared=False))
    # DUP-Net's SOR stage, with the upsampler input at N (in_fraction 1): it picks exactly the kept points.
    line = torch.tensor([[[v, 0.0, 0.0] for v in LINE]])
    for overrides, kept in (({}, set(range(6))), ({"sor_squared": False}, set(range(5)))):
        dup = DUPNet("cpu", {"in_fraction": 1.0, **overrides})
        assert set(dup.select(line)[0].tolist()) == kept


def test_sor_rejects_bad_k() -> None:
    with pytest.raises(ConfigError, match="k"):
        StatisticalOutlierRemoval(overrides={"k": 300}).transform(_clouds(n=100))


def test_keep_and_pad_repeats_kept_points_cyclically() -> None:
    x = torch.arange(12, dtype=torch.float32).view(1, 4, 3)
    out = keep_and_pad(x, torch.tensor([[True, False, True, False]]), 5)
    assert out[0, :, 0].tolist() == [0.0, 6.0, 0.0, 6.0, 0.0]
    with pytest.raises(ConfigError, match="every point"):
        keep_and_pad(x, torch.zeros(1, 4, dtype=torch.bool), 4)


def test_farthest_point_resample_is_deterministic_and_pads() -> None:
    x = _clouds(b=2, n=64)
    mask = torch.ones(2, 64, dtype=torch.bool)
    mask[1, 10:] = False  # the second cloud keeps only 10 points: fewer than asked
    idx = farthest_point_resample(x, 32, mask)
    assert torch.equal(idx, farthest_point_resample(x, 32, mask))
    assert len(set(idx[0].tolist())) == 32
    assert set(idx[1].tolist()) == set(range(10)) and torch.equal(idx[1, 10:20], idx[1, :10])


def test_chamfer_matches_the_brute_force_definition() -> None:
    a, b = _clouds(b=2, n=50), _clouds(b=2, n=70, seed=5)
    d = torch.cdist(a, b) ** 2
    want = 0.5 * (d.min(2).values.mean(1) + d.min(1).values.mean(1))
    assert torch.allclose(chamfer(a, b), want, atol=1e-6)


class _SumPool(torch.nn.Module):
    """A differentiable stand-in for ``classify`` whose gradient differs from point to point."""

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return torch.stack([(points ** 2).sum(dim=(1, 2)), points[..., 0].sum(dim=1)], dim=1)


@pytest.mark.parametrize("defense", [SimpleRandomSampling(), StatisticalOutlierRemoval(),
                                     StatisticalOutlierRemoval("mrpd"), StatisticalOutlierRemoval("euclidean")])
def test_select_matches_transform_and_gives_the_nearest_input_bpda_gradient(defense: SimpleRandomSampling) -> None:
    from robench3d.defenses.base import DefendedModel
    from robench3d.evaluation.victims import BPDAVictim

    x = _clouds(n=128)
    torch.manual_seed(5)
    picked = torch.gather(x, 1, defense.select(x).unsqueeze(-1).expand(-1, -1, 3))
    torch.manual_seed(5)
    assert torch.equal(picked, defense.transform(x))
    grads = []
    for select in (defense.select, None):  # gather of the declared indices vs nearest-input search
        model = DefendedModel(_SumPool(), defense.transform, differentiable=False, randomized=defense.randomized,
                              backbone=torch.nn.Module(), select=select)  # type: ignore[arg-type]
        xg = x.clone().requires_grad_(True)
        torch.manual_seed(7)
        BPDAVictim(model, eot_samples=3)(xg).sum().backward()
        grads.append(xg.grad)
    assert grads[0].abs().sum() > 0 and torch.allclose(grads[0], grads[1])
