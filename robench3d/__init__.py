"""robench3d: a plugin-extensible adversarial-robustness benchmark for 3D point-cloud classifiers.

``import robench3d`` only defines names; heavy modules (torch, the components) are imported on first use, so
``robench3d --help`` and plugin hookspec imports stay fast. Plugins write ``from robench3d import hookimpl``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

from robench3d.errors import (
    BudgetViolationError,
    ConfigError,
    DataError,
    DuplicateComponentError,
    LeaderboardSchemaError,
    PluginLoadError,
    Robench3DError,
    UnknownComponentError,
)
from robench3d.hookspecs import hookimpl, hookspec

if TYPE_CHECKING:
    from robench3d.artifacts import Artifact
    from robench3d.attacks.base import Attack, AttackContext, AttackResult
    from robench3d.backbones.base import Backbone, BackboneSpec, TrainRecipe, WeightsSpec
    from robench3d.config import RunConfig
    from robench3d.context import BuildContext
    from robench3d.datasets.base import Batch, Dataset, DatasetOptions, PreparedDataset, SplitData
    from robench3d.defenses.base import DefendedModel, Defense, DefenseContext, PreprocessingDefense
    from robench3d.evaluation.matrix import run_matrix
    from robench3d.norms import Budget, Norm, Setting, Split
    from robench3d.params import Param
    from robench3d.plugins import build_plugin_manager, build_registries
    from robench3d.registry import ComponentKind, Registries, Registry
    from robench3d.teachers.base import Teacher, TeacherOutput
    from robench3d.training.trainer import ParamGroup, Trainer, TrainerConfig

try:
    __version__ = importlib.metadata.version("robench3d")
except importlib.metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

_LAZY: dict[str, str] = {
    "Artifact": "robench3d.artifacts",
    "Attack": "robench3d.attacks.base",
    "AttackContext": "robench3d.attacks.base",
    "AttackResult": "robench3d.attacks.base",
    "Backbone": "robench3d.backbones.base",
    "BackboneSpec": "robench3d.backbones.base",
    "Batch": "robench3d.datasets.base",
    "Budget": "robench3d.norms",
    "BuildContext": "robench3d.context",
    "ComponentKind": "robench3d.registry",
    "Dataset": "robench3d.datasets.base",
    "DatasetOptions": "robench3d.datasets.base",
    "DefendedModel": "robench3d.defenses.base",
    "Defense": "robench3d.defenses.base",
    "DefenseContext": "robench3d.defenses.base",
    "Norm": "robench3d.norms",
    "Param": "robench3d.params",
    "ParamGroup": "robench3d.training.trainer",
    "PreparedDataset": "robench3d.datasets.base",
    "PreprocessingDefense": "robench3d.defenses.base",
    "Registries": "robench3d.registry",
    "Registry": "robench3d.registry",
    "RunConfig": "robench3d.config",
    "Setting": "robench3d.norms",
    "Split": "robench3d.norms",
    "SplitData": "robench3d.datasets.base",
    "Teacher": "robench3d.teachers.base",
    "TeacherOutput": "robench3d.teachers.base",
    "TrainRecipe": "robench3d.backbones.base",
    "Trainer": "robench3d.training.trainer",
    "TrainerConfig": "robench3d.training.trainer",
    "WeightsSpec": "robench3d.backbones.base",
    "build_plugin_manager": "robench3d.plugins",
    "build_registries": "robench3d.plugins",
    "run_matrix": "robench3d.evaluation.matrix",
}

__all__ = sorted([
    "BudgetViolationError",
    "ConfigError",
    "DataError",
    "DuplicateComponentError",
    "LeaderboardSchemaError",
    "PluginLoadError",
    "Robench3DError",
    "UnknownComponentError",
    "__version__",
    "hookimpl",
    "hookspec",
    *_LAZY,
])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'robench3d' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
