"""DUP-Net and adversarial training build on a tiny setting, cache their weights, and give finite logits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from robench3d import PreparedDataset, Registries, Split
from robench3d.cache import read_json
from robench3d.defenses.base import count_params
from robench3d.evaluation.victims import BPDAVictim, adaptive_victim
from robench3d.training.backbone import BackboneRequest, TrainedBackbone, TrainSettings, train_backbone
from robench3d_baselines.adv_train import AdversarialTraining
from robench3d_baselines.adv_train_head import HeadAdversarialTraining
from robench3d_baselines.dupnet import DUPNet
from robench3d_baselines.pu_net import PUNet

#: Training budgets that take seconds: a few clouds, one or two epochs.
TINY_DUP = {"epochs": 1, "max_train": 32, "val_limit": 16, "batch_size": 8}
TINY_ADV = {"epochs": 1, "max_train": 32, "val_limit": 16, "batch_size": 16, "num_points": 0}


def _test_points(data: PreparedDataset, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    test = data.split(Split.TEST)
    return torch.from_numpy(test.points[:n]), torch.from_numpy(test.labels[:n])


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _sidecar_seconds(cache_dir: Path, defense: str, cache_key: str) -> float:
    """The ``train_seconds`` the artifact's JSON sidecar recorded."""
    return float(read_json(cache_dir / "defenses" / defense / cache_key / "model.json")["train_seconds"])


@pytest.mark.parametrize(("name", "variant"), [("srs", None), ("sor", None), ("sor", "mrpd"), ("sor", "euclidean")])
def test_preprocessing_adds_and_trains_nothing(registries: Registries, make_ctx: Any, name: str,
                                               variant: str | None) -> None:
    model = registries.defenses.get(name)(variant).build(make_ctx())
    assert (model.extra_params, model.trainable_params, model.train_seconds) == (0, 0, None)


def test_pu_net_upsamples_and_is_differentiable() -> None:
    net = PUNet(up_ratio=4, k=8, levels=((8, 16), (16, 32)), level_dim=8, expand=(16, 8), reconstruct=(8,))
    x = torch.rand(2, 32, 3, requires_grad=True)
    out = net(x)
    assert out.shape == (2, 128, 3)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_dupnet_builds_caches_and_attacks_through_bpda(make_ctx: Any, tiny_data: PreparedDataset,
                                                       cache_dir: Path) -> None:
    defense = DUPNet("cpu", TINY_DUP)
    model = defense.build(make_ctx())
    x, _ = _test_points(tiny_data)
    assert defense.transform(x).shape == (8, 32, 3)  # N/4 points into the upsampler
    logits = model(x)
    assert logits.shape == (8, tiny_data.num_classes) and torch.isfinite(logits).all()
    assert not model.differentiable and not model.randomized
    upsampler = count_params(model.classify.upsampler)
    assert upsampler > 0 and model.extra_params == model.trainable_params == upsampler
    assert model.train_seconds is not None and model.train_seconds > 0
    assert model.train_seconds == _sidecar_seconds(cache_dir, "dupnet", model.provenance["cache_key"])
    prov = model.provenance
    assert prov["reconstruction_loss"] == "chamfer" and isinstance(prov["beats_dup_jitter"], bool)
    assert prov["val_chamfer_punet"] > 0 and prov["val_chamfer_dup_jitter"] > 0
    weights = next((cache_dir / "defenses" / "dupnet").glob("*/model.safetensors"))
    assert weights.with_suffix(".json").exists()
    # A second build loads the cached upsampler instead of training again.
    mtime = weights.stat().st_mtime
    again = DUPNet("cpu", TINY_DUP).build(make_ctx())
    assert weights.stat().st_mtime == mtime and torch.allclose(again(x), logits)
    assert (again.extra_params, again.trainable_params, again.train_seconds) == (
        model.extra_params, model.trainable_params, model.train_seconds)  # as measured when it was trained
    # The adaptive victim differentiates the upsampler exactly and BPDA-s through SOR.
    victim = adaptive_victim(model, eot_samples=10)
    assert isinstance(victim, BPDAVictim) and victim.eot_samples == 1
    xg = x.clone().requires_grad_(True)
    victim(xg).sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


