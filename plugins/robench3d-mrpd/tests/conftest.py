"""Fixtures: the tiny embedded data, a tiny cosine-head uni3d student, and a build context as a run makes it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from robench3d import BuildContext, PreparedDataset, Registries, RunConfig
from robench3d.config import parse_ref
from robench3d.evaluation.components import build_backbone, make_attack, prepare_dataset
from robench3d.norms import Split
from robench3d.plugins import build_plugin_manager, build_registries
from robench3d.training.backbone import TrainedBackbone

TINY_N = 128
#: MRPD options that make a distillation take seconds (tiny data, tiny teachers, few steps).
FAST = {"teacher_3d": "pointnet:test", "clean_epochs": 1, "adv_epochs": 1, "val_limit": 8, "adv_steps": 2,
        "batch_size": 16, "point_prompts": 4, "text_context": 2}


@pytest.fixture(scope="session")
def registries() -> Registries:
    return build_registries(build_plugin_manager())


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mrpd-cache")


@pytest.fixture(scope="session")
def config(cache_dir: Path) -> RunConfig:
    return RunConfig(cache_dir=cache_dir, opts={"train": {"epochs": 3}})


@pytest.fixture(scope="session")
def tiny_data(registries: Registries, cache_dir: Path) -> PreparedDataset:
    return prepare_dataset(registries, "shapes:tiny", cache_dir=cache_dir, num_points=TINY_N, seed=0)


@pytest.fixture(scope="session")
def student(registries: Registries, tiny_data: PreparedDataset, config: RunConfig) -> TrainedBackbone:
    """``uni3d:test`` with its default cosine text head, trained a few epochs."""
    return build_backbone(registries, "uni3d:test", config=config, train_data=tiny_data,
                          num_classes=tiny_data.num_classes, resolver=None)


@pytest.fixture()
def make_ctx(registries: Registries, tiny_data: PreparedDataset, student: TrainedBackbone, config: RunConfig
             ) -> Any:
    """``make_ctx(**kw)`` -> a BuildContext with the run's factories (teachers built once per context)."""

    def make(**kw: Any) -> BuildContext:
        train_view = dataclasses.replace(tiny_data, splits={k: v for k, v in tiny_data.splits.items()
                                                            if k is not Split.TEST})
        teachers: dict[str, Any] = {}
        ctx = BuildContext(
            train_data=train_view, backbone=student.model, backbone_name=student.name,
            backbone_provenance=student.provenance, base=student, cache_dir=config.cache_dir, registries=registries,
            attack_factory=lambda name, preset="standard", overrides=None: make_attack(registries, name, preset,
                                                                                       overrides, 0),
            backbone_factory=lambda ref, scope="backbone": build_backbone(
                registries, ref, config=config, train_data=tiny_data, num_classes=tiny_data.num_classes,
                resolver=None, scope=scope))

        def teacher(ref: str, overrides: Any = None) -> Any:
            key = f"{ref}|{sorted((overrides or {}).items())}"
            if key not in teachers:
                r = parse_ref(ref)
                teachers[key] = registries["teachers"].get(r.name)(r.variant, overrides).build(ctx)
            return teachers[key]

        ctx.teacher_factory = teacher
        for k, v in kw.items():
            setattr(ctx, k, v)
        return ctx

    return make


@pytest.fixture(autouse=True)
def _seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
