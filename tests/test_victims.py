"""The adaptive victim: BPDA (nearest-input search or declared indices) and EOT stacked into one batch."""

from __future__ import annotations

import pytest
import torch

from robench3d.backbones.pointnet import POINTNET
from robench3d.defenses.base import DefendedModel
from robench3d.evaluation.victims import BPDAVictim, adaptive_victim, bpda_through


def _backbone() -> torch.nn.Module:
    torch.manual_seed(0)
    return POINTNET.build(4, "test").eval()


def _drop_half(points: torch.Tensor) -> torch.Tensor:
    return points[:, ::2].repeat(1, 2, 1)


def _drop_half_idx(points: torch.Tensor) -> torch.Tensor:
    return torch.arange(0, points.shape[1], 2).repeat(2).expand(points.shape[0], -1)


def test_bpda_through_is_the_identity_backward_to_the_kept_points() -> None:
    x = torch.randn(2, 8, 3, requires_grad=True)
    y = bpda_through(_drop_half(x.detach()), x)
    assert torch.equal(y, _drop_half(x.detach()))
    y.sum().backward()
    assert x.grad is not None
    assert torch.equal(x.grad[:, ::2], torch.full((2, 4, 3), 2.0)) and not x.grad[:, 1::2].any()


@pytest.mark.parametrize(("max_batch", "stack"), [(1, True), (4, True), (256, True), (256, None)])
def test_eot_stacking_gives_the_mean_of_the_passes(max_batch: int, stack: bool | None) -> None:
    """A deterministic transform flagged random: every EOT draw is the same, so the mean equals one pass."""
    net = _backbone()
    defended = DefendedModel(net, _drop_half, differentiable=False, randomized=True, select=_drop_half_idx)
    victim = adaptive_victim(defended, eot_samples=5)
    assert isinstance(victim, BPDAVictim) and victim.eot_samples == 5
    victim.max_batch, victim.stack = max_batch, stack
    x = torch.randn(3, 32, 3, requires_grad=True)
    out = victim(x)
    out.sum().backward()
    xr = x.detach().clone().requires_grad_(True)
    ref = net(torch.gather(xr, 1, _drop_half_idx(xr).unsqueeze(-1).expand(-1, -1, 3)))
    ref.sum().backward()
    assert torch.allclose(out, ref, atol=1e-5) and torch.allclose(x.grad, xr.grad, atol=1e-5)


def test_random_draws_differ_between_copies() -> None:
    """Each stacked copy of a cloud gets its own draw: averaging over EOT changes the logits."""
    net = _backbone()

    def random_keep(points: torch.Tensor) -> torch.Tensor:
        idx = torch.rand(points.shape[:2]).argsort(dim=1)[:, : points.shape[1] // 2].repeat(1, 2)
        return torch.gather(points, 1, idx.unsqueeze(-1).expand(-1, -1, 3))

    defended = DefendedModel(net, random_keep, differentiable=False, randomized=True)
    x = torch.randn(2, 64, 3)
    torch.manual_seed(1)
    one = BPDAVictim(defended, eot_samples=1)(x)
    torch.manual_seed(1)
    many = BPDAVictim(defended, eot_samples=8)(x)
    assert not torch.allclose(one, many)
