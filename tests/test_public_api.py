"""The public API is pinned: additions are deliberate, removals are breaking."""

from __future__ import annotations

import robench3d

EXPECTED = {
    "Artifact", "BuildContext", "Param", "ParamGroup", "Teacher", "TeacherOutput",
    "Attack", "AttackContext", "AttackResult", "Backbone", "BackboneSpec", "Batch", "Budget",
    "BudgetViolationError", "ComponentKind", "ConfigError", "DataError", "Dataset", "DatasetOptions",
    "DefendedModel", "Defense", "DefenseContext", "DuplicateComponentError",
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
    """The modules CONTRIBUTING.md documents as stable for plugins."""
    import robench3d.artifacts
    import robench3d.cache
    import robench3d.context
    import robench3d.params
    import robench3d.pointops
    import robench3d.teachers.base
    import robench3d.text
    import robench3d.training.backbone
    import robench3d.training.trainer

    assert {"stable_hash", "atomic_path", "read_json", "write_json", "file_sha256"} <= set(robench3d.cache.__all__)
    assert {"train_backbone", "BackboneRequest", "TrainSettings", "TrainedBackbone", "augment"} <= set(
        robench3d.training.backbone.__all__)
    assert {"Trainer", "TrainerConfig", "ParamGroup", "Callback", "trained_state"} <= set(
        robench3d.training.trainer.__all__)
    assert {"Param", "resolve"} <= set(robench3d.params.__all__) and robench3d.artifacts.__all__ == ["Artifact"]
    assert robench3d.context.__all__ == ["BuildContext"]
    assert {"ball_query", "chamfer", "distance_ranking", "farthest_point_sample", "gather_points", "hausdorff", "knn",
            "knn_with_distances", "nearest_indices", "nearest_sq_distances", "single_thread", "square_distance"} <= set(
        robench3d.pointops.__all__)
    assert {"Teacher", "TeacherOutput", "teacher_outputs"} <= set(robench3d.teachers.base.__all__)
    assert {"TextEncoder", "build_text_encoder", "class_name_embeddings"} <= set(robench3d.text.__all__)
