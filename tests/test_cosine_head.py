"""Cosine heads take class embeddings at call time (a prompted text side changes the classifier)."""

from __future__ import annotations

import pytest
import torch

from robench3d.backbones.pointnet import POINTNET
from robench3d.errors import ConfigError


def test_call_time_class_embeddings_change_the_classifier_and_receive_gradients() -> None:
    torch.manual_seed(0)
    fixed = torch.randn(4, 16)
    net = POINTNET.build(4, "test", head="cosine", class_embeddings=fixed).eval()
    x = torch.randn(2, 64, 3)
    stored = net(x)
    assert torch.allclose(net(x, class_embeddings=fixed), stored, atol=1e-6)
    learned = fixed.clone().requires_grad_(True)
    out = net(x, class_embeddings=learned + 0.5 * torch.randn(4, 16))
    assert not torch.allclose(out, stored)
    out.sum().backward()
    assert learned.grad is not None and learned.grad.abs().sum() > 0
    # cached once for inference
    new = torch.randn(4, 16)
    net.head.set_class_embeddings(new)
    assert torch.allclose(net(x), net(x, class_embeddings=new), atol=1e-6)
    with pytest.raises(ConfigError, match="must keep shape"):
        net.head.set_class_embeddings(torch.randn(3, 16))


def test_linear_heads_refuse_call_time_class_embeddings() -> None:
    net = POINTNET.build(4, "test").eval()
    with pytest.raises(ConfigError, match="need a cosine head"):
        net(torch.randn(1, 32, 3), class_embeddings=torch.randn(4, 8))
