"""Plugin loading: a fresh pluggy manager per invocation, and registries built from its hooks.

Built-in components are ordinary plugins (``robench3d.builtin.*``) registered by direct import; third-party
plugins come from the ``robench3d`` entry-point group. A plugin that fails to import, implements a misspelled
hook, raises while registering, or registers a name that already exists is recorded as *broken* with its name and
distribution: ``robench3d list`` and ``robench3d plugins`` report it, and ``robench3d run`` refuses to start until
it is fixed or blocked with ``-p no:NAME``.

Environment:
    ``ROBENCH3D_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry-point plugins (built-ins only). The first-party
    distributions under ``plugins/`` (``baselines``, ``example``) are entry-point plugins like any third party's,
    so they are dropped too; load one by name with ``-p NAME`` (e.g. ``-p baselines``).
    ``ROBENCH3D_TRACE_PLUGINS=1``: log every hook call (logger ``robench3d.plugins.trace``).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from robench3d import hookspecs
from robench3d.errors import DuplicateComponentError, PluginLoadError, Robench3DError
from robench3d.registry import BUILTIN_KINDS, ComponentKind, Registries

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "ENV_DISABLE_AUTOLOAD",
    "ENV_TRACE",
    "BrokenPlugin",
    "PluginManager",
    "build_plugin_manager",
    "build_registries",
    "describe_plugins",
]

logger = logging.getLogger(__name__)
_trace_logger = logging.getLogger("robench3d.plugins.trace")

ENTRY_POINT_GROUP = "robench3d"
ENV_DISABLE_AUTOLOAD = "ROBENCH3D_DISABLE_PLUGIN_AUTOLOAD"
ENV_TRACE = "ROBENCH3D_TRACE_PLUGINS"
BUILTIN_PLUGINS: tuple[str, ...] = (
    "robench3d.builtin.datasets",
    "robench3d.builtin.backbones",
    "robench3d.builtin.defenses",
    "robench3d.builtin.attacks",
    "robench3d.builtin.teachers",
    "robench3d.builtin.weights",
)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that could not be used, and why."""

    name: str
    distribution: str
    error: str

    def message(self) -> str:
        dist = f" (distribution {self.distribution})" if self.distribution else ""
        return f"plugin {self.name!r}{dist} is broken: {self.error}"


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus the bookkeeping robench3d needs: distributions and broken plugins."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.broken: list[BrokenPlugin] = []
        self.distributions: dict[str, str] = {}
        self.kinds: list[ComponentKind] = list(BUILTIN_KINDS)
        self.tracing = False

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        # Like pytest: a plain function named with the project prefix is a hook implementation too, so a typo in
        # an undecorated function is caught instead of silently ignored.
        if opts is None and name.startswith("robench3d_") and inspect.isroutine(getattr(plugin, name, None)):
            return {}
        return opts

    def distribution_of(self, plugin_name: str) -> str:
        """``name==version`` of the distribution that ships a plugin ("" for built-ins)."""
        return self.distributions.get(plugin_name, "")

    def mark_broken(self, name: str, error: str) -> None:
        """Record a broken plugin and unregister it so that none of its hooks run."""
        self.broken.append(BrokenPlugin(name, self.distribution_of(name), error))
        plugin = self.get_plugin(name)
        if plugin is not None:
            self.unregister(plugin, name=name)

    def raise_if_broken(self) -> None:
        """Raise :class:`PluginLoadError` describing every broken plugin, with the fix."""
        if not self.broken:
            return
        first = self.broken[0]
        lines = "; ".join(b.message() for b in self.broken)
        raise PluginLoadError(
            f"{lines}. Fix or uninstall it, or block it with '-p no:{first.name}' "
            f"(or set {ENV_DISABLE_AUTOLOAD}=1 to load no third-party plugin)",
            plugin=first.name,
            distribution=first.distribution,
        )


