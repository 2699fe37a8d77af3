"""The robench3d hook specifications: the whole plugin surface.

Plugins implement these with the :data:`hookimpl` marker and are discovered through the ``robench3d`` entry-point
group (the entry point names a module)::

    from robench3d import hookimpl

    @hookimpl
    def robench3d_register_attacks():
        from my_package.attack import MyAttack
        return [MyAttack]

Hooks are always called with keyword arguments, so an implementation may accept a subset of the arguments and new
arguments can be added without breaking plugins. Collection hooks return lists; the host flattens them, sorts by
name and raises :class:`~robench3d.errors.DuplicateComponentError` on a name registered twice (results never depend
on plugin call order). Only :func:`robench3d_resolve_weights` is ``firstresult``.

This module imports only pluggy at runtime, so plugin authors can import it without pulling in torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from robench3d.attacks.base import Attack
    from robench3d.backbones.base import BackboneSpec
    from robench3d.datasets.base import Dataset
    from robench3d.defenses.base import Defense
    from robench3d.registry import ComponentKind
    from robench3d.teachers.base import Teacher

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "robench3d"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def robench3d_register_datasets() -> list[type[Dataset]]:  # type: ignore[empty-body]
    """Register dataset classes.

    :return: a list of :class:`~robench3d.datasets.base.Dataset` subclasses, each with a unique ``name``
        class variable. The class carries its loader, so a plugin ships code, not only metadata.

    Results are collected from every plugin. .. versionadded:: 0.1
    """


@hookspec
def robench3d_register_backbones() -> list[BackboneSpec]:  # type: ignore[empty-body]
    """Register backbone architectures.

    :return: a list of :class:`~robench3d.backbones.base.BackboneSpec`, each carrying its model factory, its named
        configurations (``cpu``, ``paper``...) and its training recipe.

    Results are collected from every plugin. .. versionadded:: 0.1
    """


@hookspec
def robench3d_register_defenses() -> list[type[Defense]]:  # type: ignore[empty-body]
    """Register defense classes.

    :return: a list of :class:`~robench3d.defenses.base.Defense` subclasses, each with a unique ``name``.

    Results are collected from every plugin. .. versionadded:: 0.1
    """


@hookspec
def robench3d_register_attacks() -> list[type[Attack]]:  # type: ignore[empty-body]
    """Register attack classes.

    :return: a list of :class:`~robench3d.attacks.base.Attack` subclasses, each with a unique ``name`` and its
        presets (``standard``, ``if-defense``, ``mrpd-paper``, ``quick``).

    Results are collected from every plugin. .. versionadded:: 0.1
    """


@hookspec
def robench3d_register_teachers() -> list[type[Teacher]]:  # type: ignore[empty-body]
    """Register teachers: frozen models that distillation defenses learn from.

    :return: a list of :class:`~robench3d.teachers.base.Teacher` subclasses, each with a unique ``name``. A
        teacher maps clouds to an L2-normalised embedding and class logits, declares its parameters (``--opt
        teacher.NAME.KEY``), whether it needs training on the dataset, and its provenance once prepared; defenses
        get one, prepared and frozen, from ``ctx.build_teacher("NAME[:VARIANT]")``.

    Results are collected from every plugin. .. versionadded:: 0.2
    """


@hookspec
def robench3d_register_kinds() -> list[ComponentKind]:  # type: ignore[empty-body]
    """Register a further kind of component (beyond datasets, backbones, defenses, attacks, teachers) with its own
    collection hook.

    :return: a list of :class:`~robench3d.registry.ComponentKind`. Each names its registry, the hook that
        collects it, and the module holding that hook's specification; the host adds the hookspecs and then
        collects the new kind exactly like the built-in kinds.

    Results are collected from every plugin. .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def robench3d_resolve_weights(spec: Any, cache_dir: Path) -> Path | None:  # type: ignore[empty-body]
    """Find local weights for a pretrained component (a backbone tag, a teacher's tower).

    :param spec: the :class:`~robench3d.backbones.base.WeightsSpec` to resolve (name, file name, sha256).
    :param cache_dir: the robench3d cache directory.
    :return: the path of a local weights file, or ``None`` if this plugin cannot provide it.

    Stops at the first non-None result. robench3d itself never downloads: the built-in implementation only looks
    in the cache and in ``ROBENCH3D_WEIGHTS``. .. versionadded:: 0.1
    """


@hookspec
def robench3d_run_finished(results: Any, config: Any) -> None:
    """Called when a run of the evaluation matrix has written all its rows (for loggers and exporters).

    Fired by :func:`~robench3d.evaluation.matrix.run_matrix` itself, so it runs for ``robench3d run`` and for
    Python callers that pass registries built by :func:`~robench3d.plugins.build_registries`.

    :param results: a :class:`pandas.DataFrame` of this run's result rows in the schema of
        :mod:`robench3d.schema` (one row per cell, skipped and failed cells included; ``status`` says which).
    :param config: the :class:`~robench3d.config.RunConfig` of the run.

    Every implementation is called, each on its own: one that raises is logged as a warning and never loses the
    results, which are already on disk. Return values are ignored. .. versionadded:: 0.1
    """
