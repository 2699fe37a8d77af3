"""The adaptive victim: BPDA (nearest-input search or declared indices) and EOT stacked into one batch."""

from __future__ import annotations

from pathlib import Path

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


def test_pointwise_bpda_passes_each_gradient_to_the_same_index() -> None:
    net = _backbone()

    def quantize(points: torch.Tensor) -> torch.Tensor:
        return torch.round(points / 0.1) * 0.1

    defended = DefendedModel(net, quantize, differentiable=False, bpda="pointwise")
    victim = adaptive_victim(defended, eot_samples=10)
    assert isinstance(victim, BPDAVictim) and victim.label == "bpda:pointwise"
    x = torch.randn(2, 32, 3, requires_grad=True)
    victim(x).sum().backward()
    q = quantize(x.detach()).requires_grad_(True)
    net(q).sum().backward()
    assert torch.allclose(x.grad, q.grad)  # identity backward, point i -> point i


def test_pointwise_bpda_rejects_a_transform_that_changes_n() -> None:
    defended = DefendedModel(_backbone(), lambda p: p[:, ::2], differentiable=False, bpda="pointwise")
    with pytest.raises(ValueError, match="must keep every point"):
        adaptive_victim(defended, 1)(torch.randn(1, 32, 3))


def test_victim_labels_say_how_the_victim_was_built() -> None:
    from robench3d.evaluation.victims import ScoreOracle, victim_label

    net = _backbone()
    assert victim_label(adaptive_victim(DefendedModel(net), 10)) == "plain"
    sel = DefendedModel(net, _drop_half, differentiable=False, randomized=True, select=_drop_half_idx)
    assert victim_label(adaptive_victim(sel, 10)) == "bpda:select+eot10"
    near = DefendedModel(net, _drop_half, differentiable=False)
    assert victim_label(adaptive_victim(near, 10)) == "bpda:nearest"
    rand_diff = DefendedModel(net, lambda p: p + 0.01 * torch.randn_like(p), differentiable=True, randomized=True)
    assert victim_label(adaptive_victim(rand_diff, 4)) == "plain+eot4"
    assert victim_label(ScoreOracle(net)) == "query"
    with pytest.raises(Exception, match="bpda='sideways' is not a backward mapping"):
        DefendedModel(net, _drop_half, differentiable=False, bpda="sideways")


def test_replayed_clouds_run_every_step_and_adaptive_stops_early(tmp_path: Path, cache: Path) -> None:
    """Oblivious (and transfer) clouds are replayed on other models: generated to completion. Adaptive clouds on
    a deterministic victim may stop at the first success (exact there). Both are cached under different keys."""
    from helpers import TINY_RUN

    from robench3d.cli import main
    from robench3d.evaluation.results import ResultsStore

    out = tmp_path / "o"
    assert main(["run", *TINY_RUN, "--attacks", "pgd_linf", "--opt", "attack.pgd_linf.eps=0.2",
                 "--output", str(out)]) == 0
    store = ResultsStore(out)
    rows = store.load().set_index("setting")
    obl = store.samples(rows.loc["oblivious"].to_dict() | {"setting": "oblivious"})
    ada = store.samples(rows.loc["adaptive"].to_dict() | {"setting": "adaptive"})
    assert (obl["iterations"] == 10).all()
    assert (ada["iterations"] < 10).any()
    assert rows.loc["oblivious", "victim"] == "undefended" and rows.loc["adaptive", "victim"] == "plain"
    # a sample is robust only if the clean input was right too, in both settings
    for s in (obl, ada):
        assert not (s["correct"] & ~s["clean_correct"]).any()
