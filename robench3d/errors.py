"""Exceptions raised by robench3d.

Every error a user can cause is a :class:`Robench3DError`; the CLI turns it into a one-paragraph message and exit
code 2, with no traceback. Messages name the offending value, what is valid, and one way to fix it.

Hierarchy::

    Robench3DError
    ├── ConfigError                 bad option, missing file, malformed input data
    │   └── DataError               a dataset file is missing, corrupt or inconsistent
    ├── UnknownComponentError       a name that no registry holds (with a did-you-mean)
    ├── DuplicateComponentError     two plugins register the same name
    ├── PluginLoadError             a plugin fails to import, validate or register
    ├── BudgetViolationError        an attack's output exceeds the attack's own budget
    └── LeaderboardSchemaError      a results or leaderboard table violates the schema
"""

from __future__ import annotations

__all__ = [
    "BudgetViolationError",
    "ConfigError",
    "DataError",
    "DuplicateComponentError",
    "LeaderboardSchemaError",
    "PluginLoadError",
    "Robench3DError",
    "UnknownComponentError",
]


class Robench3DError(Exception):
    """Base class of every error robench3d raises on purpose."""


class ConfigError(Robench3DError):
    """An option, path or configuration value is invalid."""


class DataError(ConfigError):
    """A dataset file is missing, corrupt, or inconsistent with its layout."""


class UnknownComponentError(Robench3DError, KeyError):
    """A component name that no registry holds."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DuplicateComponentError(Robench3DError):
    """Two plugins registered the same component name."""


class PluginLoadError(Robench3DError):
    """A plugin failed to import, validate against the hookspecs, or register its components.

    Attributes:
        plugin: the plugin (entry point) name.
        distribution: ``name==version`` of the distribution that ships it, if known.
    """

    def __init__(self, message: str, *, plugin: str = "", distribution: str = "") -> None:
        super().__init__(message)
        self.plugin = plugin
        self.distribution = distribution


class BudgetViolationError(Robench3DError):
    """An attack returned points outside its own declared budget."""


class LeaderboardSchemaError(Robench3DError):
    """A results or leaderboard table does not follow the schema."""
