"""Shared setting of the attack tests: a tiny PointNet trained once per session on ``shapes:tiny`` at 128 points.

Not a ``conftest.py``: a second conftest module would shadow ``tests/conftest.py`` for ``from conftest import``.
The setting is built lazily and memoised, so every attack test module shares one trained model and one run per
(attack, preset, seed).

The attack test modules run on one thread (``robench3d.pointops.single_thread``): the tensors are tiny, so a second
thread buys nothing, and on a shared, oversubscribed machine OpenMP's spinning barriers made these tests ~10x slower
with two threads (measured: 201 s vs 21 s at load 6 on 2 cores).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robench3d.attacks.base import Attack, AttackContext, AttackResult
from robench3d.config import RunConfig
from robench3d.datasets.base import PreparedDataset
from robench3d.evaluation.components import build_backbone, prepare_dataset
from robench3d.evaluation.victims import ScoreOracle
from robench3d.norms import Setting
from robench3d.plugins import build_plugin_manager, build_registries
from robench3d.registry import Registries

SEED = 0
NUM_POINTS = 128
NUM_SAMPLES = 12  # clean-correct test clouds the attacks are run on
ITERATION_KEYS = frozenset({"steps", "iterations", "binary_steps", "queries"})


@dataclass
class TinySetting:
    """The trained victim and a batch of test clouds it classifies correctly.

    Shape: points (NUM_SAMPLES, NUM_POINTS, 3); labels, targets (NUM_SAMPLES,).
    """

    registries: Registries
    data: PreparedDataset
    model: nn.Module
    points: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor
    cache_dir: Path
    runs: dict[tuple[str, str, int], AttackResult] = field(default_factory=dict)


@functools.lru_cache(maxsize=1)
def tiny_setting() -> TinySetting:
    """Train (once per session) pointnet:test on shapes:tiny and pick clean-correct test clouds."""
    cache = Path(tempfile.mkdtemp(prefix="robench3d-attack-tests-"))
    atexit.register(shutil.rmtree, cache, True)
    registries = build_registries(build_plugin_manager(autoload=False))
    data = prepare_dataset(registries, "shapes:tiny", cache_dir=cache, num_points=NUM_POINTS, seed=SEED)
    config = RunConfig(cache_dir=cache, seed=SEED, opts={"train": {"epochs": 15}})
    trained = build_backbone(registries, "pointnet:test", config=config, train_data=data,
                             num_classes=data.num_classes, resolver=None)
    model = trained.model.eval()
    test = data.split("test")
    points, labels = torch.from_numpy(test.points), torch.from_numpy(test.labels)
    with torch.no_grad():
        correct = (model(points).argmax(1) == labels).nonzero().flatten()[:NUM_SAMPLES]
    assert len(correct) == NUM_SAMPLES, f"the tiny model classifies only {len(correct)} test clouds correctly"
    return TinySetting(registries, data, model, points[correct], labels[correct],
                       torch.from_numpy(test.targets)[correct], cache)


def make_attack(setting: TinySetting, name: str, preset: str = "quick",
                overrides: Mapping[str, Any] | None = None) -> Attack:
    """Instantiate and prepare a registered attack."""
    attack = setting.registries.attacks.get(name)(preset, overrides, seed=SEED)
    attack.prepare(AttackContext(dataset=setting.data, cache_dir=setting.cache_dir, seed=SEED))
    return attack


def victim_for(attack: Attack, model: nn.Module) -> nn.Module:
    """The model itself for gradient attacks, a score-only oracle for query-only attacks."""
    return model if Setting.OBLIVIOUS in attack.supported_settings else ScoreOracle(model)


def run(setting: TinySetting, name: str, preset: str = "quick", seed: int = 1) -> AttackResult:
    """Run an attack on the shared batch (memoised per (attack, preset, seed))."""
    key = (name, preset, seed)
    if key not in setting.runs:
        attack = make_attack(setting, name, preset)
        targets = setting.targets if attack.targeted else None
        setting.runs[key] = attack(victim_for(attack, setting.model), setting.points, setting.labels, targets,
                                   seed=seed)
    return setting.runs[key]


def n_correct(model: nn.Module, points: torch.Tensor, labels: torch.Tensor) -> int:
    """How many clouds the model still classifies correctly."""
    with torch.no_grad():
        return int((model(points).argmax(1) == labels).sum())