def test_adv_train_trains_a_copy(make_ctx: Any, tiny_data: PreparedDataset, tiny_base: TrainedBackbone,
                                 cache_dir: Path) -> None:
    before = _state(tiny_base.model)
    model = AdversarialTraining("cpu", TINY_ADV).build(make_ctx())
    assert model.classify is not tiny_base.model
    assert all(torch.equal(v, before[k]) for k, v in tiny_base.model.state_dict().items())
    x, _ = _test_points(tiny_data)
    assert torch.isfinite(model(x)).all()
    assert model.differentiable and not model.randomized and model.transform is None and model.extra_params == 0
    prov = model.provenance
    assert prov["trained"] == "whole backbone" and 0 <= prov["base_val_robust"] <= 1
    assert adaptive_victim(model, 10) is model  # plain gradients
    # Every weight of the backbone is trained, none is added.
    assert model.trainable_params == count_params(tiny_base.model) > 0
    assert model.train_seconds is not None and model.train_seconds > 0
    assert model.train_seconds == _sidecar_seconds(cache_dir, "adv_train", prov["cache_key"])
    again = AdversarialTraining("cpu", TINY_ADV).build(make_ctx())
    assert (again.extra_params, again.trainable_params, again.train_seconds) == (0, model.trainable_params,
                                                                                 model.train_seconds)


def test_adv_train_head_changes_only_the_head(make_ctx: Any, tiny_data: PreparedDataset,
                                              tiny_base: TrainedBackbone, cache_dir: Path) -> None:
    model = HeadAdversarialTraining("cpu", TINY_ADV).build(make_ctx())
    trained, base = model.classify.state_dict(), tiny_base.model.state_dict()
    body = [k for k in trained if not k.startswith("head.")]
    assert body and all(torch.equal(trained[k], base[k]) for k in body)  # BatchNorm statistics included
    c, d = tiny_data.num_classes, tiny_base.model.embed_dim
    # Only the new head is trained; it replaces the base's linear head of the same size, so nothing is added.
    assert model.trainable_params == c * d + c == count_params(tiny_base.model.head)
    assert model.extra_params == 0 and count_params(model.classify) == count_params(tiny_base.model)
    assert model.train_seconds is not None and model.train_seconds > 0
    assert model.train_seconds == _sidecar_seconds(cache_dir, "adv_train.head", model.provenance["cache_key"])
    again = HeadAdversarialTraining("cpu", TINY_ADV).build(make_ctx())
    assert (again.extra_params, again.trainable_params, again.train_seconds) == (0, c * d + c, model.train_seconds)
    assert "our reading" in model.provenance["trained"]
    x, _ = _test_points(tiny_data)
    assert torch.isfinite(model(x)).all()


@pytest.mark.slow
def test_adv_train_improves_robust_accuracy(make_ctx: Any, registries: Any, tiny_data: PreparedDataset,
                                            tmp_path: Path) -> None:
    """Against pgd_linf (quick) on 60 training clouds, adversarial training beats the undefended base.

    The base is trained to convergence first (60 epochs; clean accuracy ~0.77, robust ~0.10 here), so the gain is
    robustness, not extra clean training. Observed: robust 0.10 -> 0.23; tolerance: at least +0.05.
    """
    base = train_backbone(
        BackboneRequest(registries.backbones.get("pointnet"), "test", recipe_overrides={"epochs": 60}), tiny_data,
        TrainSettings(tmp_path))
    ctx = make_ctx(backbone=base.model, backbone_name=base.name, backbone_provenance=base.provenance,
                   cache_dir=tmp_path)
    model = AdversarialTraining("cpu", {"epochs": 15, "lr": 5e-3, "num_points": 0, "batch_size": 16,
                                        "val_limit": 20, "select": "robust"}).build(ctx)
    train = tiny_data.split(Split.TRAIN)
    x, y = torch.from_numpy(train.points[:60]), torch.from_numpy(train.labels[:60])
    attack = registries.attacks.get("pgd_linf")("quick", seed=0)

    def robust(m: torch.nn.Module) -> float:
        adv = attack(m, x, y).adv_points
        with torch.no_grad():
            return float((m(adv).argmax(1) == y).float().mean())

    base_acc, adv_acc = robust(base.model.eval()), robust(model.eval())
    assert adv_acc >= base_acc + 0.05, (base_acc, adv_acc)