def build_plugin_manager(
    *,
    autoload: bool | None = None,
    blocked: Iterable[str] = (),
    extra: Iterable[object] = (),
    trace: bool | None = None,
    load: Iterable[str] = (),
) -> PluginManager:
    """Build a fresh plugin manager: hookspecs, built-ins, entry-point plugins, plugin-defined kinds.

    Args:
        autoload: load ``robench3d`` entry points; default: unless ``ROBENCH3D_DISABLE_PLUGIN_AUTOLOAD`` is set.
        blocked: plugin names not to load (``-p no:NAME``); built-ins can be blocked too.
        extra: plugin objects (modules, instances) to register directly, e.g. in tests.
        trace: log hook calls; default: if ``ROBENCH3D_TRACE_PLUGINS`` is set.
        load: entry-point plugins to load by name even when autoloading is off (``-p NAME``), e.g. the
            first-party ``baselines`` with ``ROBENCH3D_DISABLE_PLUGIN_AUTOLOAD=1``.

    Returns:
        The manager. Problems never raise here: they are recorded in ``pm.broken``.
    """
    pm = PluginManager()
    for name in blocked:
        pm.set_blocked(name)
    for modname in BUILTIN_PLUGINS:
        if not pm.is_blocked(modname):
            pm.register(importlib.import_module(modname), name=modname)
    for plugin in extra:
        _register(pm, plugin, getattr(plugin, "__name__", None) or repr(plugin))
    if autoload is None:
        autoload = not _truthy(os.environ.get(ENV_DISABLE_AUTOLOAD))
    wanted = list(load)
    if autoload:
        _load_entry_points(pm)
    elif wanted:
        _load_entry_points(pm, only=set(wanted))
    for name in wanted:
        if not pm.has_plugin(name) and not pm.is_blocked(name) and not any(b.name == name for b in pm.broken):
            pm.broken.append(BrokenPlugin(name, "", f"-p {name}: no installed distribution has an entry point "
                                                    f"{name!r} in the {ENTRY_POINT_GROUP!r} group (see `pip list`)"))
    _add_plugin_kinds(pm)
    _check_unknown_hooks(pm)
    if trace is None:
        trace = _truthy(os.environ.get(ENV_TRACE))
    if trace:
        pm.trace.root.setwriter(lambda msg: _trace_logger.info(msg.rstrip()))
        pm.enable_tracing()
        pm.tracing = True
    return pm


def _register(pm: PluginManager, plugin: object, name: str) -> None:
    try:
        pm.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        pm.broken.append(BrokenPlugin(name, pm.distribution_of(name), f"invalid hook implementation: {exc}"))


def _load_entry_points(pm: PluginManager, only: set[str] | None = None) -> None:
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or ep.name in seen or (only is not None and ep.name not in only):
                continue
            seen.add(ep.name)  # a distribution visible twice on sys.path is loaded once
            if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
                continue
            pm.distributions[ep.name] = f"{dist.metadata['Name']}=={dist.version}"
            try:
                plugin = ep.load()
            except Exception as exc:  # a third-party import can fail in any way; we report it, never hide it
                pm.broken.append(
                    BrokenPlugin(ep.name, pm.distribution_of(ep.name), f"import of {ep.value!r} failed: {exc!r}")
                )
                continue
            _register(pm, plugin, ep.name)


def _add_plugin_kinds(pm: PluginManager) -> None:
    for impl in pm.hook.robench3d_register_kinds.get_hookimpls():
        try:
            kinds = impl.function()
            for kind in kinds or []:
                if not isinstance(kind, ComponentKind):
                    raise TypeError(f"expected ComponentKind, got {kind!r}")
                if kind.hookspecs is not None:
                    pm.add_hookspecs(kind.hookspecs)
                if not any(k.name == kind.name for k in pm.kinds):
                    pm.kinds.append(kind)
        except (TypeError, ValueError, pluggy.PluginValidationError) as exc:
            pm.mark_broken(impl.plugin_name, f"robench3d_register_kinds failed: {exc}")


