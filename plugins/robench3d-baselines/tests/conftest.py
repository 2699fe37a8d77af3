"""Fixtures of the robench3d-baselines tests: registries, the tiny embedded dataset, a tiny trained PointNet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from robench3d import DefenseContext, PreparedDataset, Registries
from robench3d.evaluation.components import make_attack, prepare_dataset
from robench3d.plugins import build_plugin_manager, build_registries
from robench3d.training.backbone import BackboneRequest, TrainedBackbone, TrainSettings, train_backbone

#: Points per cloud in the trained-defense tests: small, so training and attacks take seconds.
TINY_N = 128


@pytest.fixture(scope="session")
def registries() -> Registries:
    """Registries with every installed plugin (this one through its entry point)."""
    return build_registries(build_plugin_manager())


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache of this test session's own, so no test reuses weights trained elsewhere."""
    return tmp_path_factory.mktemp("r3b-cache")


@pytest.fixture(scope="session")
def tiny_data(registries: Registries, cache_dir: Path) -> PreparedDataset:
    """``shapes:tiny`` at 128 points (15 classes; 8 / 4 / 4 clouds per class)."""
    return prepare_dataset(registries, "shapes:tiny", cache_dir=cache_dir, num_points=TINY_N, seed=0)


@pytest.fixture(scope="session")
def tiny_base(registries: Registries, tiny_data: PreparedDataset, cache_dir: Path) -> TrainedBackbone:
    """``pointnet:test`` trained for a few epochs on the tiny data (the undefended base)."""
    return train_backbone(
        BackboneRequest(registries.backbones.get("pointnet"), "test", recipe_overrides={"epochs": 6}), tiny_data,
        TrainSettings(cache_dir))


@pytest.fixture()
def make_ctx(registries: Registries, tiny_data: PreparedDataset, tiny_base: TrainedBackbone, cache_dir: Path
             ) -> Any:
    """``make_ctx()`` -> a DefenseContext as the evaluation matrix builds it."""

    def make(**kw: Any) -> DefenseContext:
        args: dict[str, Any] = {
            "train_data": tiny_data, "backbone": tiny_base.model, "backbone_name": tiny_base.name,
            "base": tiny_base, "attack_factory": lambda name, preset="standard", overrides=None: make_attack(
                registries, name, preset, overrides, 0),
            "cache_dir": cache_dir, "seed": 0, "registries": registries,
            "backbone_provenance": tiny_base.provenance}
        args.update(kw)
        return DefenseContext(**args)

    return make


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
