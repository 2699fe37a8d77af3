"""Generic component registries, built fresh for every run from hook results.

A :class:`Registry` maps names to components (classes or specs carrying a factory) and remembers which plugin
registered each one. :class:`Registries` holds one registry per :class:`ComponentKind`; the built-in kinds are
datasets, backbones, defenses, attacks and teachers, and plugins can add kinds (``robench3d_register_kinds``).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Generic, TypeVar

from robench3d.errors import ConfigError, DuplicateComponentError, UnknownComponentError

__all__ = ["BUILTIN_KINDS", "ComponentKind", "Registries", "Registry", "article", "natural_key", "split_patterns"]

T = TypeVar("T")


def article(noun: str) -> str:
    """``a`` or ``an`` for a noun in a generated message ("an attack", "a defense")."""
    return "an" if noun[:1].lower() in "aeiou" else "a"


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``drop_100`` before ``drop_200`` and ``pgd2`` before ``pgd10``."""
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name.lower())]


def split_patterns(patterns: str | Iterable[str] | None) -> list[str]:
    """Split comma lists (``"pgd*,knn"``) into patterns; ``all`` means ``*``."""
    if patterns is None:
        return []
    items = [patterns] if isinstance(patterns, str) else list(patterns)
    out: list[str] = []
    for item in items:
        out.extend(p.strip() for p in item.split(",") if p.strip())
    return ["*" if p == "all" else p for p in out]


@dataclass(frozen=True)
class ComponentKind:
    """A kind of component and the collection hook that registers it.

    Attributes:
        name: registry name, plural (``"attacks"``, ``"teachers"``).
        hook: name of the collection hook (``"robench3d_register_teachers"``).
        hookspecs: module (or class) holding the hook's specification, for kinds added by plugins.
        singular: the word used in messages (``"attack"``); defaults to ``name`` without the final ``s``.
    """

    name: str
    hook: str
    hookspecs: ModuleType | type | None = None
    singular: str = ""

    @property
    def noun(self) -> str:
        return self.singular or self.name.rstrip("s")


BUILTIN_KINDS: tuple[ComponentKind, ...] = (
    ComponentKind("datasets", "robench3d_register_datasets"),
    ComponentKind("backbones", "robench3d_register_backbones"),
    ComponentKind("defenses", "robench3d_register_defenses"),
    ComponentKind("attacks", "robench3d_register_attacks"),
    ComponentKind("teachers", "robench3d_register_teachers"),
)


@dataclass
class Registry(Generic[T]):
    """Name -> component, with the plugin that registered each component.

    Look-ups accept exact names; :meth:`select` accepts ``all``, fnmatch globs and comma lists.
    """

    kind: ComponentKind
    _items: dict[str, T] = field(default_factory=dict)
    _owners: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, obj: T, plugin: str) -> None:
        """Register ``obj`` under ``name``; a name registered twice is an error naming both plugins."""
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.\-]*", name):
            raise ConfigError(
                f"plugin {plugin!r} registered {article(self.kind.noun)} {self.kind.noun} with invalid name {name!r}; "
                "names are lower "
                "case letters, digits, '_', '-' and '.'"
            )
        if name in self._items:
            raise DuplicateComponentError(
                f"{self.kind.noun} {name!r} is registered by both {self._owners[name]!r} and {plugin!r}; "
                f"rename one, or block a plugin with '-p no:NAME'"
            )
        self._items[name] = obj
        self._owners[name] = plugin

    def get(self, name: str) -> T:
        """Return the component called ``name`` or raise with the closest names."""
        try:
            return self._items[name]
        except KeyError:
            raise UnknownComponentError(self._unknown_message(name)) from None

    def owner(self, name: str) -> str:
        """The plugin that registered ``name``."""
        return self._owners[name]

    def names(self) -> list[str]:
        """All names, naturally sorted."""
        return sorted(self._items, key=natural_key)

    def select(self, patterns: str | Iterable[str] | None, exclude: str | Iterable[str] | None = None) -> list[str]:
        """Names matching any of ``patterns`` (``all``, globs, comma lists) and none of ``exclude``.

        A literal name (no glob characters) that matches nothing raises :class:`UnknownComponentError` with a
        suggestion, so a typo never silently selects nothing.
        """
        include = split_patterns(patterns) or ["*"]
        excl = split_patterns(exclude)
        chosen: list[str] = []
        for pat in include:
            hits = [n for n in self.names() if fnmatch.fnmatchcase(n, pat)]
            if not hits:
                if any(c in pat for c in "*?["):
                    raise UnknownComponentError(
                        f"no {self.kind.name} match {pat!r}; available: {', '.join(self.names()) or '(none)'}"
                    )
                raise UnknownComponentError(self._unknown_message(pat))
            chosen.extend(h for h in hits if h not in chosen)
        return [n for n in chosen if not any(fnmatch.fnmatchcase(n, p) for p in excl)]

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return (
            f"unknown {self.kind.noun} {name!r}{hint} available: {', '.join(self.names()) or '(none)'} "
            f"(run `robench3d list {self.kind.name}`)"
        )

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


class Registries:
    """One :class:`Registry` per kind: ``registries.attacks``, or ``registries["teachers"]`` for plugin kinds."""

    def __init__(self, kinds: Iterable[ComponentKind] = BUILTIN_KINDS) -> None:
        self._by_kind: dict[str, Registry[Any]] = {k.name: Registry(k) for k in kinds}
        #: the plugin manager's hook relay when built by ``build_registries`` (``None`` for hand-built registries)
        self.hook: Any = None

    def __getitem__(self, kind: str) -> Registry[Any]:
        try:
            return self._by_kind[kind]
        except KeyError:
            raise UnknownComponentError(
                f"unknown component kind {kind!r}; available: {', '.join(sorted(self._by_kind))}"
            ) from None

    def __getattr__(self, kind: str) -> Registry[Any]:
        if kind.startswith("_"):
            raise AttributeError(kind)
        try:
            return self._by_kind[kind]
        except KeyError:
            raise AttributeError(kind) from None

    def kinds(self) -> list[str]:
        """Names of all kinds, built-in first."""
        return list(self._by_kind)

    def add_kind(self, kind: ComponentKind) -> Registry[Any]:
        """Add an empty registry for a new kind (idempotent for the same kind)."""
        return self._by_kind.setdefault(kind.name, Registry(kind))