def _check_unknown_hooks(pm: PluginManager) -> None:
    known = [name for name, caller in vars(pm.hook).items() if getattr(caller, "spec", None) is not None]
    for name, caller in list(vars(pm.hook).items()):
        if not isinstance(caller, pluggy.HookCaller) or caller.spec is not None:
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        for impl in caller.get_hookimpls():
            pm.mark_broken(impl.plugin_name, f"implements unknown hook {name!r}{hint}")


def _plugin_label(pm: PluginManager, name: str) -> str:
    dist = pm.distribution_of(name)
    return f"{name} ({dist})" if dist else name


def build_registries(pm: PluginManager, *, strict: bool = True) -> Registries:
    """Collect every kind's components from the hooks into fresh registries.

    Each hook implementation is called on its own so that a failure names its plugin.

    Args:
        pm: a manager from :func:`build_plugin_manager`.
        strict: raise on the first problem (``run``); otherwise record it in ``pm.broken`` and skip that plugin's
            components (``list``, ``plugins``), so a broken plugin never hides the healthy ones.
    """
    registries = Registries(pm.kinds)
    registries.hook = pm.hook  # so run_matrix can fire robench3d_run_finished for Python callers too
    for kind in pm.kinds:
        caller = getattr(pm.hook, kind.hook, None)
        if caller is None:
            continue
        # Sort by plugin name: results never depend on pluggy's LIFO call order.
        for impl in sorted(caller.get_hookimpls(), key=lambda i: i.plugin_name):
            label = _plugin_label(pm, impl.plugin_name)
            try:
                items = impl.function()
                if pm.tracing:
                    _trace_logger.info("%s [%s] -> %r", kind.hook, label, items)
                if not isinstance(items, (list, tuple)):
                    raise TypeError(f"{kind.hook} must return a list, got {type(items).__name__}")
                for item in sorted(items, key=lambda c: str(getattr(c, "name", ""))):
                    name = getattr(item, "name", None)
                    if not isinstance(name, str):
                        raise TypeError(f"{kind.noun} {item!r} has no string 'name'")
                    registries[kind.name].add(name, item, label)
            except DuplicateComponentError as exc:
                if strict:
                    raise
                pm.broken.append(BrokenPlugin(impl.plugin_name, pm.distribution_of(impl.plugin_name), str(exc)))
            except (Robench3DError, Exception) as exc:  # third-party registration code may fail in any way
                err = f"{kind.hook} raised {exc!r}"
                if strict:
                    raise PluginLoadError(
                        f"plugin {label!r} is broken: {err}. Fix it, or block it with '-p no:{impl.plugin_name}'",
                        plugin=impl.plugin_name,
                        distribution=pm.distribution_of(impl.plugin_name),
                    ) from exc
                pm.broken.append(BrokenPlugin(impl.plugin_name, pm.distribution_of(impl.plugin_name), err))
    return registries


def describe_plugins(pm: PluginManager) -> list[dict[str, str]]:
    """One row per plugin: name, distribution, version, hooks it implements, and status."""
    rows: list[dict[str, str]] = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda np_: np_[0]):
        if plugin is None:
            continue
        hooks = sorted(c.name for c in (pm.get_hookcallers(plugin) or []))
        dist = pm.distribution_of(name)
        dist_name, _, version = dist.partition("==")
        if not dist:
            dist_name, version = "robench3d (built-in)", _own_version()
        rows.append({"plugin": name, "distribution": dist_name, "version": version,
                     "hooks": ", ".join(h.removeprefix("robench3d_") for h in hooks), "status": "ok"})
    for b in pm.broken:
        dist_name, _, version = b.distribution.partition("==")
        rows.append({"plugin": b.name, "distribution": dist_name, "version": version, "hooks": "",
                     "status": f"BROKEN: {b.error}"})
    return rows


def _own_version() -> str:
    try:
        return importlib.metadata.version("robench3d")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
