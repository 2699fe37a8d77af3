"""MRPD's losses: symmetric InfoNCE, the class-level confidence gate, and the uncertainty weighting's clamp."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from robench3d_mrpd.losses import gated_contrastive, info_nce, label_contrastive, uncertainty_weighted


def test_info_nce_is_symmetric_and_low_for_aligned_pairs() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(8, 16), torch.randn(8, 16)
    assert torch.allclose(info_nce(a, b, 0.1), info_nce(b, a, 0.1))
    assert info_nce(a, a, 0.1) < info_nce(a, b, 0.1)
    # by hand: the mean of the two cross-entropies over cosine similarities / tau
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).t() / 0.1
    target = torch.arange(8)
    ref = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    assert torch.allclose(info_nce(a, b, 0.1), ref)


def test_gate_keeps_samples_the_teacher_gets_right_in_its_top_k() -> None:
    labels = torch.tensor([0, 1, 2, 3])
    logits = torch.tensor([[5.0, 0, 0, 0], [0, 0, 5.0, 1.0], [0, 0, 5.0, 0], [4.0, 0, 0, 3.0]])
    s, t = torch.randn(4, 6, requires_grad=True), torch.randn(4, 6)
    loss, kept = gated_contrastive(s, t, logits, labels, 0.07, top_k=1)
    assert kept.tolist() == [True, False, True, False]
    assert torch.allclose(loss, info_nce(s[kept], t[kept], 0.07))
    _, kept2 = gated_contrastive(s, t, logits, labels, 0.07, top_k=2)
    assert kept2.tolist() == [True, False, True, True]
    _, off = gated_contrastive(s, t, logits, labels, 0.07, gate=False)
    assert off.all()


def test_gate_with_fewer_than_two_kept_samples_gives_zero_with_a_graph() -> None:
    s = torch.randn(3, 4, requires_grad=True)
    loss, kept = gated_contrastive(s, torch.randn(3, 4), torch.eye(3)[[1, 2, 2]], torch.tensor([1, 0, 0]), 0.07)
    assert int(kept.sum()) == 1 and loss.item() == 0.0
    loss.backward()
    assert s.grad is not None and not s.grad.any()


def test_text_loss_infonce_and_ce() -> None:
    torch.manual_seed(1)
    classes, labels = torch.randn(5, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    z = classes[labels] + 0.01 * torch.randn(6, 8)
    assert label_contrastive(z, classes, labels, 0.07, kind="ce") < 0.1
    assert label_contrastive(z, classes, labels, 0.07) < label_contrastive(z.flip(0), classes, labels, 0.07)


def test_uncertainty_weighting_and_its_lower_clamp() -> None:
    losses = {"image": torch.tensor(2.0), "text": torch.tensor(1.0)}
    s = {"image": torch.tensor(0.0, requires_grad=True), "text": torch.tensor(-3.0, requires_grad=True)}
    total, w = uncertainty_weighted(losses, s, clamp=-1.0)
    # text's s = -3 is clamped to -1: weight e^1, and no gradient pushes it further down
    assert w["text"] == pytest.approx(math.e) and w["image"] == pytest.approx(1.0)
    assert total.item() == pytest.approx(2.0 + 0.0 + math.e * 1.0 - 1.0)
    total.backward()
    assert s["text"].grad.item() == 0.0 and s["image"].grad.item() == pytest.approx(1 - 2.0)
    fixed, wf = uncertainty_weighted(losses, s, learn=False)
    assert fixed.item() == 3.0 and set(wf.values()) == {1.0}
    _, w8 = uncertainty_weighted(losses, s, clamp=-0.8)
    assert w8["text"] == pytest.approx(math.exp(0.8))
