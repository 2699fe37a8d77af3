"""The public API is pinned: additions are deliberate, removals are breaking."""

from __future__ import annotations

import robench3d

EXPECTED = {
    "Attack", "AttackContext", "AttackResult", "Backbone", "BackboneSpec", "Batch", "Budget",
    "BudgetViolationError", "ComponentKind", "ConfigError", "DataError", "Dataset", "DatasetOptions",
    "DefendedModel", "Defense", "DefenseContext", "DuplicateComponentError", "IncompatibleSettingError",
    "LeaderboardSchemaError", "Norm", "PluginLoadError", "PreparedDataset", "PreprocessingDefense", "Registries",
    "Registry", "Robench3DError", "RunConfig", "Setting", "Split", "SplitData", "TrainRecipe", "Trainer",
    "TrainerConfig", "UnknownComponentError", "WeightsSpec", "__version__", "build_plugin_manager",
    "build_registries", "hookimpl", "hookspec", "run_matrix",
}


def test_all_is_pinned_and_resolvable() -> None:
    assert set(robench3d.__all__) == EXPECTED
    for name in robench3d.__all__:
        assert getattr(robench3d, name) is not None


def test_hookspecs_import_without_torch() -> None:
    import subprocess
    import sys

    code = "import sys, robench3d.hookspecs, robench3d; assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_stable_plugin_modules_are_pinned() -> None:
    """``robench3d.cache`` and ``robench3d.training.backbone`` are documented for plugins (CONTRIBUTING.md)."""
    import robench3d.cache
    import robench3d.training.backbone

    assert {"stable_hash", "atomic_path", "read_json", "write_json", "file_sha256"} <= set(robench3d.cache.__all__)
    assert {"train_backbone", "TrainedBackbone", "augment"} <= set(robench3d.training.backbone.__all__)
